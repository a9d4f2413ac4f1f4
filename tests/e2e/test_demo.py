"""``edgeasd demo``: the newcomer's first command."""

from __future__ import annotations

import re
import subprocess
import sys

from e2e.harness import REPO
from edgeasd.cli.run import COMPILE_MS, DemoPrinter

CLOCK = re.compile(r"^(?:>>> )?(\d\d:\d\d:\d\d)  ")


def test_demo_reads_in_order_on_one_clock_and_recovers() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "edgeasd", "demo"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    out = proc.stdout
    lines = [line for line in out.splitlines() if line.strip()]
    body = [line for line in lines[1:-1] if not line.startswith("    (")]
    clocks = [CLOCK.match(line) for line in body]
    assert all(clocks), [line for line, c in zip(body, clocks, strict=True) if not c]
    times = [c[1] for c in clocks]
    assert times == sorted(times), "one clock, never going back"
    windows = [line for line in body if "  window " in line]
    assert sum(line.endswith("ms]") and "enrolling" in line for line in windows) == 10
    scored = [line for line in windows if "score" in line]
    first_anomalous = next(i for i, line in enumerate(scored) if "anomalous" in line)
    assert first_anomalous > 0 and all("normal" in line for line in scored[:first_anomalous])
    # each event right after the window that caused it, at that window's time
    kinds = [(i, line) for i, line in enumerate(body) if re.search(r"  [A-Z]{5,} ", line)]
    for i, line in kinds:
        assert "  window " in body[i - 1] and CLOCK.match(body[i - 1])[1] == CLOCK.match(line)[1]
    events = [re.search(r"  ([A-Z]{5,}) ", line)[1] for _, line in kinds]
    # two recordings enrolled (the threshold needs a second one), then the fault
    assert events == ["ENROLLED", "ENROLLED", "ALERT", "RECOVERED"], events
    assert "one recording enrolled: no threshold yet" in out
    assert "normal" in windows[-1] and "anomalous" not in windows[-1]  # repaired at the end
    assert "false alerts a day are not known yet" in out and "enroll at least 5 minutes" in out
    assert re.search(r"demo finished: [1-9]\d* alert", out)


def test_the_first_enrollments_compile_is_said_as_such(capsys) -> None:
    printer = DemoPrinter()
    window = {
        "event": "window",
        "time": "2026-11-30T13:38:40.000+00:00",
        "index": 9,
        "level_dbfs": -19.3,
        "decision": "enrolling",
        "processing_ms": COMPILE_MS + 3000,
    }
    enrolled = {
        "event": "enrolled",
        "time": "2026-12-07T08:00:00.000+00:00",
        "ids": list(range(10)),
    }
    printer(enrolled)  # emitted while its window is processed: printed after it
    printer(window)
    first = capsys.readouterr().out.splitlines()
    assert first[0].startswith("13:38:40  window   9") and first[1].startswith("13:38:40  ENROLLED")
    assert "the first enrollment compiles the scoring code once" in first[2]
    printer(enrolled)
    printer(window)
    assert "compiles" not in capsys.readouterr().out  # the second enrollment does not
