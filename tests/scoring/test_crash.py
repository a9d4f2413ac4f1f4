"""SIGKILL at random points during enrollment and save: old or new state, nothing lost.

The writers are forked child processes (they inherit the compiled kernels, so each
kill costs milliseconds, not an interpreter start).
"""

from __future__ import annotations

import os
import signal
import time

import numpy as np

from edgeasd.scoring import ReferenceBank, load_bank, save_bank, store


def _writer(path, start: int, ack_fd: int) -> None:
    rng = np.random.default_rng(start)
    for i in range(start, start + 100000):
        with store.transaction(path, create=lambda: ReferenceBank(64)) as bank:
            bank.enroll(rng.normal(size=(20, 64)), group=f"rec-{i}")
        os.write(ack_fd, f"{i}\n".encode())  # acknowledged: the save returned


def _run_and_kill(path, start: int, delay: float) -> list[int]:
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: never returns into pytest
        try:
            os.close(read_fd)
            _writer(path, start, write_fd)
        finally:
            os._exit(1)
    os.close(write_fd)
    with os.fdopen(read_fd) as acks:
        first = acks.readline()  # it is really writing now
        time.sleep(delay)
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        return [int(first), *map(int, acks.read().split())]


def test_sigkill_during_enroll_and_save_never_loses_acknowledged_data(tmp_path):
    path = tmp_path / "bank.edb"
    warm = ReferenceBank(64)  # compile/load every kernel once, before forking
    warm.enroll(np.eye(64)[:3], group="a")
    warm.enroll(np.eye(64)[3:6], group="b")
    save_bank(warm, tmp_path / "warm.edb")
    (tmp_path / "warm.edb").unlink()
    (tmp_path / "warm.edb.lock").unlink()
    (tmp_path / "warm.edb.next-id").unlink()
    rng = np.random.default_rng(7)
    acknowledged: list[int] = []
    in_flight: set[str] = set()  # per kill, the one enrollment that may lack its ack
    start = 0
    for _ in range(8):
        acks = _run_and_kill(path, start, float(rng.uniform(0.0, 0.15)))
        acknowledged += acks
        in_flight.add(f"rec-{max(acks) + 1}")
        bank = load_bank(path)  # must never be garbage
        groups = set(bank.groups_.tolist())
        acked = {f"rec-{i}" for i in acknowledged}
        assert acked <= groups  # nothing acknowledged is lost
        assert groups - acked <= in_flight  # and nothing else got in
        assert len(bank) == 20 * len(groups)
        assert np.isfinite(bank.density_).all()
        start = max(acks) + 2
    assert len(acknowledged) >= 8
    save_bank(bank, path)  # a later save clears temp files that killed writers left behind
    # (bank.edb.1-3: the automatic backups of the last generations; .next-id: the id mark)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "bank.edb",
        "bank.edb.1",
        "bank.edb.2",
        "bank.edb.3",
        "bank.edb.lock",
        "bank.edb.next-id",
    ]
