"""edgeasd.threads pins BLAS and numba for the daemon's steady state."""

from __future__ import annotations

import subprocess
import sys


def test_pin_limits_blas_now_and_numba_when_it_is_imported_later():
    code = (
        "import sys, numpy\n"
        "from threadpoolctl import threadpool_info\n"
        "from edgeasd.threads import pin\n"
        "got = pin(1)\n"
        "assert 'numba' not in sys.modules\n"
        "assert all(i['num_threads'] == 1 for i in threadpool_info() if i['user_api'] == 'blas')\n"
        "assert got['blas'] and all(n == 1 for _, n in got['blas'])\n"
        "import numba\n"
        "print(numba.get_num_threads())\n"
    )
    env = {k: v for k, v in __import__("os").environ.items() if k != "NUMBA_NUM_THREADS"}
    env["OMP_NUM_THREADS"] = "2"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    assert out.stdout.split() == ["1"]
