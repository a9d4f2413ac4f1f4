"""peek_model_info reads the ONNX metadata without onnxruntime (read-only commands)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from edgeasd.embedding import models
from edgeasd.embedding.onnx import peek_model_info, read_model_info
from edgeasd.errors import ModelError

SHIPPED = sorted(Path(models.__file__).parent.glob("*.onnx"))


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_peek_equals_the_validated_info_of_every_shipped_model(path):
    assert peek_model_info(path) == read_model_info(path)


def test_peek_never_imports_onnxruntime():
    code = (
        "import sys\n"
        "from edgeasd.embedding.models import default_model_path\n"
        "from edgeasd.embedding.onnx import peek_model_info\n"
        "peek_model_info(default_model_path())\n"
        "print('onnxruntime' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False"]


def test_a_truncated_or_missing_model_is_named(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(SHIPPED[0].read_bytes()[:1000])
    with pytest.raises(ModelError, match=r"bad\.onnx"):
        peek_model_info(bad)
    with pytest.raises(ModelError, match="cannot read model file"):
        peek_model_info(tmp_path / "missing.onnx")
