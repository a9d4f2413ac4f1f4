"""``edgeasd report``: one self-contained HTML file that shows why the agent alerted.

For a time range it gathers the scored windows (``scores.jsonl``) and the events
(``alerts.jsonl``, rotated files included), and for every alert the audio of the alerted window
(:mod:`edgeasd.agent.alerts.alert_audio`) and of its nearest normal reference (the kept
enrollment audio, :class:`edgeasd.agent.enrollment.kept_audio.AudioStore`). The pictures are
drawn by
:mod:`edgeasd.report.plots` and embedded as base64 PNG, so the file can be mailed or
opened anywhere without the device.
"""

from __future__ import annotations

import base64
import html
import io
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from edgeasd.agent.alerts.alert_audio import alert_records, read_alert_audio
from edgeasd.agent.alerts.event_log import read_events
from edgeasd.agent.enrollment.kept_audio import AudioStore
from edgeasd.atomic import PUBLIC, write_bytes_atomic
from edgeasd.audio.mel import FMIN, log_mel, mel_edges
from edgeasd.audio.resample import resample
from edgeasd.errors import AudioFileError, InputError
from edgeasd.report import DEFAULT_MAX_ALERTS
from edgeasd.report.bank_changes import bank_changes_html
from edgeasd.report.page import alert_table, machine_and_site, peak_and_duration
from edgeasd.report.summary import (
    AlertSummary,
    band_changes,
    describe_band_changes,
    summarize_alert,
)
from edgeasd.report.summary import format_time as _fmt_time

log = logging.getLogger(__name__)

#: Default length of the report's range, ending now.
DEFAULT_SECONDS = 24 * 3600.0
_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_TIME_HELP = (
    "use an ISO 8601 time (2026-11-30T08:00, 2026-11-30, 2026-11-30T08:00+01:00), "
    "'now', or a duration before now (90m, 24h, 7d)"
)


def parse_time(text: str, now: float | None = None) -> float:
    """A command-line time as UNIX seconds.

    Parameters
    ----------
    text : str
        ISO 8601 (a time without offset is local time), ``now``, or a duration before
        now: a number and one of ``s m h d w`` (``24h``).
    now : float, optional
        The current time (default: ``time.time()``).

    Raises
    ------
    InputError
        The text is neither.
    """
    now = time.time() if now is None else now
    value = text.strip()
    if value.lower() == "now":
        return now
    if m := re.fullmatch(r"(\d+(?:\.\d+)?)\s*([smhdw])", value.lower()):
        return now - float(m[1]) * _UNITS[m[2]]
    try:
        stamp = datetime.fromisoformat(value[:-1] + "+00:00" if value.endswith("Z") else value)
    except ValueError:
        raise InputError(f"cannot read the time {text!r}", help=_TIME_HELP) from None
    return stamp.timestamp()  # naive: local time


def event_time(event: dict[str, Any]) -> float | None:
    """The UNIX time of a logged event (None: missing or unreadable ``time``)."""
    try:
        return datetime.fromisoformat(str(event["time"])).timestamp()
    except (KeyError, ValueError):
        return None


@dataclass
class AlertPanel:
    """What one alert's panel shows.

    Attributes
    ----------
    event : dict
        The ``alert`` event as logged.
    audio : numpy.ndarray or None, shape (n,)
        The alerted window's kept audio.
    reference : numpy.ndarray or None, shape (m,)
        The nearest reference's audio, at ``sample_rate``.
    sample_rate : int
    record : dict or None
        The alert audio's sidecar (nearest reference id and domain, file name).
    group : dict or None
        The nearest reference's enrollment sidecar (domain, ``created``, group).
    notes : list of str
        What is missing or approximate, said in the panel.
    """

    event: dict[str, Any]
    audio: np.ndarray | None = None
    reference: np.ndarray | None = None
    sample_rate: int = 0
    record: dict[str, Any] | None = None
    group: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)


def _in_range(t: float | None, since: float, until: float | None) -> bool:
    return t is not None and t >= since and (until is None or t <= until)


