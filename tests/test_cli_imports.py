"""The read-only commands stay light: building the command line imports no numeric library."""

from __future__ import annotations

import subprocess
import sys


def test_the_command_line_parses_without_numpy_numba_or_onnxruntime():
    code = (
        "import sys\n"
        "from edgeasd.cli import build_parser\n"
        "build_parser().parse_args(['status'])\n"
        "print(sorted(m for m in ('numpy', 'numba', 'onnxruntime', 'scipy') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
