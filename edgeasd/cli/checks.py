"""Checks of an installation: ``edgeasd devices``, ``edgeasd doctor``, ``edgeasd config check``."""

from __future__ import annotations

import argparse

from edgeasd.cli.common import add_config_arg, config_of, default_config_path, paths_of


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
    """``edgeasd config check``: what ``run`` would refuse, then what the configuration resolves to.

    Refused (exit 2, nothing printed as ok): invalid keys, a ``file`` source whose path does
    not exist or holds no audio, a ``window.seconds`` the model cannot take, a bank of a model
    this configuration cannot use.
    """
    from edgeasd.agent.enrollment import bank_lifecycle
    from edgeasd.agent.runloop.stages import check_window, open_model_and_bank, source_options
    from edgeasd.audio.factory import check_source

    config = config_of(args)
    paths = paths_of(config)
    check_source(*source_options(config))  # raises ConfigError: run would exit 2
    embedder, bank, note = open_model_and_bank(config, paths.bank)
    info = embedder.info
    check_window(config, info)  # raises ConfigError: the daemon would refuse to start
    src = config.source
    rows = [
        ("source", src.kind + (f" ({src.device or src.path})" if src.device or src.path else ""))
    ]
    files = config.model.paths
    if len(files) > 1:
        rows.append(("model", f"ensemble of {len(files)} (distances averaged)"))
        rows += [("", f"- {file}") for file in files]
    else:
        rows.append(("model", files[0] if files else f"shipped default ({info.id})"))
    rows.append(("window", f"{info.window_seconds:g} s (the model's)"))
    rows += [(name, str(getattr(paths, name))) for name in ("state_dir", "runtime_dir", "log_dir")]
    rows.append(("bank", f"{len(bank)} references" if paths.bank.exists() else "none yet"))
    width = max(len(label) for label, _ in rows) + 2
    print(f"configuration ok: {config.origin or 'built-in defaults'}")
    for label, text in rows:
        print(f"  {(label + ':') if label else '':<{width}}{text}")
    if note:
        print(f"note: {note}")
    split = split_recordings_note(config.enrollment.group_seconds)
    if split:
        print(f"note: {split}")
    if paths.bank.exists():
        mismatch = bank_lifecycle.settings_mismatch(bank, config.scoring)
        if mismatch:
            print(f"warning: {mismatch}")
    return 0


#: Below this ``enrollment.group_seconds`` a recording of a few minutes becomes several
#: groups; ``config check`` says what that does (a configuration copied from a release before
#: issue 17 says 60).
SPLIT_NOTE_BELOW_SECONDS = 600.0


def split_recordings_note(group_seconds: float) -> str | None:
    """A note when ``enrollment.group_seconds`` cuts ordinary recordings into several groups."""
    if group_seconds >= SPLIT_NOTE_BELOW_SECONDS:
        return None
    return (
        f"enrollment.group_seconds is {group_seconds:g} s: a recording longer than that is "
        "enrolled as several groups, which then score each other as if they were separate "
        "recordings (the threshold and the commissioning count them so); the default, 3600, "
        "makes each recording one group: set it unless you measured otherwise"
    )


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
