"""Scoring engine: a bank of normal reference embeddings with local-density normalization.

>>> from edgeasd.scoring import ReferenceBank
>>> bank = ReferenceBank(dim, metric="cosine", density="knn", k=1, norm="ratio")  # doctest: +SKIP
>>> ids = bank.enroll(X, domain="source")  # each row its own group          # doctest: +SKIP
>>> ids = bank.enroll(X2, group=recording_of_each_row)  # rows of one recording # doctest: +SKIP
>>> scores = bank.score(Q)                                                      # doctest: +SKIP

See :mod:`edgeasd.scoring.bank` (API, edge cases), :mod:`edgeasd.scoring.density`
(density modes, incremental updates), :mod:`edgeasd.scoring.calibrate` (threshold
rules) and :mod:`edgeasd.scoring.store` (file format, atomic save, lock).
"""

from edgeasd.scoring.bank import DUPLICATE_DISTANCE, RHO_EPS, ReferenceBank
from edgeasd.scoring.density import GWRP_TOLERANCE

__all__ = ["DUPLICATE_DISTANCE", "GWRP_TOLERANCE", "RHO_EPS", "ReferenceBank"]
