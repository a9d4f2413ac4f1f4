"""Checks of an installation: ``edgeasd devices``, ``edgeasd doctor``, ``edgeasd config check``."""

from __future__ import annotations

import argparse
from typing import Any

from edgeasd.cli.common import add_config_arg, config_of, default_config_path, paths_of
from edgeasd.config import Config


def cmd_devices(args: argparse.Namespace) -> int:
    """``edgeasd devices``: capture devices PortAudio sees."""
    from edgeasd.audio.microphone import list_devices

    devices = list_devices()
    if not devices:
        print("no audio capture devices found (is a microphone plugged in? `arecord -l`)")
        return 1
    for d in devices:
        print(f"{d.index:>3}  {d.describe()}")
    print("\nconfigure source.device with (part of) a name, never the index: indices change")
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    """``edgeasd doctor``: check config, model, bank, device, numba cache and disk."""
    from edgeasd.agent.service.doctor import run_checks

    failed = 0
    for check in run_checks(args.config or default_config_path()):
        mark = {"ok": "ok  ", "warn": "WARN", "fail": "FAIL"}[check.level]
        print(f"[{mark}] {check.name:<12} {check.detail}")
        if check.help and check.level != "ok":
            print(f"       {'':<12} hint: {check.help}")
        failed += check.level == "fail"
    return 1 if failed else 0


def cmd_config_check(args: argparse.Namespace) -> int:
    """``edgeasd config check``: validate the configuration and show what it resolves to."""
    config = config_of(args)
    paths = paths_of(config)
    print(f"configuration ok: {config.origin or 'built-in defaults'}")
    print(
        f"  source:   {config.source.kind}"
        + (
            f" ({config.source.device or config.source.path})"
            if config.source.device or config.source.path
            else ""
        )
    )
    files = config.model.paths
    if len(files) > 1:
        print(f"  model:    ensemble of {len(files)} (distances averaged):")
        for file in files:
            print(f"            - {file}")
    else:
        print(f"  model:    {files[0] if files else 'shipped default'}")
    for name in ("state_dir", "runtime_dir", "log_dir"):
        print(f"  {name + ':':<10}{getattr(paths, name)}")
    return _check_against_model_and_bank(config, paths)


def _check_against_model_and_bank(config: Config, paths: Any) -> int:
    """``window.seconds`` against the model (an error), scoring keys against the bank (warn)."""
    from edgeasd.agent.enrollment import bank_lifecycle
    from edgeasd.agent.runloop.stages import check_window, make_embedder
    from edgeasd.scoring import load_bank

    info = make_embedder(config).info
    check_window(config, info)  # raises ConfigError: the daemon would refuse to start
    print(f"  window:   {info.window_seconds:g} s (the model's)")
    if paths.bank.exists():
        mismatch = bank_lifecycle.settings_mismatch(load_bank(paths.bank), config.scoring)
        if mismatch:
            print(f"warning: {mismatch}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``devices``, ``doctor`` and ``config check`` to the ``edgeasd`` parser."""
    p = subparsers.add_parser("devices", help="list audio capture devices")
    p.set_defaults(func=cmd_devices)

    p = subparsers.add_parser("doctor", help="check config, model, bank, microphone, disk")
    add_config_arg(p)
    p.set_defaults(func=cmd_doctor)

    p = subparsers.add_parser(
        "config",
        help="configuration tools",
        description="Check a configuration file before the agent runs with it.",
    )
    sub = p.add_subparsers(dest="config_command", metavar="SUBCOMMAND", required=True)
    c = sub.add_parser("check", help="validate a configuration file")
    add_config_arg(c)
    c.set_defaults(func=cmd_config_check)
