"""CPU cost of the audio front half: resampling, windowing, quality, live capture.

Run: ``python3 benchmarks/bench_audio.py [--capture-seconds 10]``

Prints Markdown: the CPU time each stage needs per second of audio (as a percentage of
one core, which is what the daemon's < 10 % budget is measured in), and the CPU of a
live capture through PortAudio from a real-time ALSA feed (48 kHz stereo device,
delivered as 16 kHz mono), measured on the capturing process.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from edgeasd.audio.quality import assess
from edgeasd.audio.resample import StreamResampler
from edgeasd.audio.sources import AudioBlock
from edgeasd.audio.windower import Windower

REPO = Path(__file__).resolve().parents[1]


def _cpu_percent(seconds_of_audio: float, run) -> float:
    start = time.process_time()
    run()
    return 100.0 * (time.process_time() - start) / seconds_of_audio


def stage_rows(seconds: float = 60.0) -> list[tuple[str, float]]:
    """(stage, % of one core) for the in-process stages."""
    rng = np.random.default_rng(0)
    rows = []
    for sr_in, block in ((48000, 0.1), (44100, 0.1), (16000, 0.1)):
        x = rng.uniform(-0.5, 0.5, int(seconds * sr_in)).astype(np.float32)
        n = int(block * sr_in)
        parts = [x[i : i + n] for i in range(0, x.size, n)]
        stream = StreamResampler(sr_in, 16000)
        pct = _cpu_percent(seconds, lambda s=stream, p=parts: [s.process(b) for b in p])
        rows.append((f"resample {sr_in} -> 16000 Hz, {block:g} s blocks", pct))
    y = rng.uniform(-0.5, 0.5, int(seconds * 16000)).astype(np.float32)
    blocks = [AudioBlock(y[i : i + 1600], i / 16000) for i in range(0, y.size, 1600)]
    w = Windower(16000, 10.0, 5.0)
    rows.append(
        (
            "windower 10 s windows, 5 s hop, 0.1 s blocks",
            _cpu_percent(seconds, lambda: [w.push(b) for b in blocks]),
        )
    )
    windows = [y[i : i + 160000] for i in range(0, y.size - 160000 + 1, 80000)]
    rows.append(
        (
            "quality assess, 10 s windows every 5 s",
            _cpu_percent(seconds, lambda: [assess(v) for v in windows]),
        )
    )
    return rows


def _capture_cpu(seconds: float) -> tuple[float, dict]:
    """CPU seconds of a subprocess capturing ``seconds`` from a real-time 48 kHz stereo
    feed (including its start and imports), and its JSON result."""
    sys.path.insert(0, str(REPO / "tests"))
    from support.alsa_feed import AlsaFeed

    rng = np.random.default_rng(1)
    x = (rng.standard_normal((int(seconds * 48000), 2)) * 0.1).astype(np.float32)
    with tempfile.TemporaryDirectory() as tmp, AlsaFeed(tmp, x, rate=48000, realtime=True) as feed:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        proc = subprocess.run(
            [sys.executable, str(REPO / "tests" / "support" / "capture.py"), "--device", "feed",
             "--seconds", str(seconds), "--capture-channels", "2"],
            env=feed.env, capture_output=True, text=True, timeout=seconds + 120,
        )  # fmt: skip
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return cpu, result


def capture_row(seconds: float) -> tuple[str, float, dict]:
    """Steady-state CPU of live capture: the CPU of a ``seconds + 1`` s capture minus that
    of a 1 s capture (process start, imports), per second of audio."""
    short, _ = _capture_cpu(1.0)
    long, result = _capture_cpu(seconds + 1.0)
    name = "live capture 48 kHz stereo -> 16 kHz mono, steady state (PortAudio + ALSA + ours)"
    return name, 100 * (long - short) / seconds, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--capture-seconds", type=float, default=10.0)
    args = parser.parse_args()
    print("| stage | CPU, % of one core |")
    print("|---|---:|")
    for name, pct in stage_rows():
        print(f"| {name} | {pct:.3f} |")
    name, pct, result = capture_row(args.capture_seconds)
    print(f"| {name} | {pct:.2f} |")
    stats = result.get("stats", {})
    print(
        f"\nLive capture: {args.capture_seconds:g} s requested, "
        f"elapsed {result.get('elapsed', 0):.1f} s "
        f"(includes process start and imports), overflows {stats.get('overflows')}, "
        f"dropped {stats.get('dropped')}."
    )


if __name__ == "__main__":
    main()
