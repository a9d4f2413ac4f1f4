"""Bank files written before the scoring package was restructured still load and score the same.

``data/bank-v1-*.bank`` were written by the code of commit 6dca909 (issue 12, before the
``ReferenceSet`` refactor), with the scores, densities and calibration of that code
alongside (``*-expected.npz``): 5 recordings of 6 windows (dim 8, cosine, ratio), 3
source and 2 target, every 7th reference removed, calibrated with ``auto``. ``knn``
stores neighbour lists, ``gwrp1`` (GWRP r = 1) running sums.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from edgeasd.scoring import calibrate, load_bank, save_bank

DATA = Path(__file__).parent / "data"
FLOAT32_RTOL = 1e-6  # 8 float32 ulps (eps 1.19e-7); measured differences across CPUs: 4e-7


@pytest.mark.parametrize("name", ["knn", "gwrp1"])
def test_a_bank_written_before_the_refactor_loads_and_scores_identically(name, tmp_path):
    path = tmp_path / "bank"
    shutil.copy(DATA / f"bank-v1-{name}.bank", path)
    want = np.load(DATA / f"bank-v1-{name}-expected.npz")
    bank = load_bank(path)
    assert bank.meta == {"model_id": "fixture-model"} and len(bank) == want["ids"].size
    np.testing.assert_array_equal(bank.ids_, want["ids"])
    np.testing.assert_array_equal(bank.density_, want["density"])
    # Scores are recomputed in float32 SIMD code whose summation order depends on the CPU's
    # vector width (AVX2 vs AVX-512): equal to a few float32 ulps, not bit for bit.
    np.testing.assert_allclose(bank.score(want["queries"]), want["scores"], rtol=FLOAT32_RTOL)
    np.testing.assert_array_equal(bank.loo_scores_, want["loo"])
    # saved before the forward scores' eligibility rule had a version (issue 17): they are
    # replayed once, from the stored rows (the old replay re-normalized them: float32 ulps)
    np.testing.assert_allclose(bank.forward_scores_, want["forward"], rtol=FLOAT32_RTOL)
    # ... and the threshold is today's rule on them, as a from-scratch calibration gives
    fresh = calibrate.Calibration()
    fresh.update(bank.references_)
    assert bank.threshold_ == fresh.threshold
    # recomputing the calibration with today's code gives the same result
    bank.calibrate("auto")
    bank.enroll(want["queries"][:1], group="later")
    bank.remove(bank.ids_[-1:])
    assert bank.threshold_ == pytest.approx(fresh.threshold, rel=1e-12)
    np.testing.assert_allclose(bank.loo_scores_, want["loo"], rtol=1e-12)
    # ... and it saves in the same format, which loads again
    save_bank(bank, path)
    np.testing.assert_allclose(
        load_bank(path).score(want["queries"]), want["scores"], rtol=FLOAT32_RTOL
    )
