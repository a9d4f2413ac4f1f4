"""Synthetic embedding sets with a known ordering of the approaches."""

from __future__ import annotations

import numpy as np

from edgeasd.evaluation.approaches import SectionData

DIM = 16


def cluster(rng, center, spread, n):
    return (center + spread * rng.standard_normal((n, DIM))).astype(np.float32)


def two_density_section(seed: int = 0) -> SectionData:
    """A dense source cluster (200 refs) and a sparse target cluster (10 refs).

    Raw nearest-neighbour distances of target normals are as large as those of source
    anomalies, so without normalization target normals look anomalous.
    """
    rng = np.random.default_rng(seed)
    u, v = np.eye(DIM)[0], np.eye(DIM)[1]
    train = np.concatenate([cluster(rng, u, 0.05, 200), cluster(rng, v, 0.4, 10)])
    test = np.concatenate(
        [
            cluster(rng, u, 0.05, 50),
            cluster(rng, v, 0.4, 50),
            cluster(rng, u, 0.15, 50),
            cluster(rng, v, 1.0, 50),
        ]
    )
    doms = np.array(["source", "target"] * 2).repeat(50)
    return SectionData(
        "toy",
        "00",
        train,
        np.array(["source"] * 200 + ["target"] * 10),
        test,
        doms,
        np.repeat([0, 1], 100),
        tuple(f"{i}.wav" for i in range(200)),
    )
