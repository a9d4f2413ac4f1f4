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

#: Spectrogram colour range below the loudest band-frame, in dB (quieter is one colour).
DYNAMIC_RANGE_DB = 80.0


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


def timeline_png(
    windows: Sequence[dict[str, Any]],
    events: Sequence[dict[str, Any]],
    group_domains: dict[str, str] | None = None,
) -> bytes:
    """Score over time (log axis) with threshold, alerts, enrollments, domains and signal.

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
        for d in sorted(set(domains)):
            pick = [i for i, x in enumerate(domains) if x == d]
            ax.scatter(
                [t[i] for i in pick], s[pick], s=12, zorder=2, label=f"nearest reference: {d}"
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
    for e in events:
        kind = e.get("event")
        if kind in style:
            label = None if kind in seen else kind
            seen.add(kind)
            ax.axvline(_dt(e["unix"]), label=label, **style[kind])
            if kind == "enrolled":
                n = len(e.get("ids") or ())
                tags = {(group_domains or {}).get(g) for g in e.get("groups") or ()} - {None}
                ax.annotate(
                    f"+{n} refs" + (f" ({', '.join(sorted(tags))})" if tags else ""),
                    (_dt(e["unix"]), 1.0),
                    xycoords=("data", "axes fraction"),
                    rotation=90,
                    va="top",
                    ha="right",
                    fontsize=8,
                    color="tab:blue",
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
    return _png(fig)


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
        1, 3, figsize=(13, 4.2), sharey=True, gridspec_kw={"width_ratios": [5, 5, 2.2]}
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
    if ref_mel is not None:
        diff = alert_mel.mean(axis=1) - ref_mel.mean(axis=1)
        ax.barh(np.arange(bands), diff, height=1.0, color=np.where(diff > 0, "C3", "C0"))
        ax.axvline(0, color="k", lw=0.8)
        ax.grid(True, axis="x", alpha=0.3)
    else:
        ax.text(0.5, 0.5, "n/a", transform=ax.transAxes, ha="center", va="center")
    ax.set_ylim(-0.5, bands - 0.5)
    return _png(fig)
