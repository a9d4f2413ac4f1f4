"""Render speed of the machine-sound simulator.

Run: ``python3 benchmarks/bench_synth.py [--seconds 10] [--clips 5] [--workers 2]``

Prints, per machine type, the single-process render time of one clip (wall clock and
CPU time of this process, which is the fairer figure on a shared machine) and clips/s,
then the end-to-end rate of ``write_dataset`` (render + 16-bit WAV + manifest) with
``--workers`` processes on a small corpus of every machine type.
"""

from __future__ import annotations

import argparse
import tempfile
import time

from edgeasd.synth import MACHINE_TYPES, render, write_dataset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--clips", type=int, default=5, help="clips per machine type")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    total = cpu_total = 0.0
    print(f"render, one process, {args.seconds:g} s clips at 16 kHz")
    for machine in MACHINE_TYPES:
        render(machine, 1.0, 16000, seed=0)  # warm caches
        start, cpu = time.perf_counter(), time.process_time()
        for seed in range(args.clips):
            render(machine, args.seconds, 16000, seed=seed)
        per_clip = (time.perf_counter() - start) / args.clips
        cpu_clip = (time.process_time() - cpu) / args.clips
        total += per_clip
        cpu_total += cpu_clip
        print(
            f"  {machine:12s} {1000 * per_clip:7.1f} ms/clip wall  {1000 * cpu_clip:7.1f} ms CPU"
            f"  {1 / per_clip:6.2f} clips/s"
        )
    mean, cpu_mean = total / len(MACHINE_TYPES), cpu_total / len(MACHINE_TYPES)
    print(
        f"  {'mean':12s} {1000 * mean:7.1f} ms/clip wall  {1000 * cpu_mean:7.1f} ms CPU"
        f"  {1 / mean:6.2f} clips/s"
    )

    with tempfile.TemporaryDirectory() as root:
        start = time.perf_counter()
        manifest = write_dataset(
            root,
            n_source_train=args.clips,
            n_target_train=1,
            n_test=1,
            seconds=args.seconds,
            workers=args.workers,
            progress=False,
        )
        elapsed = time.perf_counter() - start
    n = len(manifest["files"])
    print(
        f"write_dataset, {args.workers} workers: {n} clips in {elapsed:.1f} s "
        f"= {n / elapsed:.2f} clips/s (incl. process start-up)"
    )


if __name__ == "__main__":
    main()
