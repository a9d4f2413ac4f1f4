"""Run the benchmarks and write their results into BENCHMARKS.md.

Usage::

    python benchmarks/run.py              # every benchmarks/bench_*.py
    python benchmarks/run.py scoring      # only bench_scoring.py (others' sections kept)

Each ``bench_<name>.py`` exposes ``main()``, which prints Markdown (tables of ratios
measured in one run). Each runs in its own process, so one benchmark's warm caches
and threads do not disturb the next; its output replaces the section between
``<!-- bench:<name> -->`` and ``<!-- /bench:<name> -->`` in BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import re
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
TARGET = REPO / "BENCHMARKS.md"
HEADER = """# Benchmarks

Regenerate with `python benchmarks/run.py` (all) or `python benchmarks/run.py NAME`
(one `benchmarks/bench_NAME.py`). Each section records the machine and date it was
measured on; figures are ratios of timings taken in the same run.
"""


def available() -> list[str]:
    """Names of the benchmark modules (``bench_<name>.py``), sorted."""
    return sorted(p.stem[len("bench_") :] for p in HERE.glob("bench_*.py"))


def machine() -> str:
    """One line describing where the numbers were measured."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    when = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return (
        f"{when}; {cpu}, {os.cpu_count()} logical CPUs, load average {load:.1f}; "
        f"Python {platform.python_version()}"
    )


def run_one(name: str) -> str:
    """Run ``bench_<name>.main()`` in a fresh interpreter and return its stdout."""
    path = HERE / f"bench_{name}.py"
    code = f"import runpy; runpy.run_path({str(path)!r}, run_name='bench')['main']()"
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr)
        raise SystemExit(f"benchmark {name} failed (exit {proc.returncode})")
    return proc.stdout.strip()


def update(text: str, name: str, body: str) -> str:
    """Replace (or append) the marked section of benchmark ``name`` in ``text``."""
    section = f"<!-- bench:{name} -->\n## {name}\n\n_{machine()}_\n\n{body}\n<!-- /bench:{name} -->"
    pattern = re.compile(
        rf"<!-- bench:{re.escape(name)} -->.*?<!-- /bench:{re.escape(name)} -->", re.S
    )
    if pattern.search(text):
        return pattern.sub(lambda _: section, text)
    return text.rstrip("\n") + "\n\n" + section + "\n"


def main(argv: list[str] | None = None) -> int:
    names = available()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "names",
        nargs="*",
        metavar="NAME",
        help=f"benchmarks to run (default: all of {', '.join(names)})",
    )
    args = parser.parse_args(argv)
    unknown = sorted(set(args.names) - set(names))
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; available: {', '.join(names)}")
    text = TARGET.read_text() if TARGET.exists() else HEADER
    for name in args.names or names:
        print(f"running bench_{name} ...", flush=True)
        body = run_one(name)
        print(body, flush=True)
        text = update(text, name, body)
        TARGET.write_text(text)  # after each one, so a later failure keeps earlier results
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
