"""Under systemd the log lines carry sd-daemon priority prefixes, so that
``journalctl -p warning`` shows the alerts.

systemd sets ``$JOURNAL_STREAM`` to the ``device:inode`` of the stream it connects to
stderr; here stderr is a real file and the variable names it (or, as a control, another
file: a terminal that inherited the variable from a systemd user session).
"""

from __future__ import annotations

import os
import subprocess
import sys

from e2e.harness import REPO


def _demo_stderr(tmp_path, journal: bool) -> list[str]:
    err = tmp_path / "stderr.log"
    other = tmp_path / "other"
    other.touch()
    with open(err, "ab") as fh:
        st = os.fstat(fh.fileno()) if journal else os.stat(other)
        env = {**os.environ, "JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}
        proc = subprocess.run(
            [sys.executable, "-m", "edgeasd", "-v", "demo"],
            stdout=subprocess.DEVNULL,
            stderr=fh,
            env=env,
            timeout=120,
            cwd=REPO,
        )
    lines = err.read_text().splitlines()
    assert proc.returncode == 0, "\n".join(lines)
    return lines


def test_alerts_are_journal_warnings_under_systemd(tmp_path):
    lines = _demo_stderr(tmp_path, journal=True)
    alerts = [line for line in lines if "ALERT" in line]
    assert alerts, lines
    assert all(line.startswith("<4>edgeasd.") for line in alerts), alerts  # LOG_WARNING
    assert all(line[:3] in ("<3>", "<4>", "<6>", "<7>") for line in lines), lines
    assert any(line.startswith("<6>") for line in lines), lines  # INFO lines: LOG_INFO


def test_no_prefix_when_stderr_is_not_the_journal(tmp_path):
    lines = _demo_stderr(tmp_path, journal=False)
    alerts = [line for line in lines if "ALERT" in line]
    assert alerts and not any(line.startswith("<") for line in lines), lines
    assert all(" WARNING edgeasd." in line for line in alerts), alerts
