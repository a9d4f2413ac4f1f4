"""``edgeasd bank remove`` and ``bank restore``: through the running daemon, else on the file.

With a daemon running, the change is applied by its run loop (monitoring goes on with the
changed bank); with none, directly under the bank's write lock. Either way the change is a
``removed`` / ``restored`` event in ``alerts.jsonl``, MQTT and the report
(:mod:`edgeasd.agent.alerts.bank_events`).
"""

from __future__ import annotations

import argparse
from typing import Any

from edgeasd.cli.common import bank_notes_in_words, config_of, hop_seconds, paths_of, state_line

#: Seconds to wait for the daemon to apply a removal or restore (one bank save and load).
EDIT_TIMEOUT = 120.0


def _through_daemon(paths: Any, op: str, **params: Any) -> dict[str, Any] | None:
    """The daemon's result of ``op``, or None when no daemon runs."""
    from edgeasd.agent.control.client import ControlClient
    from edgeasd.agent.control.protocol import DaemonNotRunning

    try:
        return ControlClient(paths.control_socket, timeout=EDIT_TIMEOUT).request(op, **params)
    except DaemonNotRunning:
        return None


def _direct_state(config: Any, paths: Any, result: dict[str, Any]) -> dict[str, Any]:
    """The bank after a direct change: size, conditions, state and threshold."""
    from edgeasd.agent.alerts import decision
    from edgeasd.agent.enrollment.bank_lifecycle import bank_summary
    from edgeasd.scoring import load_bank

    bank = load_bank(paths.bank)
    state = decision.bank_state(bank, config, hop_seconds(config))
    return {**result, "bank_size": len(bank), "domains": bank_summary(bank), **state.as_dict()}


def cmd_remove(args: argparse.Namespace) -> int:
    """``bank remove ID...``: drop references (and their kept audio once a group is empty)."""
    with bank_notes_in_words():  # the bank's own log lines are for the daemon's journal
        return _remove(args)


def _remove(args: argparse.Namespace) -> int:
    from edgeasd.agent.alerts.bank_events import bank_event, emit_direct
    from edgeasd.agent.enrollment.bank_edits import remove_references
    from edgeasd.agent.enrollment.kept_audio import AudioStore
    from edgeasd.scoring import load_bank, store

    config = config_of(args)
    paths = paths_of(config)
    ids = [int(i) for i in args.ids]
    result = _through_daemon(paths, "bank_remove", ids=ids)
    how = "by the running daemon"
    if result is None:
        how = "directly (no daemon running)"
        with store.locked(paths.bank):
            bank = load_bank(paths.bank)
            audio = AudioStore(paths.audio_dir, config.enrollment.audio_max_bytes)
            result = remove_references(bank, paths.bank, ids, audio)
        result = _direct_state(config, paths, result)
        emit_direct(config, paths, bank_event("removed", result, "direct"))
    print(f"removed {len(result['removed'])} references {how}; {result['bank_size']} left")
    print(f"state: {state_line(result)}")
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    """``bank restore [GENERATION]``: list the automatic backups, or put one back."""
    with bank_notes_in_words():  # the bank's own log lines are for the daemon's journal
        return _restore(args)


def _restore(args: argparse.Namespace) -> int:
    from edgeasd.agent.alerts.bank_events import bank_event, emit_direct
    from edgeasd.agent.enrollment.bank_edits import restore_generation
    from edgeasd.scoring import store

    config = config_of(args)
    paths = paths_of(config)
    if args.generation is None:
        found = store.backups(paths.bank)
        if not found:
            print(f"no automatic backup of {paths.bank} yet (one is kept at every save)")
            return 0
        for g in found:
            print(g.describe())
        print("restore one with `edgeasd bank restore GENERATION` (the daemon may run)")
        return 0
    result = _through_daemon(paths, "bank_restore", generation=args.generation)
    how = "by the running daemon"
    if result is None:
        how = "directly (no daemon running)"
        result = _direct_state(config, paths, restore_generation(paths.bank, args.generation))
        emit_direct(config, paths, bank_event("restored", result, "direct"))
    print(f"restored {result['restored']} {how}; bank: {result['bank_size']} references")
    print(
        "the replaced bank is now generation 1 (`edgeasd bank restore 1` undoes this, "
        "`edgeasd bank restore` lists them all)"
    )
    print(f"state: {state_line(result)}")
    return 0
