"""Fault suite, ``bank restore`` (issue 20): SIGKILL at random points of restores and saves.

A forked writer (it inherits the compiled kernels) restores random generations, or
alternates restores with enrollments, and acknowledges each finished operation on a pipe;
the parent kills it at a random moment, runs the recovery every locked access runs, and
checks: every version is still on disk (a restore drops none), the bank is the state after
the last acknowledged operation or after the one in flight, nothing half-written loads,
no journal or scratch copy is left (orphans), and no reference id was issued twice.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from e2e.harness import make_setup, write_normal

from edgeasd.scoring import ReferenceBank, generations, load_bank, permute, save_bank, store


def _digest(path: Path) -> str | None:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else None


def _versions(path: Path) -> list[str | None]:
    return [_digest(path)] + [_digest(generations.backup_path(path, g)) for g in (1, 2, 3)]


def _history(path: Path, dim: int = 32, rows: int = 400) -> None:
    """Four saves: bank and three generations, each a distinct version (a few 100 KB each)."""
    rng = np.random.default_rng(0)
    bank = ReferenceBank(dim)
    for i in range(4):
        bank.enroll(rng.normal(size=(rows, dim)), domain=f"c{i % 2}", group=f"rec-{i}")
        save_bank(bank, path)


def _restore_order(order: list, g: int) -> list:
    """What ``restore g`` does to [bank, gen1, gen2, gen3] (the plain model the test checks)."""
    new = [order[g]] + [v for i, v in enumerate(order) if i != g and v is not None]
    return new + [None] * (len(order) - len(new))


def _child(path: Path, seed: int, mixed: bool, ack_fd: int) -> None:
    rng = np.random.default_rng(seed)
    for _ in range(100000):
        if mixed and rng.random() < 0.5:
            with store.transaction(path) as bank:
                ids = bank.enroll(rng.normal(size=(5, bank.dim)), group=f"n{rng.integers(1e9)}")
            os.write(ack_fd, ("E " + ",".join(map(str, ids)) + "\n").encode())
        else:
            g = int(rng.integers(1, 4))
            store.restore(path, g)
            os.write(ack_fd, f"R {g}\n".encode())


def _run_and_kill(path: Path, seed: int, mixed: bool, delay: float) -> list[str]:
    return fork_and_kill(lambda ack_fd: _child(path, seed, mixed, ack_fd), delay)


def fork_and_kill(child: Callable[[int], None], delay: float) -> list[str]:
    """Run ``child(ack_fd)`` in a forked process, SIGKILL it after ``delay`` s; its acks.

    The child writes one line per finished operation to ``ack_fd``; the lines read back
    are the acknowledged operations (the one in flight at the kill has none).
    """
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: never returns into pytest
        try:
            os.close(read_fd)
            child(write_fd)
        finally:
            os._exit(1)
    os.close(write_fd)
    with os.fdopen(read_fd) as acks:
        time.sleep(delay)
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        return acks.read().split("\n")[:-1]


def _orphans(path: Path) -> list[str]:
    return sorted(p.name for p in path.parent.glob(f"{path.name}.restoring*")) + sorted(
        p.name for p in path.parent.glob(f".{path.name}*.tmp")
    )


def restore_campaign(tmp_path: Path, trials: int, seed: int) -> dict[str, int]:
    """Kills during restores only: the versions on disk are a permutation at every kill."""
    path = tmp_path / "bank"
    _history(path)
    versions = Counter(_versions(path))
    order = _versions(path)
    rng = np.random.default_rng(seed)
    figures = Counter(trials=trials)
    for trial in range(trials):
        child_seed = seed * 1000 + trial
        acks = _run_and_kill(path, child_seed, False, float(rng.uniform(0.0, 0.4)))
        replay = np.random.default_rng(child_seed)
        for _ in acks:  # the acknowledged restores, replayed on the model
            order = _restore_order(order, int(replay.integers(1, 4)))
        in_flight = _restore_order(order, int(replay.integers(1, 4)))
        with store.locked(path):
            figures[f"recovered {generations.recover(path)}"] += 1
        now = _versions(path)
        figures["versions lost"] += sum((versions - Counter(now)).values())
        figures["orphans"] += len(_orphans(path))
        figures["restores acknowledged"] += len(acks)
        if now != order:
            assert now == in_flight, (trial, acks)  # the killed one finished, never half
            order = in_flight
        load_bank(path)  # never half-written
    return dict(figures)


def ids_campaign(tmp_path: Path, trials: int, seed: int) -> dict[str, int]:
    """Kills during enrollments and restores: no id is issued twice, none acknowledged lost."""
    path = tmp_path / "bank"
    _history(path, rows=50)
    issued = [int(i) for i in load_bank(path).ids_]
    rng = np.random.default_rng(seed)
    figures = Counter(trials=trials)
    for trial in range(trials):
        acks = _run_and_kill(path, seed * 1000 + trial, True, float(rng.uniform(0.0, 0.5)))
        for line in acks:
            if line.startswith("E "):
                issued += [int(i) for i in line[2:].split(",")]
        figures["operations acknowledged"] += len(acks)
        with store.locked(path):
            generations.recover(path)
        figures["orphans"] += len(_orphans(path))
        bank = load_bank(path)
        figures["ids issued twice"] += len(issued) - len(set(issued))
        # every id any version holds, or that was acknowledged, is below the next one
        figures["next id not above an issued id"] += int(bank.references_.next_id <= max(issued))
    return dict(figures)


@pytest.fixture
def warm(tmp_path):
    """Compile the kernels once before forking (each kill then costs milliseconds)."""
    (tmp_path / "warm").mkdir()
    _history(tmp_path / "warm" / "bank", rows=10)


def test_restore_kill_campaign(tmp_path, warm):
    figures = restore_campaign(tmp_path, trials=12, seed=1)
    print("restore campaign:", figures)
    assert figures["versions lost"] == 0 and figures["orphans"] == 0
    assert figures["restores acknowledged"] > 0


def test_ids_kill_campaign(tmp_path, warm):
    figures = ids_campaign(tmp_path, trials=10, seed=3)
    print("ids campaign:", figures)
    assert figures["ids issued twice"] == 0 and figures["orphans"] == 0
    assert figures["next id not above an issued id"] == 0


@pytest.mark.slow
def test_restore_kill_campaign_long(tmp_path, warm):
    figures = restore_campaign(tmp_path, trials=100, seed=2)
    print("restore campaign:", figures)
    assert figures["versions lost"] == 0 and figures["orphans"] == 0


@pytest.mark.slow
def test_ids_kill_campaign_long(tmp_path, warm):
    figures = ids_campaign(tmp_path, trials=60, seed=4)
    print("ids campaign:", figures)
    assert figures["ids issued twice"] == 0 and figures["orphans"] == 0


def test_rebuild_and_restore_never_issue_an_id_twice(tmp_path):
    """Through the CLI: enroll, rebuild (a bank built anew), restore, enroll again."""
    setup = make_setup(tmp_path / "agent", {"kind": "file", "path": str(tmp_path / "none.wav")})
    files = [write_normal(tmp_path / f"n{i}.wav", 2, seed=i) for i in range(3)]
    issued: list[int] = []
    for i, f in enumerate(files[:2]):
        setup.cli("enroll", "--domain", f"d{i}", str(f), check=True)
    issued += load_bank(setup.state / "bank").ids_.tolist()
    setup.cli("bank", "rebuild", check=True)
    rebuilt = load_bank(setup.state / "bank").ids_.tolist()
    assert min(rebuilt) > max(issued)  # was: 0, 1, ... again, named by old alert records
    issued += rebuilt
    setup.cli("bank", "restore", "2", check=True)  # the bank before the second enrollment
    setup.cli("enroll", "--domain", "d2", str(files[2]), check=True)
    bank = load_bank(setup.state / "bank")
    new = bank.ids_[bank.domains_ == "d2"].tolist()
    assert min(new) > max(issued)
    sidecars = [json.loads(p.read_text()) for p in (setup.state / "audio").glob("*.json")]
    named = [i for s in sidecars for i in s["ids"]]
    assert len(named) == len(set(named))  # no two kept groups name one id


def _all_ids(path: Path) -> set[int]:
    """Every reference id any version on disk holds (the bank and its generations)."""
    out: set[int] = set()
    for p in [path] + [generations.backup_path(path, g) for g in (1, 2, 3)]:
        if p.exists():
            out |= set(load_bank(p, hint=False).ids_.tolist())
    return out


def _kill_at_journal(
    daemon: subprocess.Popen, client: subprocess.Popen, journal: Path, wait: float
) -> None:
    """SIGKILL ``daemon`` ``wait`` s after a restore's journal appears (its file moves have
    begun); busy-polls, as the moves take a few milliseconds."""
    end = time.monotonic() + 60
    while not journal.exists() and client.poll() is None and time.monotonic() < end:
        pass
    pause = time.monotonic() + wait
    while time.monotonic() < pause:
        pass
    daemon.kill()


def daemon_bank_edit_campaign(
    tmp_path: Path, trials: int, seed: int, at_moves: bool = False
) -> dict[str, int]:
    """SIGKILL the daemon during live ``bank remove`` / ``bank restore`` sent to it.

    With ``at_moves`` every edit is a restore, and the kill comes once its journal appears
    (:func:`_kill_at_journal`): inside the daemon's file moves. After each kill: the next
    locked access settles a half-done restore, the bank loads, nothing is left over, the
    daemon starts again, and an enrollment gets ids above every id any version ever held.
    """
    feed = write_normal(tmp_path / "feed.wav", 4, seed=7)
    setup = make_setup(
        tmp_path / "agent", {"kind": "file", "path": str(feed), "realtime": True, "loop": True}
    )
    files = [write_normal(tmp_path / f"n{i}.wav", 2, seed=i) for i in range(4)]
    for i, f in enumerate(files):
        setup.cli("enroll", "--domain", f"d{i}", str(f), check=True)
    bank_path = setup.state / "bank"
    rng = np.random.default_rng(seed)
    figures: Counter[str] = Counter(trials=trials)
    seen = _all_ids(bank_path)
    for i in range(trials):
        daemon = setup.start()
        setup.wait_ready(daemon)
        ids = load_bank(bank_path).ids_.tolist()
        args = ["bank", "restore", str(int(rng.integers(1, 3)))]
        if i % 2 and len(ids) > 2 and not at_moves:
            args = ["bank", "remove", str(ids[int(rng.integers(len(ids)))])]
        cmd = [sys.executable, "-m", "edgeasd", *args, "--config", str(setup.config)]
        pipe = subprocess.PIPE
        client = subprocess.Popen(cmd, env=setup.env, stdout=pipe, stderr=pipe)
        if at_moves:
            wait = 0.0 if i % 2 == 0 else float(rng.uniform(0.0, 0.002))
            _kill_at_journal(daemon, client, permute.journal_path(bank_path), wait)
        else:
            time.sleep(float(rng.uniform(0.3, 1.5)))
            daemon.kill()
        daemon.wait(10)
        client.communicate(timeout=60)
        figures["acknowledged"] += int(client.returncode == 0)
        figures["kills mid-restore"] += int(permute.journal_path(bank_path).exists())
        with store.locked(bank_path):  # what the next save or restore does first
            figures[f"recovered {generations.recover(bank_path)}"] += 1
        figures["orphans"] += len(_orphans(bank_path))
        load_bank(bank_path)  # never half-written
        seen |= _all_ids(bank_path)
    setup.cli("enroll", "--domain", "after", str(files[0]), check=True)
    bank = load_bank(bank_path)
    new = bank.ids_[bank.domains_ == "after"].tolist()
    figures["ids issued twice"] = len(set(new) & seen)
    return dict(figures)


def test_daemon_bank_edit_kill_campaign(tmp_path):
    figures = daemon_bank_edit_campaign(tmp_path, trials=2, seed=1)
    print("daemon bank edit campaign:", figures)
    assert figures["orphans"] == 0 and figures["ids issued twice"] == 0


@pytest.mark.slow
def test_daemon_bank_edit_kill_campaign_long(tmp_path):
    figures = daemon_bank_edit_campaign(tmp_path, trials=15, seed=2)
    print("daemon bank edit campaign:", figures)
    assert figures["orphans"] == 0 and figures["ids issued twice"] == 0


def _check_moves(figures: dict[str, int]) -> None:
    assert figures["orphans"] == 0 and figures["ids issued twice"] == 0, figures
    assert figures["kills mid-restore"] >= 1, figures  # the campaign reached the moves
    settled = figures.get("recovered finished", 0) + figures.get("recovered undone", 0)
    assert settled == figures["kills mid-restore"], figures


def test_daemon_restore_moves_kill_campaign(tmp_path):
    figures = daemon_bank_edit_campaign(tmp_path, trials=2, seed=3, at_moves=True)
    print("daemon restore moves campaign:", figures)
    _check_moves(figures)


@pytest.mark.slow
def test_daemon_restore_moves_kill_campaign_long(tmp_path):
    figures = daemon_bank_edit_campaign(tmp_path, trials=15, seed=4, at_moves=True)
    print("daemon restore moves campaign:", figures)
    _check_moves(figures)
