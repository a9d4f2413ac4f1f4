"""An alert episode carried over a restart: the detector and the signal watch resume it
(no second alert, the recovery counts from the first alert), and the file that carries it
is read defensively."""

from __future__ import annotations

import logging

from edgeasd.agent.alerts.detector import Detector, iso_time
from edgeasd.agent.alerts.episodes import load_episodes, save_episodes
from edgeasd.agent.alerts.no_signal import SignalWatch


def _run(det: Detector, scores: list[float], t0: float) -> list:
    out = []
    for i, s in enumerate(scores):
        out += det.update(s, t0 + i, i)
    return out


def test_a_resumed_detector_neither_alerts_again_nor_forgets_the_start() -> None:
    first = Detector(2.0, k=2, n=3)
    assert [e.event for e in _run(first, [5.0, 6.0, 7.0], 100.0)] == ["alert"]
    saved = first.episode()
    assert saved is not None and Detector(2.0).episode() is None
    again = Detector(2.0, k=2, n=3)
    again.resume(saved)
    assert _run(again, [8.0, 9.0], 200.0) == []  # the fault goes on: no second alert
    (rec,) = _run(again, [1.0, 1.0], 300.0)  # two normal windows end it, as without restart
    assert rec.event == "recovered" and rec.started == 101.0 and rec.max_score == 9.0
    assert rec.to_dict()["started"] == iso_time(101.0)


def test_a_resumed_signal_watch_recovers_once() -> None:
    watch = SignalWatch(alert_seconds=2.0, window_seconds=1.0)
    events = [e for i in range(3) for e in watch.update(False, 10.0 + i, i, "dead")]
    assert [e["event"] for e in events] == ["alert"]
    again = SignalWatch(alert_seconds=2.0, window_seconds=1.0)
    again.resume(watch.episode())
    assert again.update(False, 50.0, 50, "dead") == []
    (rec,) = again.update(True, 51.0, 51, "ok")
    assert rec["event"] == "recovered" and rec["started"] == iso_time(10.0)


def test_the_episode_file_round_trips_and_bad_ones_are_ignored(tmp_path, caplog) -> None:
    path = tmp_path / "episode.json"
    assert load_episodes(path) == {"anomaly": None, "no_signal": None, "last_alert": None}
    data = {
        "anomaly": {"started": 1.0, "max_score": 5.0, "noticed": 1.0},
        "no_signal": None,
        "last_alert": {"id": "alert-x"},
    }
    save_episodes(path, data)
    assert load_episodes(path) == data
    for text in ("{not json", "[1, 2]", '{"anomaly": {"started": "yesterday"}}'):
        path.write_text(text)
        with caplog.at_level(logging.WARNING):
            got = load_episodes(path)
        assert got["anomaly"] is None
    assert "starting afresh" in caplog.text


def test_a_saved_alert_waits_for_a_detector(tmp_path) -> None:
    """Restarted without a threshold (no detector yet): the alert is still the last verdict."""
    from edgeasd.agent.alerts.episodes import EpisodeKeeper

    path = tmp_path / "episode.json"
    saved = {"started": 1.0, "max_score": 5.0, "noticed": 1.0}
    save_episodes(path, {"anomaly": saved, "no_signal": None, "last_alert": {"id": "a"}})
    keeper = EpisodeKeeper(path)
    watch = SignalWatch(alert_seconds=0.0, window_seconds=1.0)
    keeper.restore_signal(watch)
    keeper.restore_detector(None)
    fields = keeper.status_fields(None, watch)
    assert fields == {"anomaly": True, "no_signal": False, "last_alert": {"id": "a"}}
    keeper.save(None, watch)
    assert load_episodes(path)["anomaly"] == saved  # not lost by a save meanwhile
    det = Detector(2.0)
    keeper.restore_detector(det)
    assert det.alerting and keeper.status_fields(det, watch)["anomaly"]
    assert det.episode()["started"] == 1.0


def test_a_resumed_episode_keeps_its_alert_id_and_kept_windows(tmp_path, caplog) -> None:
    """The episode file carries the alert id and the windows kept so far (issue 17); a
    malformed id is ignored with a warning, the episode still resumes."""
    from edgeasd.agent.alerts.episode_audio import EpisodeRecorder
    from edgeasd.agent.alerts.episodes import EpisodeKeeper

    path = tmp_path / "episode.json"
    det = Detector(2.0)
    det.update(5.0, 100.0, 0)  # an alert
    recorder = EpisodeRecorder(writer=None)
    recorder.resume("20261207-120000-7", kept=3)
    keeper = EpisodeKeeper(path)
    keeper.recorder = recorder
    keeper.save(det, SignalWatch(alert_seconds=0.0, window_seconds=1.0))
    saved = load_episodes(path)["anomaly"]
    assert saved["alert_id"] == "20261207-120000-7" and saved["kept"] == 3
    again = EpisodeKeeper(path)
    again.recorder = EpisodeRecorder(writer=None)
    again.restore_detector(Detector(2.0))
    assert again.recorder.saved() == {"alert_id": "20261207-120000-7", "kept": 3}
    save_episodes(path, {"anomaly": {**saved, "alert_id": "../x"}, "no_signal": None})
    bad = EpisodeKeeper(path)
    bad.recorder = EpisodeRecorder(writer=None)
    resumed = Detector(2.0)
    bad.restore_detector(resumed)
    assert resumed.alerting and bad.recorder.saved() == {}
    assert "alert id is malformed" in caplog.text
