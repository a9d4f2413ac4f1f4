"""The MQTT store-and-forward queue: order, persistence, size cap and drop policy, and
crash safety (a writer SIGKILLed mid-write loses nothing it acknowledged)."""

from __future__ import annotations

import logging
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time

import pytest

from edgeasd.errors import InputError
from edgeasd.fleet.mqtt_queue import DiskQueue


def _drain(q: DiskQueue) -> list[tuple[int, str, bytes]]:
    out = []
    while (m := q.peek()) is not None:
        out.append((m.seq, m.kind, m.payload))
        q.ack(m.seq)
    return out


def test_fifo_ack_and_reopen(tmp_path) -> None:
    q = DiskQueue(tmp_path / "q.sqlite", 10_000)
    seqs = [q.put("alert" if i % 2 else "signal", f"t/{i}", b"x%d" % i) for i in range(5)]
    assert seqs == sorted(seqs) and len(set(seqs)) == 5
    assert len(q) == 5 and q.nbytes == sum(len(b"x%d" % i) for i in range(5))
    first = q.peek()
    assert (first.seq, first.kind, first.topic, first.payload) == (seqs[0], "signal", "t/0", b"x0")
    q.ack(first.seq)
    q.ack(first.seq)  # twice: no-op
    q.close()
    q = DiskQueue(tmp_path / "q.sqlite", 10_000)
    assert len(q) == 4
    assert [p for _, _, p in _drain(q)] == [b"x1", b"x2", b"x3", b"x4"]
    assert len(q) == 0 and q.nbytes == 0
    # sequence numbers keep increasing after the queue ran empty and was reopened
    q.close()
    q = DiskQueue(tmp_path / "q.sqlite", 10_000)
    assert q.put("alert", "t", b"y") > seqs[-1]


def test_full_queue_drops_oldest_non_alerts_first(tmp_path, caplog) -> None:
    q = DiskQueue(tmp_path / "q.sqlite", 100)
    q.put("alert", "t", b"A" * 30)  # oldest, but an alert
    q.put("signal", "t", b"s" * 30)
    q.put("enrolled", "t", b"e" * 30)
    with caplog.at_level(logging.WARNING, logger="edgeasd.fleet.mqtt_queue"):
        q.put("alert", "t", b"B" * 30)  # 120 > 100: the oldest non-alert goes
    assert q.dropped == {"signal": 1} and q.nbytes == 90
    assert "dropped the oldest 1 signal" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="edgeasd.fleet.mqtt_queue"):
        q.put("alert", "t", b"C" * 30)  # the enrolled one goes (logged a minute later)
        q.put("alert", "t", b"D" * 30)  # only alerts left: the oldest alert goes, loudly
    assert q.dropped == {"signal": 1, "enrolled": 1, "alert": 1}
    assert [r.levelname for r in caplog.records] == ["ERROR"]
    assert "dropped the oldest 1 alert; dropped since start: 1 alert, 1 enrolled, 1 signal" in (
        caplog.text
    )
    assert [p[:1] for _, _, p in _drain(q)] == [b"B", b"C", b"D"]


def test_an_oversized_message_is_kept_alone(tmp_path) -> None:
    q = DiskQueue(tmp_path / "q.sqlite", 10)
    q.put("signal", "t", b"s")
    q.put("alert", "t", b"A" * 50)  # larger than the cap: everything older goes, it stays
    assert [p for _, _, p in _drain(q)] == [b"A" * 50]
    with pytest.raises(InputError):
        DiskQueue(tmp_path / "r.sqlite", 0)


def test_size_stays_bounded_on_disk(tmp_path, caplog) -> None:
    cap = 64 * 1024
    q = DiskQueue(tmp_path / "q.sqlite", cap)
    sizes = []
    with caplog.at_level(logging.WARNING, logger="edgeasd.fleet.mqtt_queue"):
        for i in range(1500):  # 300 KB put, 4.6 x the cap
            q.put("signal", "t", bytes(200))
            if i % 100 == 99:
                sizes.append(sum(f.stat().st_size for f in tmp_path.glob("q.sqlite*")))
    assert q.nbytes <= cap and len(q) == cap // 200
    assert len(caplog.records) == 1  # a full queue does not flood the log
    # database (SQLite reuses the pages of deleted rows) + write-ahead log (capped)
    assert max(sizes) < 2 * cap + 1.2 * 2**20, sizes
    q.close()


_WRITER = textwrap.dedent(
    """
    import sys
    from edgeasd.fleet.mqtt_queue import DiskQueue
    q = DiskQueue(sys.argv[1], 1 << 30)
    i = 0
    while True:
        seq = q.put("alert", "t", b"payload-%d" % i + bytes(i % 500))
        sys.stdout.write(f"{seq} {i}\\n")
        sys.stdout.flush()
        i += 1
    """
)


@pytest.mark.parametrize("delay", [0.3, 0.7])
def test_sigkill_mid_write_loses_nothing_acknowledged(tmp_path, delay) -> None:
    path = tmp_path / "q.sqlite"
    proc = subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(path)], stdout=subprocess.PIPE, text=True
    )
    lines = []
    try:
        lines.append(proc.stdout.readline())  # it writes
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)  # somewhere inside a put
        proc.wait(10)
        lines += proc.stdout.read().splitlines()
    finally:
        if proc.poll() is None:
            proc.kill()
    acked = [tuple(map(int, line.split())) for line in lines if line.strip()]
    assert len(acked) > 5
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    q = DiskQueue(path, 1 << 30)
    got = _drain(q)
    # everything put() returned for is there, in order, uncorrupted; at most one more
    # (committed but killed before it could print)
    assert len(acked) <= len(got) <= len(acked) + 1
    for (seq, i), (gseq, kind, payload) in zip(acked, got, strict=False):
        assert (gseq, kind, payload) == (seq, "alert", b"payload-%d" % i + bytes(i % 500))
