"""Peak resident memory of a command, measured apart from the (large) test process.

``ru_maxrss`` of a child counts what it held before ``exec`` too: a child forked from a
pytest process of 900 MB reports 900 MB whatever the command does. The command is run by a
small wrapper interpreter, whose children's ``ru_maxrss`` is the command's own peak.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence

_WRAPPER = r"""
import resource, subprocess, sys
code = subprocess.call(sys.argv[1:])
sys.stderr.write("\n@@peak-rss-kb=%d\n" % resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
sys.exit(code)
"""


def run_peak_rss(cmd: Sequence[str], timeout: float = 600, **kwargs) -> tuple:
    """Run ``cmd``; ``(CompletedProcess with text output, peak RSS in MB)``."""
    done = subprocess.run(
        [sys.executable, "-c", _WRAPPER, *cmd],
        capture_output=True,
        text=True,
        timeout=timeout,
        **kwargs,
    )
    err, _, peak = done.stderr.rpartition("\n@@peak-rss-kb=")
    done.stderr = err
    return done, int(peak.strip()) / 1024
