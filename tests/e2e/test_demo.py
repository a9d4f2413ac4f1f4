"""``edgeasd demo``: the newcomer's first command."""

from __future__ import annotations

import re
import subprocess
import sys

from e2e.harness import REPO


def test_demo_exits_zero_and_alerts_on_the_injected_anomaly() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "edgeasd", "demo"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "ALERT" in out
    lines = [line for line in out.splitlines() if line.startswith("window")]
    assert sum("enrolling" in line for line in lines) == 10  # learning first
    scored = [line for line in lines if "score" in line]
    first_anomalous = next(i for i, line in enumerate(scored) if "anomalous" in line)
    assert first_anomalous > 0 and all("normal" in line for line in scored[:first_anomalous])
    assert re.search(r"demo finished: [1-9]\d* alert", out)
    assert "Traceback" not in proc.stderr