def load_range(paths: Any, since: float, until: float | None) -> tuple[list, list]:
    """The window records and other events logged in ``[since, until]``.

    Returns
    -------
    windows, events : list of dict
        Each event with ``unix`` (its time in UNIX seconds) added, oldest first.
    """
    out: tuple[list, list] = ([], [])
    for target, path in zip(out, (paths.scores_log, paths.alerts_log), strict=True):
        try:
            for event in read_events(path):
                t = event_time(event)
                if _in_range(t, since, until):
                    target.append({**event, "unix": t})
        except OSError as exc:  # the service's logs are 0750 edgeasd:edgeasd
            raise InputError(
                f"cannot read the log {path}: {exc.strerror or exc}",
                help="run the report as the service's user or root "
                "(sudo -u edgeasd edgeasd report ...)",
            ) from None
        target.sort(key=lambda e: e["unix"])
    return out


def reference_audio(
    store: AudioStore, group: dict[str, Any], ref_id: int, length: int
) -> tuple[np.ndarray | None, str | None]:
    """The audio of reference ``ref_id`` in a kept enrollment group.

    Live enrollments keep one segment per reference; file enrollments keep the contiguous
    audio their windows cover, where the reference's window is placed assuming evenly
    spaced windows (exact unless bad-quality windows were skipped inside the group).

    Parameters
    ----------
    length : int
        The window length in samples at ``group['sample_rate']``.

    Returns
    -------
    samples, note
        ``(n,)`` float32 samples or None, and what is approximate or missing (or None).
    """
    ids = [int(i) for i in group["ids"]]
    i = ids.index(int(ref_id))
    segments = list(store.segments(group))
    if len(segments) == len(ids):
        return segments[i], None
    if len(segments) == 1 and len(segments[0]) >= length:
        whole = segments[0]
        offset = round(i * (len(whole) - length) / (len(ids) - 1)) if len(ids) > 1 else 0
        note = "reference window placed within its kept recording assuming even spacing"
        return whole[offset : offset + length], note
    return None, (
        f"the kept audio of group {group['group']} no longer maps reference ids to windows "
        "(references were removed from it)"
    )


def reference_group(
    groups: list[dict[str, Any]], ref_id: Any, when: float | None
) -> dict[str, Any] | None:
    """The kept enrollment group that held reference ``ref_id`` when an alert was raised.

    Reference ids are never issued twice (:mod:`edgeasd.scoring.generations`), but kept audio
    written by older versions may name an id twice: a group dropped by a ``bank restore``
    and a later one that got the same id. The reference an alert at ``when`` was nearest to
    is in the newest of them enrolled before ``when``.

    Parameters
    ----------
    groups : list of dict
        Kept enrollment sidecars (:meth:`AudioStore.records`), oldest first.
    when : float or None
        The alert's UNIX time (None: the newest group naming the id).
    """
    named = [g for g in groups if ref_id in g.get("ids", ())]
    before = [g for g in named if when is None or float(g["created"]) <= float(when)]
    return (before or named or [None])[-1]


def alert_panels(paths: Any, config: Any, alerts: list[dict[str, Any]]) -> list[AlertPanel]:
    """Gather the audio behind each alert event; what is missing becomes a note."""
    kept = {(r.get("time"), r.get("window_index")): r for r in alert_records(paths.alert_audio_dir)}
    store = AudioStore(paths.audio_dir, config.enrollment.audio_max_bytes)
    groups = store.records()
    panels = []
    for event in alerts:
        panel = AlertPanel(event)
        panels.append(panel)
        record = kept.get((event.get("time"), event.get("window_index")))
        if record is None:
            panel.notes.append(
                "no kept audio for this alert (logs.alert_audio_max_bytes is 0, its audio "
                "was deleted by that cap, or an older agent raised it)"
            )
            continue
        panel.record = record
        try:
            panel.audio = read_alert_audio(paths.alert_audio_dir, record)
        except AudioFileError as exc:
            panel.notes.append(f"the alert's audio cannot be read: {exc}")
            continue
        panel.sample_rate = int(record["sample_rate"])
        ref_id = record.get("nearest_id")
        panel.group = reference_group(groups, ref_id, record.get("unix_time"))
        if panel.group is None:
            panel.notes.append(
                f"the enrollment audio of the nearest reference #{ref_id} is not kept "
                "(enrollment.keep_audio is off, or enrollment.audio_max_bytes deleted it)"
            )
            continue
        rate = int(panel.group["sample_rate"])
        length = round(len(panel.audio) * rate / panel.sample_rate)
        try:
            ref, note = reference_audio(store, panel.group, ref_id, length)
        except AudioFileError as exc:
            ref, note = None, f"the reference's kept audio cannot be read: {exc}"
        if note:
            panel.notes.append(note)
        if ref is not None and rate != panel.sample_rate:
            ref = resample(ref, rate, panel.sample_rate)
        panel.reference = ref
    return panels


