"""Capture with :class:`edgeasd.audio.microphone.MicrophoneSource` in a subprocess.

Run as ``python tests/support/capture.py --device feed --seconds 2 --out x.npy`` with the
environment of an :class:`~support.alsa_feed.AlsaFeed` (``ALSA_CONFIG_PATH`` must be set
before sounddevice is imported, hence a separate process). Prints one JSON line:
``{"ok": true, "stats": {...}, "blocks": n, "new_segments": k, "elapsed": s,
"close_seconds": s}`` or ``{"ok": false, "error": class name, "message": ..., "help": ...}``.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default=None)
    parser.add_argument("--rate", type=int, default=16000)
    parser.add_argument("--seconds", type=float, default=1.0)
    parser.add_argument("--out", default=None)
    parser.add_argument("--channels", default="mix")
    parser.add_argument("--capture-channels", type=int, default=None)
    parser.add_argument("--stall", type=float, default=5.0)
    parser.add_argument("--blocksize", type=int, default=None)
    parser.add_argument("--latency", default=None)
    args = parser.parse_args()
    channel = args.channels if args.channels == "mix" else int(args.channels)
    from edgeasd.audio.microphone import MicrophoneSource
    from edgeasd.errors import EdgeasdError

    start = time.monotonic()
    try:
        source = MicrophoneSource(
            args.device,
            args.rate,
            channels=channel,
            capture_channels=args.capture_channels,
            stall_seconds=args.stall,
            blocksize=args.blocksize,
            latency=args.latency if args.latency in (None, "low", "high") else float(args.latency),
        )
        parts, n, news = [], 0, 0
        try:
            for block in source.blocks():
                parts.append(block.samples)
                n += block.samples.size
                news += block.new_segment
                if n >= args.seconds * args.rate:
                    break
        finally:
            t = time.monotonic()
            source.close()
            close_seconds = time.monotonic() - t
    except EdgeasdError as exc:
        print(
            json.dumps(
                {
                    "ok": False,
                    "error": type(exc).__name__,
                    "message": exc.message,
                    "help": exc.help,
                    "elapsed": time.monotonic() - start,
                }
            ),
            flush=True,
        )
        return
    if args.out:
        np.save(args.out, np.concatenate(parts))
    print(
        json.dumps(
            {
                "ok": True,
                "stats": source.stats(),
                "blocks": len(parts),
                "new_segments": news,
                "elapsed": time.monotonic() - start,
                "close_seconds": close_seconds,
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
