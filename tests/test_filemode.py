"""State, log, kept-audio, bank, lock and sidecar files are 0640 or stricter, folders 0750.

The writers run under a developer's umask (022), which alone would give 0644 files: the
modes must come from the writers themselves, not from the systemd unit's ``UMask=0027``.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from edgeasd.agent.alerts.alert_audio import AlertAudio
from edgeasd.agent.alerts.event_log import JsonlLog
from edgeasd.agent.control.status import StatusBoard
from edgeasd.agent.enrollment.enroll import Batch
from edgeasd.agent.enrollment.kept_audio import AudioStore
from edgeasd.config.paths import Paths
from edgeasd.scoring import ReferenceBank
from edgeasd.scoring.store import lock_path, save_bank


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _tree_modes(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): _mode(p) for p in sorted(root.rglob("*"))}


def test_every_file_the_agent_writes_is_private_to_user_and_group(tmp_path, umask_022):
    paths = Paths(
        state_dir=tmp_path / "state",
        runtime_dir=tmp_path / "run",
        log_dir=tmp_path / "state" / "log",
        cache_dir=tmp_path / "cache",
    ).ensure()
    rng = np.random.default_rng(0)
    x = rng.standard_normal((6, 8)).astype(np.float32)
    bank = ReferenceBank(8, metric="cosine", density="knn", k=1, norm="ratio")
    bank.enroll(x, domain="source", group="g1")
    save_bank(bank, paths.bank)
    AudioStore(paths.audio_dir, max_bytes=2**30).keep(
        Batch(x, "source", "g1", [rng.standard_normal(1600).astype(np.float32)], 16000, "live"),
        [0, 1, 2, 3, 4, 5],
    )
    for log_path in (paths.alerts_log, paths.scores_log):
        with JsonlLog(log_path, max_bytes=200, backups=1) as sink:
            for i in range(8):  # rotates: the rotated file keeps the mode
                sink.write({"event": "window", "i": i, "pad": "x" * 40})
    alerts = AlertAudio(paths.log_dir / "alert-audio", max_bytes=2**30, sample_rate=16000)
    try:
        meta = {"unix_time": 0.0, "window_index": 7, "score": 5.0, "threshold": 3.0}
        assert alerts.write(rng.standard_normal(1600).astype(np.float32), meta) is not None
    finally:
        alerts.close()
    info = SimpleNamespace(
        name="m", version="1", id="m-1", window_seconds=1.0, sample_rate=16000, members=()
    )
    StatusBoard(paths.status_file, info).update(state="running")

    modes = {**_tree_modes(paths.state_dir), **_tree_modes(paths.runtime_dir)}
    expected = {"bank", "bank.lock", "audio", "audio/g1.flac", "audio/g1.json"}
    expected |= {"log", "log/alerts.jsonl", "log/alerts.jsonl.1", "log/scores.jsonl"}
    expected |= {"status.json", "log/alert-audio"}
    expected |= {
        f"log/alert-audio/alert-19700101T000000.000000Z-w00000007.{x}" for x in ("flac", "json")
    }
    assert expected <= set(modes), modes
    assert lock_path(paths.bank).name == "bank.lock"
    for name, mode in modes.items():
        folder = (paths.state_dir / name).is_dir() or (paths.runtime_dir / name).is_dir()
        limit = 0o750 if folder else 0o640
        assert mode & ~limit == 0, f"{name} is {mode:o}, wider than {limit:o}"
    assert _mode(paths.state_dir) == 0o750 and _mode(paths.log_dir) == 0o750


def test_a_log_left_world_readable_by_an_older_version_is_narrowed(tmp_path, umask_022):
    log = tmp_path / "alerts.jsonl"
    log.write_text('{"event": "old"}\n')
    log.chmod(0o644)
    with JsonlLog(log) as sink:
        sink.write({"event": "new"})
    assert _mode(log) == 0o640
    assert len(log.read_text().splitlines()) == 2


def test_mqtt_queue_files_are_private_under_umask_022(tmp_path, umask_022):
    from edgeasd.filemode import FILE_MODE
    from edgeasd.fleet.mqtt_queue import DiskQueue

    path = tmp_path / "state" / "mqtt-queue.sqlite"
    queue = DiskQueue(path, max_bytes=10_000)
    try:
        for i in range(5):
            queue.put("alert", "edgeasd/x/alert", b'{"event": "alert", "i": %d}' % i)
        files = sorted(tmp_path.glob("state/mqtt-queue.sqlite*"))
        assert {p.name for p in files} >= {"mqtt-queue.sqlite", "mqtt-queue.sqlite-wal"}
        for p in files:  # was 0644: event payloads readable by every local user
            assert _mode(p) == FILE_MODE, f"{p.name} is {_mode(p):o}"
    finally:
        queue.close()
    for p in tmp_path.glob("state/mqtt-queue.sqlite*"):  # as an older version left them
        p.chmod(0o644)
    DiskQueue(path, max_bytes=10_000).close()
    assert _mode(path) == FILE_MODE


#: Every kind of file the agent creates, by name pattern, and its mode from edgeasd.filemode.
def _kinds() -> list[tuple[str, int]]:
    from edgeasd.filemode import AUDIO_MODE, DIR_MODE, FILE_MODE

    return [
        ("state", DIR_MODE),
        ("state/bank", FILE_MODE),
        ("state/bank.lock", FILE_MODE),
        ("state/bank.[0-9]", FILE_MODE),  # generations
        ("state/bank.next-id", FILE_MODE),
        ("state/mqtt-queue.sqlite*", FILE_MODE),
        ("state/audio", DIR_MODE),
        ("state/audio/*.flac", AUDIO_MODE),  # kept audio, also staged then committed
        ("state/audio/*.json", FILE_MODE),
        ("state/log", DIR_MODE),
        ("state/log/*.jsonl*", FILE_MODE),
        ("state/log/alert-audio", DIR_MODE),
        ("state/log/alert-audio/*.flac", AUDIO_MODE),
        ("state/log/alert-audio/*.json", FILE_MODE),
        ("run", DIR_MODE),
        ("run/status.json", FILE_MODE),
    ]


def test_each_kind_of_file_gets_exactly_its_mode_under_umask_022(tmp_path, umask_022):
    import fnmatch

    from edgeasd.agent.enrollment.grouping import GroupBuilder
    from edgeasd.fleet.mqtt_queue import DiskQueue

    paths = Paths(
        state_dir=tmp_path / "state",
        runtime_dir=tmp_path / "run",
        log_dir=tmp_path / "state" / "log",
        cache_dir=tmp_path / "cache",
    ).ensure()
    rng = np.random.default_rng(0)
    bank = ReferenceBank(8)
    store = AudioStore(paths.audio_dir, max_bytes=2**30)
    for g in range(2):  # streamed groups: staged as .part FLACs, then committed (was 0644)
        builder = GroupBuilder("file", "source", "f.wav", 16000, 0.1, 60.0, paths.audio_dir)
        for w in range(3):
            index = builder.add(w * 0.1, rng.standard_normal(1600).astype(np.float32) * 0.1)
            builder.embedded(index, rng.standard_normal((1, 8)).astype(np.float32))
        batches = builder.finish()
        store.stage(batches)
        ids = bank.enroll(np.concatenate([b.embeddings for b in batches]), group=f"g{g}")
        save_bank(bank, paths.bank)  # the second save keeps a generation
        store.confirm(batches, ids.tolist())
    with JsonlLog(paths.alerts_log, max_bytes=200, backups=1) as sink:
        for i in range(8):
            sink.write({"event": "alert", "i": i, "pad": "x" * 40})
    alerts = AlertAudio(paths.log_dir / "alert-audio", max_bytes=2**30, sample_rate=16000)
    meta = {"unix_time": 0.0, "window_index": 7, "score": 5.0, "threshold": 3.0}
    assert alerts.write(rng.standard_normal(1600).astype(np.float32) * 0.1, meta) is not None
    info = SimpleNamespace(
        name="m", version="1", id="m-1", window_seconds=1.0, sample_rate=16000, members=()
    )
    StatusBoard(paths.status_file, info).update(state="running")
    queue = DiskQueue(paths.state_dir / "mqtt-queue.sqlite", max_bytes=10_000)
    queue.put("alert", "t", b"{}")
    try:
        found = {
            str(p.relative_to(tmp_path)): _mode(p)
            for p in sorted(tmp_path.rglob("*"))
            if not str(p.relative_to(tmp_path)).startswith("cache")
        }
    finally:
        queue.close()
    kinds = _kinds()
    seen = set()
    for name, mode in found.items():
        want = next((m for pattern, m in kinds if fnmatch.fnmatch(name, pattern)), None)
        assert want is not None, f"{name}: a file of no known kind"
        assert mode == want, f"{name} is {mode:o}, its kind is {want:o}"
        seen |= {pattern for pattern, _ in kinds if fnmatch.fnmatch(name, pattern)}
    assert seen == {pattern for pattern, _ in kinds}, "every kind was made"


def test_audio_an_older_version_kept_0644_is_narrowed_at_start(tmp_path, umask_022):
    from edgeasd.filemode import AUDIO_MODE

    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 8)).astype(np.float32)
    bank = ReferenceBank(8)
    ids = bank.enroll(x, group="g1")
    store = AudioStore(tmp_path / "audio", max_bytes=2**30)
    store.keep(Batch(x, "source", "g1", [rng.standard_normal(1600)], 16000, "live"), ids)
    alerts = AlertAudio(tmp_path / "alert-audio", max_bytes=2**30, sample_rate=16000)
    meta = {"unix_time": 0.0, "window_index": 7, "score": 5.0, "threshold": 3.0}
    flacs = [tmp_path / "audio" / "g1.flac", alerts.write(rng.standard_normal(1600) * 0.1, meta)]
    for f in flacs:
        f.chmod(0o644)  # as versions before the fix left them
    store.clean_at_start(bank)
    AlertAudio(tmp_path / "alert-audio", max_bytes=2**30, sample_rate=16000).clean()
    assert [_mode(f) for f in flacs] == [AUDIO_MODE, AUDIO_MODE]