def _img(png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


_CSS = (
    "body{font-family:sans-serif;margin:2em;max-width:1300px;color:#222}"
    "img{max-width:100%;border:1px solid #ddd}table{border-collapse:collapse}"
    "td,th{border:1px solid #ccc;padding:.2em .6em;text-align:left}"
    ".note{color:#a40}.alert{margin-top:2em;border-top:2px solid #c00;padding-top:.5em}"
)


def _audio(samples: np.ndarray, sample_rate: int, label: str) -> str:
    """An ``<audio>`` player with the samples embedded as 16-bit FLAC."""
    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, samples, sample_rate, format="FLAC", subtype="PCM_16")
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    return (
        f"<figure><figcaption>{html.escape(label)}</figcaption>"
        f'<audio controls preload="none" src="data:audio/flac;base64,{data}"></audio></figure>'
    )


def _panel_html(n: int, panel: AlertPanel, plots: Any, audio: bool, summary: AlertSummary) -> str:
    e, r, g = panel.event, panel.record or {}, panel.group or {}
    score, thr = e.get("score"), e.get("threshold")
    head = (
        f"<h3>Alert {n} at {html.escape(_fmt_time(e.get('time')))}: score "
        f"{score:.3f} &gt; threshold {thr:.3f} (window {e.get('window_index')})</h3>"
        if isinstance(score, (int, float)) and isinstance(thr, (int, float))
        else f"<h3>Alert {n} at {html.escape(_fmt_time(e.get('time')))}</h3>"
    )
    rows = [
        ("alert id", e.get("alert_id")),
        *peak_and_duration(summary),
        ("threshold from", e.get("threshold_source")),
    ]
    if r:
        rows += [
            ("nearest reference", f"#{r.get('nearest_id')} (domain {r.get('nearest_domain')})"),
            ("alert audio", r.get("file")),
        ]
    if g:
        rows += [
            ("reference enrolled", f"{_fmt_time(g.get('created'))} (group {g.get('group')})"),
            ("reference domain", g.get("domain")),
            ("reference origin", g.get("origin")),
        ]
    table = "".join(
        f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>" for k, v in rows
    )
    parts = [f'<div class="alert">{head}<table>{table}</table>']
    parts += [f'<p class="note">{html.escape(note)}</p>' for note in panel.notes]
    if panel.audio is not None:
        alert_mel = log_mel(panel.audio, panel.sample_rate)
        ref_mel = None if panel.reference is None else log_mel(panel.reference, panel.sample_rate)
        png = plots.alert_png(alert_mel, ref_mel, panel.sample_rate, r.get("nearest_id"))
        if ref_mel is not None:
            centres = mel_edges(panel.sample_rate, alert_mel.shape[0], FMIN)[1:-1]
            diff = alert_mel.mean(axis=1) - ref_mel.mean(axis=1)
            changes = describe_band_changes(band_changes(diff, centres))
            parts.append(f'<p class="changes">Largest changes: {html.escape(changes)}.</p>')
        parts.append(f"<p>{_img(png, f'alert {n} spectrograms')}</p>")
        if audio:  # ~340 kB per 10 s window at 16 kHz
            parts.append(_audio(panel.audio, panel.sample_rate, "alerted window"))
            if panel.reference is not None:
                parts.append(_audio(panel.reference, panel.sample_rate, "nearest reference"))
    return "".join(parts) + "</div>"


