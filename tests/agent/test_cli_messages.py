"""What operator commands print, run as real subprocesses (issue 19)."""

from __future__ import annotations

import subprocess
import sys

from edgeasd.cli import main

from .conftest import wav


def _edgeasd(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edgeasd", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_bank_summary_and_restore_print_no_python_log_lines(make_config, tmp_path, capsys):
    """A one-group bank makes the bank log a warning on load: the commands say it in words."""
    cfg = make_config(None)
    for i in range(2):  # the second save keeps the first as a backup
        assert (
            main(["enroll", "--config", str(cfg), str(wav(tmp_path / f"{i}.wav", [(3, "normal")]))])
            == 0
        )
    assert main(["bank", "restore", "--config", str(cfg), "1"]) == 0  # back to one group
    capsys.readouterr()
    summary = _edgeasd("bank", "summary", "--config", str(cfg))
    assert summary.returncode == 0, summary.stderr
    assert summary.stderr == ""
    assert "WARNING" not in summary.stdout and "edgeasd.scoring" not in summary.stdout
    assert "1 recording group" in summary.stdout  # said in words instead
    listing = _edgeasd("bank", "restore", "--config", str(cfg))
    assert listing.returncode == 0 and listing.stderr == "", listing.stderr
    assert listing.stdout.startswith("generation 1: saved ")
    verbose = _edgeasd("-v", "bank", "summary", "--config", str(cfg))
    assert "no reference has a neighbour outside its own group" in verbose.stderr
    # (a restore makes the replaced bank generation 1: this one brings the two groups back)
    restore = _edgeasd("bank", "restore", "--config", str(cfg), "1")
    assert restore.returncode == 0 and restore.stderr == "", restore.stderr
