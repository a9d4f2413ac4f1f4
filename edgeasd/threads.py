"""Threads of the numeric libraries, chosen on purpose for the daemon's steady state.

The daemon scores one 10 s window at a time: one matrix-vector product over the bank. On the
small shared machines it runs on, a second BLAS thread buys nothing and costs a lot once other
processes compete for the cores: measured (BENCHMARKS.md, section costs, one query at
N = 10,000), 2 threads were 1.4x slower than 1 on a machine busy with other work and 19x
slower (median) with two competing busy processes, because each product waits for a worker
thread that has no core. So the daemon pins BLAS (through threadpoolctl, at run time:
numpy is imported long before) and numba (through ``NUMBA_NUM_THREADS`` before numba is
imported, or ``numba.set_num_threads`` after) to :data:`DAEMON_THREADS`. The embedding model's
threads are its own setting (``model.threads``, onnxruntime's session options).
"""

from __future__ import annotations

import os
import sys
from typing import Any

#: Threads of BLAS and numba in the daemon (module docstring).
DAEMON_THREADS = 1


def pin(threads: int = DAEMON_THREADS) -> dict[str, Any]:
    """Limit BLAS and numba to ``threads`` threads in this process, from now on.

    Returns
    -------
    dict
        What was set: ``{"blas": [(library, threads), ...], "numba": threads}``.
    """
    if "numba" in sys.modules:
        import numba

        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    else:  # read when numba is first imported (enrollment loads the kernels lazily)
        os.environ["NUMBA_NUM_THREADS"] = str(threads)
    from threadpoolctl import threadpool_info, threadpool_limits

    threadpool_limits(limits=threads, user_api="blas")  # stays in force (not a with block)
    blas = [
        (i["internal_api"], i["num_threads"]) for i in threadpool_info() if i["user_api"] == "blas"
    ]
    return {"blas": blas, "numba": threads}
