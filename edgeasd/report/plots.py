"""The pictures of ``edgeasd report``, drawn with matplotlib (the ``plot`` extra, Agg).

:func:`timeline_png` draws the score over time; :func:`alert_png` one alert's
spectrograms and band-wise difference. Both return PNG bytes.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import numpy as np

from edgeasd.audio.mel import FMIN, HOP, mel_edges
from edgeasd.errors import InputError
from edgeasd.report.summary import stopped_spans

#: Spectrogram colour range below the loudest band-frame, in dB (quieter is one colour).
DYNAMIC_RANGE_DB = 80.0
#: Colours of the nearest-reference domains (red is kept for windows above the threshold).
_DOMAIN_COLOURS = ("tab:blue", "tab:green", "tab:purple", "tab:brown", "tab:olive", "tab:cyan")


def pyplot() -> Any:
    """matplotlib's pyplot on the Agg backend.

    Raises
    ------
    InputError
        matplotlib is not installed, with the command that installs it.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise InputError(
            "edgeasd report draws with matplotlib, which is not installed",
            help="pip install 'edgeasd[plot]'",
        ) from None
    return plt


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    pyplot().close(fig)
    return buf.getvalue()


def _dt(unix: float) -> datetime:
    return datetime.fromtimestamp(unix).astimezone()


def _signal_spans(events: Sequence[dict[str, Any]], end: float) -> list[tuple[float, float, str]]:
    """(start, end, status) of each stretch with a bad signal (from ``signal`` events)."""
    spans, bad = [], None
    for e in (e for e in events if e.get("event") == "signal"):
        if bad is not None:
            spans.append((bad[0], e["unix"], bad[1]))
            bad = None
        if e.get("status", "ok") != "ok":
            bad = (e["unix"], str(e.get("status")))
    if bad is not None:
        spans.append((bad[0], max(end, bad[0]), bad[1]))
    return spans