def render_report(
    paths: Any,
    config: Any,
    since: float,
    until: float | None,
    now: float | None = None,
    audio: bool = True,
    max_alerts: int | None = DEFAULT_MAX_ALERTS,
    progress: Callable[[str], None] | None = None,
) -> tuple[str, dict[str, int]]:
    """The HTML report of ``[since, until]`` and what it holds.

    Parameters
    ----------
    paths : edgeasd.config.paths.Paths
        Where the logs, the alert audio and the kept enrollment audio are.
    config : edgeasd.config.Config
    since, until : float
        UNIX times; ``until`` None = everything logged since ``since``.
    now : float, optional
        The time printed as "generated" (default: now).
    audio : bool
        Embed the alerted window's and the reference's audio as players (FLAC).
    max_alerts : int or None
        Show this many alerts (the latest) with pictures and audio; every alert is in
        the table of alerts. None: all of them.
    progress : callable, optional
        Receives a line for the timeline, then one per alert panel as it is drawn.

    Returns
    -------
    html, counts
        The document, and ``windows``, ``events``, ``alerts``, ``images`` counts.

    Raises
    ------
    InputError
        ``since`` is not before ``until``, or nothing was logged in the range.
    ImportError-derived InputError
        matplotlib (the ``plot`` extra) is missing.
    """
    if until is not None and since >= until:
        raise InputError(
            f"the range is empty: --since {_fmt_time(since)} is not before --until "
            f"{_fmt_time(until)}",
            help="give --since earlier than --until",
        )
    windows, events = load_range(paths, since, until)
    span = (
        f"since {_fmt_time(since)}"
        if until is None
        else f"{_fmt_time(since)} to {_fmt_time(until)}"
    )
    if not windows and not events:
        raise InputError(
            f"nothing was logged from {span} in {paths.log_dir}",
            help="widen the range (--since 7d), or pass the --config of the agent whose "
            "logs you want (its paths.log_dir)",
        )
    from edgeasd.report import plots

    plots.pyplot()  # fails with the install hint before any work
    alerts = [e for e in events if e.get("event") == "alert"]
    summaries = [summarize_alert(a, events, windows) for a in alerts]
    first = 0 if max_alerts is None else max(0, len(alerts) - max_alerts)
    panels = alert_panels(paths, config, alerts[first:])
    domains = {
        g["group"]: g["domain"]
        for g in AudioStore(paths.audio_dir, config.enrollment.audio_max_bytes).records()
    }
    say = progress or (lambda _line: None)
    say(f"{len(windows)} windows and {len(alerts)} alert(s) {span}: drawing the timeline")
    timeline = plots.timeline_png(windows, events, domains)
    scored = sum(1 for w in windows if w.get("score") is not None)
    where = machine_and_site(config)
    body = [
        f"<h1>edgeasd report: {html.escape(where)}</h1>",
        f"<p>{html.escape(span)}.</p>",
        f"<p>{len(windows)} windows ({scored} scored), {len(alerts)} alert(s), "
        f"{len(events) - len(alerts)} other events; logs in {html.escape(str(paths.log_dir))}."
        f" Generated {html.escape(_fmt_time(time.time() if now is None else now))}.</p>",
        "<h2>Timeline</h2>",
        f"<p>{_img(timeline, 'timeline')}</p>",
        *bank_changes_html(events, _fmt_time),
        "<h2>Alerts</h2>" if alerts else "<h2>Alerts</h2><p>No alert in this range.</p>",
        alert_table(alerts, summaries, first, max_alerts) if alerts else "",
        "<p>Each panel: the alerted window's log-mel spectrogram, its nearest normal "
        "reference's, and their band-wise difference (mean log-mel energy per band, alert "
        "minus reference: positive = louder now).</p>"
        if panels
        else "",
    ]
    for i, p in enumerate(panels):
        say(f"alert {i + 1} of {len(panels)}: spectrograms and band differences")
        body.append(_panel_html(first + i + 1, p, plots, audio, summaries[first + i]))
    doc = (
        '<!DOCTYPE html><html><head><meta charset="utf-8">'
        f"<title>edgeasd report {html.escape(where)}: {html.escape(span)}</title>"
        f"<style>{_CSS}</style></head>"
        f"<body>{''.join(body)}</body></html>\n"
    )
    images = 1 + sum(p.audio is not None for p in panels)
    counts = {"windows": len(windows), "events": len(events), "alerts": len(alerts)}
    return doc, {**counts, "images": images, "detailed": len(panels)}


def write_report(path: str | Path, text: str) -> Path:
    """Write the report via a temporary file and a rename (never a half-written file).

    Raises
    ------
    InputError
        The file cannot be written (missing folder, permissions, full disk).
    """
    path = Path(path)
    try:  # the user's file: the umask decides its mode, as for any file they write
        write_bytes_atomic(path, text.encode("utf-8"), PUBLIC, fsync=False)
    except OSError as exc:
        raise InputError(
            f"cannot write the report {path}: {exc.strerror or exc}",
            help="pass -o with a path in an existing, writable folder",
        ) from None
    return path
