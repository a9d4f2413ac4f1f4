"""Write a simulated corpus in the exact DCASE 2022--2025 Task 2 layout.

::

    <root>/manifest.json
    <root>/<machine>/attributes_00.csv
    <root>/<machine>/train/section_00_source_train_normal_0000_<attr>_<value>[...].wav
    <root>/<machine>/train/section_00_target_train_normal_0000_<attr>_<value>[...].wav
    <root>/<machine>/test/section_00_{source|target}_test_{normal|anomaly}_0000_<attrs>.wav

Files are 16-bit PCM mono WAV. Indices count from 0000 within each (section, domain,
split, label), as in the DCASE releases. Every clip's seed is derived from the dataset
seed and the clip's identity (machine, section, split, domain, label, index), so the
corpus is bit-identical for a given seed whatever the number of worker processes, and a
larger corpus contains the smaller one's files unchanged. (Bit-identical on one numpy /
scipy build and CPU family: numpy dispatches float32 cosines to CPU-specific SIMD code,
so another machine may differ in the last bits of a sample.)
"""

from __future__ import annotations

import csv
import itertools
import json
import math
import os
import wave
import zlib
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from multiprocessing import get_context
from pathlib import Path

import numpy as np
from tqdm import tqdm

from edgeasd import __version__
from edgeasd.atomic import PUBLIC, replacing, write_bytes_atomic
from edgeasd.errors import EdgeasdError, InputError
from edgeasd.synth.machines import MACHINE_TYPES
from edgeasd.synth.render import DEFAULT_SNR_DB, machine_spec, render

MANIFEST = "manifest.json"


@dataclass(frozen=True)
class ClipJob:
    """One file to render: its identity, attribute values, fault and seed."""

    path: str
    machine: str
    section: int
    split: str
    domain: str
    label: str
    index: int
    attributes: dict[str, str]
    anomaly: str | None
    severity: float | None
    seed: int


def clip_name(
    section: int, domain: str, split: str, label: str, index: int, attributes: dict[str, str]
) -> str:
    """The DCASE file name, e.g. ``section_00_source_train_normal_0000_spd_1500_mic_1.wav``."""
    attrs = "".join(f"_{k}_{v}" for k, v in attributes.items())
    return f"section_{section:02d}_{domain}_{split}_{label}_{index:04d}{attrs}.wav"


def clip_seed(
    seed: int, machine: str, section: int, split: str, domain: str, label: str, index: int
) -> int:
    """A 63-bit seed for one clip, derived from the dataset seed and the clip's identity."""
    key = f"{machine}/{section}/{split}/{domain}/{label}".encode()
    state = np.random.SeedSequence([seed, zlib.crc32(key), index]).generate_state(2, np.uint32)
    return int(state[0]) | (int(state[1]) & 0x7FFFFFFF) << 32