def timeline_figure(
    windows: Sequence[dict[str, Any]],
    events: Sequence[dict[str, Any]],
    group_domains: dict[str, str] | None = None,
) -> Any:
    """Score over time (log axis) with threshold, alerts, enrollments, domains and signal.

    Windows above their threshold are red; stretches without windows (the agent was not
    running, :func:`edgeasd.report.summary.stopped_spans`) are shaded grey; enrollment
    labels never overlap nor leave the plot (:func:`place_labels`).

    Parameters
    ----------
    windows : sequence of dict
        ``window`` records with ``unix`` (UNIX time) added; scored ones have ``score``,
        ``threshold`` and ``nearest_domain``.
    events : sequence of dict
        The other events (``alert``, ``recovered``, ``enrolled``, ``signal``) with ``unix``.
    group_domains : dict, optional
        Enrollment group id → domain (from the kept enrollment audio), to label enrollments.
    """
    plt = pyplot()
    import matplotlib.dates as mdates

    fig, ax = plt.subplots(figsize=(13, 4.8))
    tz = datetime.now().astimezone().tzinfo
    scored = [w for w in windows if isinstance(w.get("score"), (int, float))]
    if scored:
        t = [_dt(w["unix"]) for w in scored]
        s = np.array([w["score"] for w in scored], dtype=float)
        ax.plot(t, s, color="0.75", lw=0.8, zorder=1)
        domains = [str(w.get("nearest_domain")) for w in scored]
        above = np.array([_above(w) for w in scored], dtype=bool)
        for k, d in enumerate(sorted(set(domains))):
            pick = [i for i, x in enumerate(domains) if x == d and not above[i]]
            ax.scatter(
                [t[i] for i in pick],
                s[pick],
                s=12,
                zorder=2,
                color=_DOMAIN_COLOURS[k % len(_DOMAIN_COLOURS)],
                label=f"nearest reference: {d}",
            )
        if above.any():
            ax.scatter(
                [t[i] for i in np.flatnonzero(above)],
                s[above],
                s=22,
                zorder=3,
                color="red",
                edgecolors="darkred",
                label="above the threshold",
            )
        with_thr = [w for w in scored if isinstance(w.get("threshold"), (int, float))]
        if with_thr:
            ax.step(
                [_dt(w["unix"]) for w in with_thr],
                [w["threshold"] for w in with_thr],
                where="post",
                color="k",
                ls="--",
                lw=1.2,
                label="threshold",
            )
        # ratio scores are positive: a log axis; other normalizations can reach 0 or below
        ax.set_yscale("log" if (s > 0).all() else "symlog")
    else:
        ax.text(0.5, 0.5, "no scored window in this range", transform=ax.transAxes, ha="center")
    style = {
        "alert": {"color": "red", "lw": 1.8, "ls": "-"},
        "recovered": {"color": "green", "lw": 1.4, "ls": ":"},
        "enrolled": {"color": "tab:blue", "lw": 1.2, "ls": "-."},
        "feedback": {"color": "tab:purple", "lw": 1.2, "ls": "-."},
        "removed": {"color": "tab:gray", "lw": 1.2, "ls": "--"},
        "restored": {"color": "tab:orange", "lw": 1.2, "ls": "--"},
    }
    seen: set[str] = set()
    enrollments = []
    for e in events:
        kind = e.get("event")
        if kind in style:
            label = None if kind in seen else kind
            seen.add(kind)
            ax.axvline(_dt(e["unix"]), label=label, **style[kind])
            if kind == "enrolled":
                enrollments.append(e)
    for i, (a, b) in enumerate(stopped_spans(windows)):
        ax.axvspan(
            _dt(a),
            _dt(b),
            color="0.6",
            alpha=0.3,
            hatch="//",
            zorder=0,
            label="agent not running (no windows)" if i == 0 else None,
        )
    end = max([w["unix"] for w in windows] + [e["unix"] for e in events])
    for i, (a, b, status) in enumerate(_signal_spans(events, end)):
        ax.axvspan(
            _dt(a), _dt(b), color="orange", alpha=0.25, label="bad signal" if i == 0 else None
        )
        ax.annotate(
            status, (_dt(a), 0.02), xycoords=("data", "axes fraction"), fontsize=8, color="C1"
        )
    locator = mdates.AutoDateLocator(tz=tz)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator, tz=tz))
    ax.set_ylabel("score (higher = more anomalous)")
    ax.set_title("score over time")
    ax.grid(True, which="major", alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    ax.set_ylim(top=ax.get_ylim()[1] * (4.0 if ax.get_yscale() == "log" else 1.25))
    place_labels(fig, ax, _enrollment_labels(enrollments, group_domains or {}))
    return fig


def timeline_png(
    windows: Sequence[dict[str, Any]],
    events: Sequence[dict[str, Any]],
    group_domains: dict[str, str] | None = None,
) -> bytes:
    """:func:`timeline_figure` as PNG bytes."""
    return _png(timeline_figure(windows, events, group_domains))


def _above(w: dict[str, Any]) -> bool:
    thr = w.get("threshold")
    return isinstance(thr, (int, float)) and w["score"] > thr


def _enrollment_labels(
    enrollments: Sequence[dict[str, Any]], group_domains: dict[str, str]
) -> list[tuple[float, str]]:
    """(UNIX time, text) of each enrollment mark: references added and their domains."""
    out = []
    for e in enrollments:
        n = len(e.get("ids") or ())
        tags = {group_domains.get(g) for g in e.get("groups") or ()} - {None}
        out.append((e["unix"], f"+{n} refs" + (f" ({', '.join(sorted(tags))})" if tags else "")))
    return out


def place_labels(fig: Any, ax: Any, labels: Sequence[tuple[float, str]]) -> list[Any]:
    """Draw enrollment labels at the top of the plot, none overlapping, none clipped.

    Marks closer than :data:`_BURST_PX` to the previous are one label (``+20 refs in 2
    enrollments``); each label is put in the first row (from the top) where it overlaps
    no other, left-aligned at its mark, or right-aligned when it would pass the plot's
    right edge.

    Returns
    -------
    list of matplotlib.text.Text
        The labels drawn (their extents are what a test checks).
    """
    if not labels:
        return []
    import matplotlib.dates as mdates

    renderer = fig.canvas.get_renderer()
    box = ax.get_window_extent(renderer)
    merged: list[tuple[float, list[str]]] = []
    last = -np.inf
    for unix, text in sorted(labels):
        x = ax.transData.transform((mdates.date2num(_dt(unix)), 0))[0]
        if x - last < _BURST_PX:  # a burst of marks: one label at its first
            merged[-1][1].append(text)
        else:
            merged.append((x, [text]))
        last = x
    rows: list[list[tuple[float, float]]] = []
    drawn = []
    for x, texts in merged:
        text = _merge_text(texts)
        width = _width(ax, renderer, [text])
        left = x + 3 if x + 3 + width <= box.x1 - 2 else x - 3 - width
        left = max(left, box.x0 + 2)
        span = (left - 2, left + width + 2)
        row = next(
            (i for i, r in enumerate(rows) if all(span[1] < a or span[0] > b for a, b in r)),
            len(rows),
        )
        if row == len(rows):
            rows.append([])
        rows[row].append(span)
        y = box.y1 - 4 - row * _ROW_PX
        xa, ya = ax.transAxes.inverted().transform((left, y))
        drawn.append(
            ax.text(xa, ya, text, transform=ax.transAxes, ha="left", va="top", fontsize=8,
                    color="tab:blue", zorder=5,
                    bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.8, "pad": 1})
        )  # fmt: skip
    return drawn


