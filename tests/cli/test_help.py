"""Every command's help: grouped, described, with examples, defaults and no Python names."""

from __future__ import annotations

import argparse
import re
import subprocess
import sys

import pytest

from edgeasd.cli import build_parser
from edgeasd.cli.help import DEVELOPER_COMMANDS, walk

PARSERS = list(walk(build_parser()))
SUBCOMMANDS = [(path, p) for path, p in PARSERS if path]
#: A dotted Python name (edgeasd.synth.DEFAULT_SNR_DB), not a file name (edgeasd.yaml).
PYTHON_NAME = re.compile(r"\bedgeasd(\.[A-Za-z_]+){2,}|\b(DEFAULT|MAX|MIN)_[A-Z0-9_]+\b")
#: Option defaults that need no statement (off switches, "not given").
SILENT_DEFAULTS = (None, False, argparse.SUPPRESS)


def _ids(items):
    return [" ".join(path) for path, _ in items]


def test_top_level_help_groups_operator_and_developer_commands():
    out = subprocess.run(
        [sys.executable, "-m", "edgeasd", "--help"], capture_output=True, text=True, check=True
    ).stdout
    assert out.startswith("usage: edgeasd [-h] [--version] [-v] COMMAND ...")
    operator, developer = out.split("operator commands")[1].split("developer commands")
    listed = lambda text: re.findall(r"^  ([a-z][a-z-]*) ", text, re.MULTILINE)  # noqa: E731
    assert set(listed(developer)) == set(DEVELOPER_COMMANDS)
    assert {"run", "status", "tail", "enroll", "doctor", "bank", "report"} <= set(listed(operator))
    assert not set(listed(operator)) & set(DEVELOPER_COMMANDS)
    assert "positional arguments" not in out


@pytest.mark.parametrize(("path", "parser"), SUBCOMMANDS, ids=_ids(SUBCOMMANDS))
def test_every_subcommand_has_a_description_and_an_example(path, parser):
    assert parser.description and len(parser.description) > 20
    text = parser.format_help()
    assert re.search(r"^examples?:\n  (edgeasd|sudo|systemctl) ", text, re.MULTILINE), text


@pytest.mark.parametrize(("path", "parser"), PARSERS, ids=_ids(PARSERS) or ["edgeasd"])
def test_every_argument_is_explained_with_its_default(path, parser):
    for action in parser._actions:
        if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
            continue
        if action.dest in ("version",):
            continue
        name = "/".join(action.option_strings) or action.dest
        assert action.help and action.help is not argparse.SUPPRESS, f"{name} has no help"
        if action.option_strings and action.default not in SILENT_DEFAULTS:
            assert "default" in action.help, f"{name}: default {action.default!r} not stated"


@pytest.mark.parametrize(("path", "parser"), PARSERS, ids=_ids(PARSERS) or ["edgeasd"])
def test_no_internal_python_names_in_help(path, parser):
    text = parser.format_help()
    assert not PYTHON_NAME.search(text), text


def test_report_range_defaults_are_not_defined_by_each_other():
    report = dict(PARSERS)[("report",)]
    helps = {a.dest: a.help for a in report._actions}
    assert "--since" not in helps["until"] and "(default: now)" in helps["until"]
    assert "--until" not in helps["since"]


def test_synth_states_the_simulators_own_default_snr():
    from edgeasd.synth.render import DEFAULT_SNR_DB

    synth = dict(PARSERS)[("synth",)]
    snr = next(a for a in synth._actions if a.dest == "snr_db")
    assert f"(default: {DEFAULT_SNR_DB:g})" in snr.help
