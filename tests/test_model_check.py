"""The one model-compatibility rule (:mod:`edgeasd.model_check`), on a real model file."""

from __future__ import annotations

import pytest
from support.onnx_models import make_test_model

from edgeasd.embedding.onnx import COMPATIBLE_KEY, read_model_info
from edgeasd.errors import ModelError
from edgeasd.model_check import accepts, require_compatible


def test_a_model_accepts_its_own_and_its_declared_ids(tmp_path):
    path = make_test_model(
        tmp_path / "m.onnx", window_seconds=0.5, metadata={COMPATIBLE_KEY: "old-1:aa, old-2:bb"}
    )
    info = read_model_info(path)
    assert info.compatible == ("old-1:aa", "old-2:bb")
    assert accepts(None, info) and accepts(info.id, info)
    assert accepts("old-1:aa", info) and accepts("old-2:bb", info)
    assert not accepts("other-1:cc", info)
    # only an id: no compatible ids known
    assert accepts(info.id, info.id) and not accepts("old-1:aa", info.id)
    require_compatible("old-2:bb", info)  # accepted: no error
    with pytest.raises(
        ModelError, match=r"bank /x/bank\.npz was embedded with model other-1:cc"
    ) as e:
        require_compatible("other-1:cc", info, "/x/bank.npz")
    assert "edgeasd bank rebuild" in e.value.help and info.id in str(e.value)
