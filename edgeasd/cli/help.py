"""How ``edgeasd --help`` reads: operator commands apart from developer ones, an example each.

The command modules register their subcommands; :func:`finish` then walks the finished
parser: it lists the commands in two groups (:data:`DEVELOPER_COMMANDS` are those that train,
export, quantize, evaluate or simulate; every other one is an operator's), gives every
subcommand a description (its one-line help when it has none) and the examples of
:data:`EXAMPLES` as its epilog. ``tests/cli/test_help.py`` holds every command to it.
"""

from __future__ import annotations

import argparse
import textwrap

#: Commands for building and judging models, not for running the agent (in --help order).
DEVELOPER_COMMANDS = ("synth", "train", "export", "quantize", "eval", "eval-real", "metrics")

#: Examples of every command and subcommand (its path, space-separated), shown in its help.
EXAMPLES: dict[str, tuple[str, ...]] = {
    "run": (
        "edgeasd run -c my.yaml                  # in a terminal, to try a configuration",
        "systemctl start edgeasd                 # the service runs `edgeasd run` itself",
    ),
    "demo": ("edgeasd demo",),
    "feedback": ("edgeasd feedback 20261207-130501-42 normal   # that alert was a false alarm",),
    "status": ("edgeasd status", "edgeasd status --json"),
    "tail": ("edgeasd tail -f", "edgeasd tail -n 100 --json", "edgeasd tail --scores -f"),
    "enroll": (
        "edgeasd enroll --next 60                # the next 60 windows (10 min) are normal",
        "edgeasd enroll --next 10m --domain target",
        "edgeasd enroll --domain target recordings/*.wav",
    ),
    "devices": ("edgeasd devices",),
    "doctor": ("edgeasd doctor", "edgeasd doctor -c /etc/edgeasd/edgeasd.yaml"),
    "config": ("edgeasd config check -c my.yaml",),
    "config check": ("edgeasd config check -c my.yaml",),
    "score": ("edgeasd score some.wav other.flac", "edgeasd score --csv *.wav > scores.csv"),
    "bank": ("edgeasd bank summary", "edgeasd bank restore"),
    "bank list": ("edgeasd bank list", "edgeasd bank list --json"),
    "bank summary": ("edgeasd bank summary", "edgeasd bank summary --json"),
    "bank remove": ("edgeasd bank remove 12 13               # ids from `edgeasd bank list`",),
    "bank rebuild": ("systemctl stop edgeasd && edgeasd bank rebuild && systemctl start edgeasd",),
    "bank restore": (
        "edgeasd bank restore                    # list the backups",
        "edgeasd bank restore 2                  # put the second newest back",
    ),
    "report": (
        "edgeasd report --since 24h -o report.html",
        "edgeasd report --since 2026-11-30T08:00 --until 2026-11-30T12:00 --no-audio",
    ),
    "service": ("sudo /opt/edgeasd/bin/edgeasd service install",),
    "service install": (
        "sudo /opt/edgeasd/bin/edgeasd service install",
        "edgeasd service install --dry-run | less",
    ),
    "synth": ("edgeasd synth --out data/sim --machines fan pump valve", "edgeasd synth --list"),
    "train": (
        "edgeasd train --data data/sim --out runs/m1 --max-minutes 60",
        "edgeasd train --data data/sim --out runs/m2 --loss subcluster --subclusters 16",
    ),
    "export": ("edgeasd export runs/m1 --calibration data/sim",),
    "quantize": ("edgeasd quantize runs/m1/model.onnx --calibration data/sim",),
    "eval": ("edgeasd eval --data data/sim --out eval-out",),
    "eval-real": (
        "edgeasd eval-real ../shared/data/real-clips",
        "edgeasd eval-real my-recordings/ --model a.onnx --model b.onnx --by both",
    ),
    "metrics": ("edgeasd metrics eval-out/ratio-knn",),
}


class HelpFormatter(argparse.HelpFormatter):
    """Wraps one-paragraph texts; keeps texts with line breaks (lists, examples) as written."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if "\n" in text:
            return textwrap.indent(text, indent)
        return super()._fill_text(text, width, indent)


def _subparsers(parser: argparse.ArgumentParser) -> argparse._SubParsersAction | None:
    return next(
        (a for a in parser._actions if isinstance(a, argparse._SubParsersAction)),
        None,
    )


def _command_list(action: argparse._SubParsersAction, names: list[str], width: int) -> str:
    helps = {a.dest: a.help or "" for a in action._choices_actions}
    return "\n".join(f"  {name:<{width}}{helps.get(name, '')}" for name in names)


def walk(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    """Yield ``(path, parser)`` for ``parser`` and every subcommand parser below it."""
    yield path, parser
    action = _subparsers(parser)
    if action is not None:
        for name, sub in action.choices.items():
            yield from walk(sub, (*path, name))


def finish(parser: argparse.ArgumentParser) -> None:
    """Group the top-level command list and give every subcommand a description and examples.

    Raises
    ------
    KeyError
        A subcommand has no entry in :data:`EXAMPLES` (a developer's mistake, caught by the
        tests).
    """
    one_line: dict[tuple[str, ...], str] = {}
    for path, sub in walk(parser):
        action = _subparsers(sub)
        for choice in action._choices_actions if action is not None else ():
            one_line[(*path, choice.dest)] = choice.help or ""
    for path, sub in walk(parser):
        sub.formatter_class = HelpFormatter
        if not path:
            continue
        text = one_line.get(path, "")
        if not sub.description and text:
            sub.description = text[:1].upper() + text[1:] + "."
        if not sub.epilog:
            examples = EXAMPLES[" ".join(path)]
            label = "example" if len(examples) == 1 else "examples"
            sub.epilog = f"{label}:\n" + "\n".join(f"  {e}" for e in examples)
    top = _subparsers(parser)
    if top is None:
        return
    names = list(top.choices)
    operator = [n for n in names if n not in DEVELOPER_COMMANDS]
    developer = [n for n in DEVELOPER_COMMANDS if n in names]
    top.help = argparse.SUPPRESS  # the grouped list below replaces argparse's single list
    parser.usage = f"{parser.prog} [-h] [--version] [-v] COMMAND ..."
    width = max(map(len, names)) + 2
    parser.description = (
        f"{parser.description}\n\n"
        "operator commands (run and look after the agent):\n"
        f"{_command_list(top, operator, width)}\n\n"
        f"developer commands (train, evaluate and simulate models):\n"
        f"{_command_list(top, developer, width)}\n\n"
        "`edgeasd COMMAND --help` describes a command, with examples."
    )
