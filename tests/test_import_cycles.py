"""No import cycles: the module import graph of ``edgeasd``, read from the source with ``ast``.

Every ``import`` counts, including those inside functions (a cycle hidden by a late import
is still a cycle). ``from pkg import name`` is an edge to ``pkg.name`` when that is a
module, else to ``pkg``; a module's implicit import of its parent package is not an edge.
"""

from __future__ import annotations

import ast
from pathlib import Path

import edgeasd

ROOT = Path(edgeasd.__file__).resolve().parent


def _modules(root: Path) -> dict[str, Path]:
    out = {}
    for f in root.rglob("*.py"):
        parts = f.relative_to(root.parent).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = f
    return out


def _targets(node: ast.Import | ast.ImportFrom, module: str, is_pkg: bool, mods) -> set[str]:
    names = []
    if isinstance(node, ast.Import):
        names = [a.name for a in node.names]
    else:
        base = node.module or ""
        if node.level:
            pkg = module.split(".") if is_pkg else module.split(".")[:-1]
            pkg = pkg[: len(pkg) - node.level + 1]
            base = ".".join(pkg + ([base] if base else []))
        names = [f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base for a in node.names]
    out = set()
    for name in names:
        while name and name not in mods:  # a name inside a module: the module
            name = name.rpartition(".")[0]
        if name and name != module:
            out.add(name)
    return out


def import_graph(root: Path = ROOT) -> dict[str, set[str]]:
    """Module -> modules of the package it imports (anywhere in its source)."""
    mods = _modules(root)
    graph = {}
    for name, file in mods.items():
        deps: set[str] = set()
        for node in ast.walk(ast.parse(file.read_text(), str(file))):
            if isinstance(node, ast.Import | ast.ImportFrom):
                deps |= _targets(node, name, file.name == "__init__.py", mods)
        graph[name] = deps
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            v, it = work[-1]
            w = next(it, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(graph[w]))))
                elif w in on_stack:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    found.append(sorted(comp))
    return found


def test_the_cycle_finder_finds_a_hidden_cycle(tmp_path):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from pkg import b\n")
    (pkg / "b.py").write_text("def f():\n    from pkg.c import x\n")
    (pkg / "c.py").write_text("import pkg.a\nx = 1\n")
    (pkg / "d.py").write_text("from . import a\n")
    graph = import_graph(pkg)
    assert graph["pkg.d"] == {"pkg.a"}
    assert cycles(graph) == [["pkg.a", "pkg.b", "pkg.c"]]


def test_the_scoring_package_has_no_import_cycle():
    graph = import_graph()
    assert graph["edgeasd.scoring.calibrate"]  # the graph sees the package
    involved = [c for c in cycles(graph) if any(m.startswith("edgeasd.scoring") for m in c)]
    assert involved == []


def test_persistence_depends_on_the_bank_never_the_reverse():
    graph = import_graph()
    below_bank = {"edgeasd.scoring.bank"}
    frontier = ["edgeasd.scoring.bank"]
    while frontier:  # everything the bank imports, transitively
        for dep in graph[frontier.pop()]:
            if dep not in below_bank:
                below_bank.add(dep)
                frontier.append(dep)
    persistence = {"serialize", "store", "generations", "fileio"}
    assert not {f"edgeasd.scoring.{m}" for m in persistence} & below_bank
    assert "edgeasd.scoring.bank" in graph["edgeasd.scoring.serialize"]


def test_the_whole_package_has_no_import_cycle():
    assert cycles(import_graph()) == []


#: Packages below the agent (ARCHITECTURE.md's layers): none of them may import it.
BELOW_AGENT = ("fleet", "scoring", "audio", "embedding", "config", "synth")


def test_nothing_below_the_agent_imports_it():
    graph = import_graph()
    assert "edgeasd.config.paths" in graph["edgeasd.fleet.observers"]  # the graph sees it
    below = tuple(f"edgeasd.{p}." for p in BELOW_AGENT)
    upward = sorted(
        (module, dep)
        for module, deps in graph.items()
        for dep in deps
        if f"{module}.".startswith(below) and dep.startswith("edgeasd.agent")
    )
    assert upward == []


def test_the_run_loop_and_the_control_socket_are_imported_from_above_only():
    """Enrollment and alerts never import the run loop or the control socket."""
    graph = import_graph()
    rooms = ("edgeasd.agent.enrollment", "edgeasd.agent.alerts")
    above = ("edgeasd.agent.runloop", "edgeasd.agent.control")
    upward = sorted(
        (module, dep)
        for module, deps in graph.items()
        for dep in deps
        if module.startswith(rooms) and dep.startswith(above)
    )
    assert upward == []
