"""The daemon's lifecycle in four lines: started, ready, stopping, stopped.

``edgeasd run`` logs them at INFO under the logger ``edgeasd``, so they reach the terminal
that started it and, under systemd, the journal (``journalctl -u edgeasd``)::

    started edgeasd 0.1.0: model edgeasd-spectral-v1:a592903d71a6279a; bank 120 references
        (source 100, target 20); threshold 4.29 (rule auto); source microphone 'USB Audio'
    ready: audio arriving, a 10 s window every 10 s; control socket /run/edgeasd/control.sock
    stopping (SIGTERM): the partial window is dropped, logs flushed, the bank is left as saved
    stopped after 3.2 h: 1,152 windows, 1,140 scored, 2 alerts

Each function reads the :class:`~edgeasd.agent.runloop.daemon.Daemon`'s attributes and
its status snapshot; none changes anything.
"""

from __future__ import annotations

from typing import Any

from edgeasd import __version__, readable


def _source(config: Any) -> str:
    src = config.source
    if src.kind == "microphone":
        return f"microphone {src.device!r}" if src.device else "microphone (the default device)"
    if src.kind == "file":
        return f"file {src.path}" + (" (looped)" if src.loop else "")
    return "demo (a simulated machine)"


def _bank(daemon: Any) -> str:
    from edgeasd.agent.enrollment import bank_lifecycle

    per = bank_lifecycle.bank_summary(daemon.bank)
    detail = ", ".join(f"{d} {readable.count(n)}" for d, n in per.items())
    return f"bank {readable.count(len(daemon.bank))} references" + (
        f" ({detail})" if detail else ""
    )


def _threshold(daemon: Any) -> str:
    st = daemon._state
    if st.learning:
        return f"learning: {st.learning}"
    if not st.calibrated:
        return f"no threshold yet: {st.threshold_source}"
    return f"threshold {readable.score(st.threshold)} (rule {daemon.config.threshold.rule})"


def started(daemon: Any) -> str:
    """Version, model, bank, threshold and source, once model and bank are loaded."""
    model = daemon.info.id + (
        " (the older shipped model that built the bank)" if daemon.model_note else ""
    )
    return (
        f"started edgeasd {__version__}: model {model}; {_bank(daemon)}; {_threshold(daemon)}; "
        f"source {_source(daemon.config)}"
    )


def ready(daemon: Any) -> str:
    """The first audio arrived: windows are processed, the control socket answers."""
    return (
        f"ready: audio arriving, a {readable.duration(daemon.window_seconds)} window every "
        f"{readable.duration(daemon.hop_seconds)}; control socket {daemon.dirs.control_socket}"
    )


def stopping(daemon: Any) -> str:
    """Why it stops (the signal, or the end of the source) and what is kept."""
    why = daemon._stop_reason or "the source ended"
    return (
        f"stopping ({why}): the partial window is dropped, the logs flushed, the bank kept as saved"
    )


def stopped(daemon: Any) -> str:
    """How long it ran and what it did."""
    s = daemon.status.snapshot()
    return (
        f"stopped after {readable.duration(s.get('uptime_seconds'))}: "
        f"{readable.count(s.get('windows', 0))} windows, "
        f"{readable.count(s.get('windows_scored', 0))} scored, "
        f"{readable.count(s.get('alerts', 0))} alert{'' if s.get('alerts') == 1 else 's'}"
    )
