"""Input checks of embeddings: the fast path of a batch equals the general one bit for bit."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeasd.errors import InputError
from edgeasd.scoring import validate


def general(X: np.ndarray) -> np.ndarray:
    """The general path: peaks first, rows outside ``_SAFE`` scaled by their peak."""
    arr = np.asarray(X, dtype=np.float64)
    return validate._unit_rows(arr, np.abs(arr).max(axis=1))


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    m=st.integers(1, 8),
    dim=st.sampled_from([1, 3, 512]),
    exponent=st.sampled_from([-150, -101, -100, -99, -3, 0, 3, 99, 100, 101, 150]),
)
def test_cosine_rows_equal_the_general_path_at_every_scale(seed, m, dim, exponent):
    """Rows near the edges of ``_SAFE`` (where the general path divides by the peak first)
    and inside it: the same float32 bits whichever path a batch takes."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(m, dim)) * rng.uniform(0.5, 2.0, size=(m, 1)) * 10.0**exponent
    X[X == 0] = 1.0  # no zero row
    got = validate.check_embeddings(X, dim, "cosine", "X")
    assert got.dtype == np.float32 and got.flags.c_contiguous
    np.testing.assert_array_equal(got, general(X))


@pytest.mark.parametrize(
    ("bad", "message"),
    [(np.nan, "NaN or infinite"), (np.inf, "NaN or infinite"), (0.0, "zero vector")],
)
def test_bad_rows_are_still_refused_by_name(bad, message):
    X = np.ones((3, 4))
    X[1] = bad if bad == 0.0 else X[1]
    if bad != 0.0:
        X[1, 2] = bad
    with pytest.raises(InputError, match=message):
        validate.check_embeddings(X, 4, "cosine", "X")