_ROW_PX = 14  # one row of 8-point labels at 100 dpi, with a little air
_BURST_PX = 25  # marks this close (a quarter of a short label) read as one


def _merge_text(texts: list[str]) -> str:
    if len(texts) == 1:
        return texts[0]
    refs = sum(int(t.split()[0].lstrip("+")) for t in texts)
    tags = sorted({t[t.index("(") + 1 : -1] for t in texts if "(" in t})
    return f"+{refs} refs in {len(texts)} enrollments" + (f" ({', '.join(tags)})" if tags else "")


def _width(ax: Any, renderer: Any, texts: list[str]) -> float:
    probe = ax.text(0, 0, _merge_text(texts), fontsize=8, transform=None)
    width = probe.get_window_extent(renderer).width
    probe.remove()
    return width


def alert_png(
    alert_mel: np.ndarray, ref_mel: np.ndarray | None, sample_rate: int, ref_id: Any
) -> bytes:
    """Alerted window and nearest reference log-mel spectrograms and their band difference.

    Parameters
    ----------
    alert_mel, ref_mel : numpy.ndarray, shape (bands, frames)
        :func:`edgeasd.audio.mel.log_mel` in dB; ``ref_mel`` None when the reference's
        audio is not kept (its panel then says so).
    sample_rate : int
        The rate both were computed at (for the time and frequency axes).
    ref_id : int
        The reference's bank id, for the title.
    """
    plt = pyplot()
    bands = alert_mel.shape[0]
    centres = mel_edges(sample_rate, bands, FMIN)[1:-1]
    fig, axes = plt.subplots(
        1, 3, figsize=(13, 4.2), sharey=True, gridspec_kw={"width_ratios": [5, 5, 2.8]}
    )
    top = max(alert_mel.max(), -np.inf if ref_mel is None else ref_mel.max())
    opts = {
        "origin": "lower",
        "aspect": "auto",
        "cmap": "magma",
        "vmin": top - DYNAMIC_RANGE_DB,
        "vmax": top,
        "interpolation": "nearest",
    }
    image = None
    for ax, mel, title in (
        (axes[0], alert_mel, "alerted window"),
        (axes[1], ref_mel, f"nearest normal reference #{ref_id}"),
    ):
        ax.set_title(title)
        ax.set_xlabel("time (s)")
        if mel is None:
            ax.text(
                0.5,
                0.5,
                "reference audio not kept",
                transform=ax.transAxes,
                ha="center",
                va="center",
            )
            continue
        seconds = mel.shape[1] * HOP / sample_rate
        image = ax.imshow(mel, extent=(0, seconds, -0.5, bands - 0.5), **opts)
    ticks = np.linspace(0, bands - 1, 7).round().astype(int)
    axes[0].set_yticks(ticks, [f"{centres[i]:.0f}" for i in ticks])
    axes[0].set_ylabel("mel band centre (Hz)")
    if image is not None:
        fig.colorbar(image, ax=axes[:2].tolist(), label="dB", pad=0.01)
    ax = axes[2]
    ax.set_title("alert − reference")
    ax.set_xlabel("mean band energy (dB)")
    # its own frequency axis (the panels share the bands, not the labels)
    ax.tick_params(axis="y", labelleft=True)
    ax.set_ylabel("band centre (Hz)")
    if ref_mel is not None:
        diff = alert_mel.mean(axis=1) - ref_mel.mean(axis=1)
        ax.barh(np.arange(bands), diff, height=1.0, color=np.where(diff > 0, "C3", "C0"))
        ax.axvline(0, color="k", lw=0.8)
        ax.grid(True, axis="x", alpha=0.3)
    else:
        ax.text(0.5, 0.5, "n/a", transform=ax.transAxes, ha="center", va="center")
    ax.set_ylim(-0.5, bands - 0.5)
    return _png(fig)
