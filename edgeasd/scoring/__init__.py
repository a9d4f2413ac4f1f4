"""Scoring engine: a bank of normal reference embeddings with local-density normalization.

>>> from edgeasd.scoring import ReferenceBank, load_bank, save_bank
>>> bank = ReferenceBank(dim, metric="cosine", density="knn", k=1, norm="ratio")  # doctest: +SKIP
>>> ids = bank.enroll(X, domain="source")  # each row its own group          # doctest: +SKIP
>>> ids = bank.enroll(X2, group=recording_of_each_row)  # rows of one recording # doctest: +SKIP
>>> scores = bank.score(Q)                                                      # doctest: +SKIP
>>> save_bank(bank, path); bank = load_bank(path)                              # doctest: +SKIP

Layers, each importing only those below it: :mod:`~edgeasd.scoring.kernels` (numba) →
:mod:`~edgeasd.scoring.density` (neighbour lists) → :mod:`~edgeasd.scoring.references`
(the fitted state, :class:`ReferenceSet`) → :mod:`~edgeasd.scoring.forward` and
:mod:`~edgeasd.scoring.calibrate` (threshold rules) → :mod:`~edgeasd.scoring.bank` (the
estimator, API and edge cases) → :mod:`~edgeasd.scoring.serialize` →
:mod:`~edgeasd.scoring.store` (file format, atomic save, lock; with
:mod:`~edgeasd.scoring.fileio` and :mod:`~edgeasd.scoring.generations` below it).
"""

from edgeasd.scoring.bank import DUPLICATE_DISTANCE, ReferenceBank
from edgeasd.scoring.density import GWRP_TOLERANCE
from edgeasd.scoring.references import RHO_EPS
from edgeasd.scoring.store import load_bank, save_bank

__all__ = [
    "DUPLICATE_DISTANCE",
    "GWRP_TOLERANCE",
    "RHO_EPS",
    "ReferenceBank",
    "load_bank",
    "save_bank",
]