def plan(
    machines: Sequence[str],
    sections: Sequence[int],
    counts: dict[tuple[str, str, str], int],
    seed: int,
    severity: tuple[float, float],
) -> list[ClipJob]:
    """Every clip of the corpus, in a fixed order.

    Parameters
    ----------
    counts : dict
        ``(split, domain, label) -> number of clips``.

    Attribute values cycle through all combinations of the domain's values so that
    classes are balanced; anomaly kinds cycle too, shifted by one after each full cycle
    of combinations (so kinds are balanced and meet many combinations), each with a
    severity drawn uniformly from ``severity`` (subtle to obvious).
    """
    jobs = []
    for machine in machines:
        spec = machine_spec(machine)
        for section in sections:
            for (split, domain, label), count in counts.items():
                names = list(spec.attributes)
                combos = list(
                    itertools.product(*(a.values(domain) for a in spec.attributes.values()))
                )
                kinds = list(spec.anomalies)
                for index in range(count):
                    s = clip_seed(seed, machine, section, split, domain, label, index)
                    attrs = dict(zip(names, combos[index % len(combos)], strict=True))
                    anomaly = sev = None
                    if label == "anomaly":
                        anomaly = kinds[(index + index // len(combos)) % len(kinds)]
                        lo, hi = severity
                        sev = round(float(np.random.default_rng([s, 7]).uniform(lo, hi)), 4)
                    name = clip_name(section, domain, split, label, index, attrs)
                    jobs.append(
                        ClipJob(
                            f"{machine}/{split}/{name}",
                            machine,
                            section,
                            split,
                            domain,
                            label,
                            index,
                            attrs,
                            anomaly,
                            sev,
                            s,
                        )
                    )
    return jobs


def write_wav(path: Path, x: np.ndarray, sample_rate: int) -> None:
    """Write ``x`` (shape (n,), float in [-1, 1]) as 16-bit PCM mono WAV, atomically."""
    pcm = np.clip(np.round(x * 32767.0), -32768, 32767).astype("<i2")
    with replacing(path, PUBLIC, fsync=False) as fh, wave.open(fh, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sample_rate)
        w.writeframes(pcm.tobytes())


def _render_job(args: tuple[ClipJob, str, float, int, float | None]) -> str:
    job, root, seconds, sample_rate, snr_db = args
    x = render(
        job.machine,
        seconds,
        sample_rate,
        seed=job.seed,
        attributes=job.attributes,
        anomaly=job.anomaly,
        severity=job.severity if job.severity is not None else 1.0,
        domain=job.domain,
        section=job.section,
        snr_db=snr_db,
    )
    write_wav(Path(root) / job.path, x, sample_rate)
    return job.path


def _check_count(name: str, value: int) -> int:
    if not isinstance(value, int | np.integer) or value < 0:
        raise InputError(f"{name} must be a non-negative integer, got {value!r}")
    return int(value)


def write_dataset(
    root: str | os.PathLike,
    machines: Iterable[str] | None = None,
    sections: Iterable[int] = (0,),
    n_source_train: int = 990,
    n_target_train: int = 10,
    n_test: int = 50,
    seconds: float = 10.0,
    sample_rate: int = 16000,
    seed: int = 0,
    snr_db: float | None = DEFAULT_SNR_DB,
    workers: int = 1,
    progress: bool = True,
    severity: tuple[float, float] = (0.1, 1.0),
    resume: bool = False,
) -> dict:
    """Render a DCASE-layout corpus of simulated machines under ``root``.

    Parameters
    ----------
    root : path
        Output folder (created; existing files of the same names are replaced).
    machines : iterable of str, optional
        Machine types (default: all of :data:`MACHINE_TYPES`).
    sections : iterable of int
        Sections (physical machine units), 0--99.
    n_source_train, n_target_train : int
        Normal training clips per section in the source and target domain.
    n_test : int
        Test clips per section, domain and label (normal/anomaly).
    seconds, sample_rate : float, int
        Clip length and rate.
    seed : int
        Dataset seed: same seed, same bytes.
    snr_db : float or None
        Machine-to-background ratio; None for no background.
    workers : int
        Processes rendering in parallel (the output does not depend on it).
    progress : bool
        Show a progress bar on stderr.
    severity : (float, float)
        Range of anomaly severities, drawn uniformly per clip (see
        :func:`edgeasd.synth.render`): 0.1 is near chance for a plain spectral
        baseline, 1 is obvious.
    resume : bool
        Keep files that already exist (from an interrupted run with the same settings:
        files are written atomically, so an existing file is complete) and render only
        the missing ones.

    Returns
    -------
    dict
        The manifest, also written to ``root/manifest.json``: generator settings,
        machine specs, and one entry per file (path, machine, section, split, domain,
        label, index, attributes, anomaly, severity, seed).
    """
    machines = list(MACHINE_TYPES) if machines is None else list(machines)
    if not machines:
        raise InputError("no machine types given", help="choose from: " + ", ".join(MACHINE_TYPES))
    for m in machines:
        machine_spec(m)
    sections = sorted({_check_count("section", s) for s in sections})
    if not sections or sections[-1] > 99:
        raise InputError(f"sections must be 0..99, got {sections!r}")
    counts = {
        ("train", "source", "normal"): _check_count("n_source_train", n_source_train),
        ("train", "target", "normal"): _check_count("n_target_train", n_target_train),
    }
    n_test = _check_count("n_test", n_test)
    for domain in ("source", "target"):
        counts[("test", domain, "normal")] = n_test
        counts[("test", domain, "anomaly")] = n_test
    lo, hi = (float(v) for v in severity)
    if not (0.0 <= lo <= hi <= 3.0):
        raise InputError(f"severity range must satisfy 0 <= low <= high <= 3, got {severity!r}")
    if not (isinstance(seed, int | np.integer) and 0 <= seed < 2**32):
        raise InputError(f"seed must be an integer in [0, 2**32), got {seed!r}")
    if not (math.isfinite(seconds) and seconds > 0):
        raise InputError(f"seconds must be positive, got {seconds!r}")
    workers = max(1, _check_count("workers", workers))
    # fail on bad arguments before touching the disk
    render(machines[0], min(seconds, 0.1), sample_rate, seed=0, snr_db=snr_db)
    jobs = plan(machines, sections, counts, int(seed), (lo, hi))
    root = Path(root)
    try:
        for d in {(root / j.path).parent for j in jobs} | {root}:
            d.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EdgeasdError(
            f"cannot create the dataset folder {root}: {exc.strerror or exc}",
            help="choose a writable --out folder",
        ) from exc
    todo = [j for j in jobs if not (resume and (root / j.path).is_file())]
    args = [(j, str(root), float(seconds), int(sample_rate), snr_db) for j in todo]
    bar = tqdm(
        total=len(jobs),
        initial=len(jobs) - len(todo),
        unit="clip",
        desc="synth",
        disable=not progress,
    )
    try:
        if workers == 1 or len(args) < 2:
            for a in args:
                _render_job(a)
                bar.update()
        else:
            with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
                for _ in pool.map(_render_job, args, chunksize=4):
                    bar.update()
    except OSError as exc:
        raise EdgeasdError(
            f"cannot write the dataset under {root}: {exc.strerror or exc}",
            help="free disk space or choose another --out, then rerun with --resume",
        ) from exc
    finally:
        bar.close()
    manifest = {
        "format": "edgeasd-synth",
        "version": 1,
        "generator": f"edgeasd {__version__}",
        "layout": "DCASE 2022-2025 Task 2",
        "seed": int(seed),
        "sample_rate": int(sample_rate),
        "seconds": float(seconds),
        "snr_db": snr_db,
        "sections": sections,
        "severity": [lo, hi],
        "counts": {"/".join(k): v for k, v in counts.items()},
        "machines": {m: MACHINE_TYPES[m].to_json() for m in machines},
        "files": [asdict(j) for j in jobs],
    }
    _write_attribute_csvs(root, jobs)
    text = json.dumps(manifest, indent=1) + "\n"
    write_bytes_atomic(root / MANIFEST, text.encode(), PUBLIC, fsync=False)
    return manifest


def _write_attribute_csvs(root: Path, jobs: list[ClipJob]) -> None:
    """``<machine>/attributes_<section>.csv`` as in the DCASE 2023/2024 releases."""
    by_file: dict[tuple[str, int], list[ClipJob]] = {}
    for j in jobs:
        by_file.setdefault((j.machine, j.section), []).append(j)
    for (machine, section), group in by_file.items():
        width = max(len(j.attributes) for j in group)
        header = ["file_name"] + [f"d{i + 1}{c}" for i in range(width) for c in "pv"]
        with open(root / machine / f"attributes_{section:02d}.csv", "w", newline="") as fh:
            out = csv.writer(fh, lineterminator="\n")
            out.writerow(header)
            for j in group:
                out.writerow([j.path, *itertools.chain.from_iterable(j.attributes.items())])
