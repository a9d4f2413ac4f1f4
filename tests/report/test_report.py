"""``edgeasd report`` and the kept audio of alerts, on a real demo run with an injected fault.

One module fixture enrolls the demo machine's first normal windows and runs the daemon
(subprocesses, the small test model) over the demo source, whose fault raises an alert;
the tests then render the report with the CLI and look at what it holds.
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import shutil
import subprocess
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import yaml
from e2e.harness import RATE, Setup, make_setup

from edgeasd.agent.alerts.alert_audio import AlertAudio, alert_records, read_alert_audio
from edgeasd.audio.io import read_audio
from edgeasd.audio.mel import log_mel
from edgeasd.errors import InputError
from edgeasd.report.build import parse_time

plt_image = pytest.importorskip("matplotlib.image")

PNG = re.compile(r'<img alt="([^"]*)" src="data:image/png;base64,([A-Za-z0-9+/=]+)"')
#: Chromium's headless screenshot tool: Debian's chromium-headless-shell, else chromium.
CHROMIUM = shutil.which("chromium-headless-shell") or shutil.which("chromium")


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Setup:
    """A demo machine enrolled (10 live windows, 2 groups) and run through its fault."""
    setup = make_setup(
        tmp_path_factory.mktemp("report"),
        {"kind": "demo", "realtime": False},
        enrollment={"group_seconds": 5.0},  # 10 windows of 1 s: two groups, so it scores
    )
    setup.cli("enroll", "--next", "10", "--domain", "demo", timeout=300, check=True)
    setup.cli("run", timeout=300, check=True)
    return setup


@pytest.fixture(scope="module")
def report(demo: Setup, tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    """``edgeasd report`` of the demo run (the CLI, as a subprocess)."""
    out = tmp_path_factory.mktemp("html") / "report.html"
    return out, _report(demo, out, "--since", "2h")


def _images(html: str) -> dict[str, np.ndarray]:
    """The embedded PNGs by alt text, decoded."""
    return {
        alt: plt_image.imread(io.BytesIO(base64.b64decode(data)), format="png")
        for alt, data in PNG.findall(html)
    }


def _report(setup: Setup, out: Path, *args: str, config: Path | None = None):
    cmd = ["report", "-o", str(out), *args]
    if config is not None:
        return Setup(setup.root, config, setup.env).cli(*cmd, timeout=300)
    return setup.cli(*cmd, timeout=300)


def _alerts(setup: Setup) -> list[dict]:
    return [e for e in setup.events() if e["event"] == "alert"]


def test_the_demo_fault_alerts_and_its_window_audio_is_kept(demo: Setup) -> None:
    from edgeasd.audio.demo import DemoSource

    alerts = _alerts(demo)
    assert alerts, demo.log()
    kept = alert_records(demo.logs / "alert-audio")
    records = [r for r in kept if r["episode_window"] == 0]  # the alerting windows
    assert [(r["time"], r["window_index"], r["alert_id"]) for r in records] == [
        (a["time"], a["window_index"], a["alert_id"]) for a in alerts
    ]
    # and the windows of each episode after it, for `edgeasd feedback` (at most 6 each)
    for a in alerts:
        episode = sorted(r["window_index"] for r in kept if r["alert_id"] == a["alert_id"])
        assert episode == list(range(a["window_index"], a["window_index"] + len(episode)))
        assert 1 <= len(episode) <= 6
    first = records[0]
    assert first["score"] == alerts[0]["score"] > first["threshold"]
    assert first["nearest_domain"] == "demo" and isinstance(first["nearest_id"], int)
    # the FLAC holds exactly the alerted window of the stream (16-bit quantization)
    stream = np.concatenate([b.samples for b in DemoSource(RATE).blocks()])
    i = first["window_index"]
    kept = read_alert_audio(demo.logs / "alert-audio", first)
    assert kept.shape == (RATE,)
    assert np.abs(kept - stream[i * RATE : (i + 1) * RATE]).max() < 1e-4


def test_report_has_a_timeline_and_one_nonblank_png_per_alert(demo: Setup, report) -> None:
    out, proc = report
    assert proc.returncode == 0, proc.stderr
    assert f"wrote {out}" in proc.stdout
    html = out.read_text()
    images = _images(html)
    n_alerts = len(_alerts(demo))
    # progress in the terminal: the timeline, then each alert as it is drawn
    assert re.search(
        r"^\d+ windows and \d+ alert\(s\) .*: drawing the timeline$", proc.stderr, re.M
    )
    for i in range(1, n_alerts + 1):
        assert f"alert {i} of {n_alerts}: spectrograms and band differences" in proc.stderr
    panels = [alt for alt in images if re.fullmatch(r"alert \d+ spectrograms", alt)]
    assert len(panels) == n_alerts >= 1
    assert set(images) == {"timeline", *panels}
    for alt, img in images.items():
        assert img.ndim == 3 and img.shape[0] > 200 and img.shape[1] > 500, alt
        assert img[..., :3].std() > 0.05, f"{alt} is blank"
    # two players per alert (its window, its reference), each one window of FLAC
    players = re.findall(
        r'<audio controls preload="none" src="data:audio/flac;base64,([^"]+)"', html
    )
    assert len(players) == 2 * n_alerts
    for data in players:
        audio, rate = sf.read(io.BytesIO(base64.b64decode(data)))
        assert rate == RATE and audio.shape == (RATE,) and audio.std() > 0.01
    # the panel names the nearest reference, its domain and enrollment time
    record = alert_records(demo.logs / "alert-audio")[0]
    assert f"#{record['nearest_id']} (domain demo)" in html
    assert "reference enrolled" in html and "not kept" not in html


def test_band_difference_shows_where_the_fault_adds_energy(demo: Setup) -> None:
    """The fault's extra energy is in the alerted window's spectrum, not the reference's."""
    record = alert_records(demo.logs / "alert-audio")[0]
    alert = log_mel(read_alert_audio(demo.logs / "alert-audio", record), RATE)
    normal = read_audio(next((demo.state / "audio").glob("*.flac"))).samples[:RATE]
    diff = alert.mean(axis=1) - log_mel(normal, RATE).mean(axis=1)
    assert diff.max() > 3.0  # dB: some bands are clearly louder during the fault


def test_report_in_headless_chromium_is_not_blank(report, tmp_path) -> None:
    if CHROMIUM is None:
        pytest.skip("no chromium-headless-shell or chromium (README set-up installs it)")
    out, proc = report
    assert proc.returncode == 0, proc.stderr
    shot = tmp_path / "shot.png"
    subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",  # CI runs as root
            "--disable-gpu",
            "--hide-scrollbars",
            "--window-size=1300,1800",
            f"--screenshot={shot}",
            out.as_uri(),
        ],
        capture_output=True,
        timeout=120,
        check=True,
    )
    img = plt_image.imread(shot)[..., :3]
    assert img.shape[:2] == (1800, 1300)
    assert img.std() > 0.1  # text and pictures, not an empty page
    assert (img.mean(axis=2) < 0.5).mean() > 0.02  # dark pixels: the spectrograms drew


def test_report_says_what_audio_is_missing_and_still_renders(demo: Setup, tmp_path) -> None:
    logs = tmp_path / "log"
    shutil.copytree(demo.logs, logs)
    config = yaml.safe_load(demo.config.read_text())
    config["paths"].update(state_dir=str(tmp_path / "empty-state"), log_dir=str(logs))
    path = tmp_path / "edgeasd.yaml"
    path.write_text(yaml.safe_dump(config))
    out = tmp_path / "report.html"
    n = len(_alerts(demo))
    panels = {f"alert {i + 1} spectrograms" for i in range(n)}
    # no enrollment audio: the alert's spectrogram, and a note instead of the reference
    proc = _report(demo, out, "--since", "2h", "--no-audio", config=path)
    assert proc.returncode == 0, proc.stderr
    html = out.read_text()
    assert "<audio" not in html
    assert html.count("is not kept (enrollment.keep_audio is off") == n
    assert set(_images(html)) == {"timeline"} | panels
    # no alert audio either: a note, no picture, still a report
    for record in alert_records(logs / "alert-audio"):
        (logs / "alert-audio" / record["file"]).unlink()
    proc = _report(demo, out, "--since", "2h", config=path)
    assert proc.returncode == 0, proc.stderr
    html = out.read_text()
    assert html.count("no kept audio for this alert") == n
    assert set(_images(html)) == {"timeline"}


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("--since", "yesterday-ish"), "cannot read the time 'yesterday-ish'"),
        (("--since", "1h", "--until", "2h"), "the range is empty"),
        (("--since", "2001-01-01", "--until", "2001-01-02"), "nothing was logged"),
    ],
)
def test_report_cli_bad_range_or_no_data(demo: Setup, tmp_path, args, needle) -> None:
    out = tmp_path / "report.html"
    proc = _report(demo, out, *args)
    assert proc.returncode == 2
    assert needle in proc.stderr and "hint:" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not out.exists()


def test_parse_time_forms() -> None:
    now = 1_800_000_000.0
    assert parse_time("24h", now) == now - 86400
    assert parse_time("90m", now) == now - 5400
    assert parse_time("now", now) == now
    utc = datetime(2026, 11, 30, 8, 0, tzinfo=timezone.utc).timestamp()
    assert parse_time("2026-11-30T08:00Z") == utc
    assert parse_time("2026-11-30T09:00+01:00") == utc
    assert parse_time("2026-11-30T08:00") == datetime(2026, 11, 30, 8, 0).timestamp()  # local
    with pytest.raises(InputError, match="cannot read the time"):
        parse_time("tomorrow")


def test_alert_audio_cap_deletes_the_oldest(tmp_path) -> None:
    rng = np.random.default_rng(0)
    store = AlertAudio(tmp_path / "a", max_bytes=1, sample_rate=RATE)  # reset below
    sizes = []
    for i in range(4):
        store.max_bytes = 2**40
        flac = store.write(0.1 * rng.standard_normal(RATE).astype(np.float32), _meta(i))
        sizes.append(flac.stat().st_size + flac.with_suffix(".json").stat().st_size)
    store.max_bytes = sizes[2] + sizes[3]  # room for the newest two only
    store.enforce_cap()
    assert [r["window_index"] for r in alert_records(tmp_path / "a")] == [2, 3]
    assert len(list((tmp_path / "a").iterdir())) == 4


def test_alert_audio_write_failure_warns_and_never_raises(tmp_path, caplog) -> None:
    blocker = tmp_path / "alert-audio"
    blocker.write_text("a file where the folder should be")
    store = AlertAudio(blocker, max_bytes=2**20, sample_rate=RATE)
    with caplog.at_level("WARNING", logger="edgeasd.agent.alerts.alert_audio"):
        store.keep(np.zeros(RATE, np.float32), _meta(7))  # on the writer thread
        store.close()
    assert any("could not keep the audio" in r.message for r in caplog.records)
    assert blocker.read_text().startswith("a file")


def test_alert_audio_zero_cap_keeps_nothing(tmp_path) -> None:
    store = AlertAudio(tmp_path / "a", max_bytes=0, sample_rate=RATE)
    store.keep(np.zeros(RATE, np.float32), _meta(1))
    store.close()
    assert not (tmp_path / "a").exists()


def _meta(i: int) -> dict:
    t = 1_800_000_000.0 + i
    return {"time": datetime.fromtimestamp(t).astimezone().isoformat(), "unix_time": t,
            "window_index": i, "score": 5.0, "threshold": 3.0, "nearest_id": 0,
            "nearest_domain": "source"}  # fmt: skip


def test_log_mel_puts_a_tone_in_its_band() -> None:
    t = np.arange(RATE) / RATE
    mel = log_mel(0.5 * np.sin(2 * np.pi * 1000.0 * t), RATE)
    assert mel.shape == (64, 1 + (RATE - 1024) // 512)
    # HTK mel scale, 64 bands from 20 Hz to Nyquist: the band centred nearest 1 kHz
    edges = np.linspace(2595 * np.log10(1 + 20 / 700), 2595 * np.log10(1 + 8000 / 700), 66)
    centres = 700 * (10 ** (edges[1:-1] / 2595) - 1)
    assert mel.mean(axis=1).argmax() == np.abs(centres - 1000).argmin()
    assert log_mel(np.zeros(RATE), RATE).max() == pytest.approx(-150.0)


def test_report_without_matplotlib_names_the_extra(demo: Setup, tmp_path) -> None:
    blocked = tmp_path / "blocked" / "matplotlib"
    blocked.mkdir(parents=True)
    (blocked / "__init__.py").write_text("raise ImportError('matplotlib blocked by the test')\n")
    env = dict(demo.env)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(blocked.parent), *filter(None, [env.get("PYTHONPATH")])]
    )
    out = tmp_path / "report.html"
    proc = Setup(demo.root, demo.config, env).cli("report", "-o", str(out), "--since", "2h")
    assert proc.returncode == 2, proc.stderr
    assert "matplotlib, which is not installed" in proc.stderr
    assert "pip install 'edgeasd[plot]'" in proc.stderr
    assert not out.exists()


def test_timeline_draws_signal_recovery_and_enrollment_marks() -> None:
    """Events the demo does not produce: bad signal stretches, recoveries, unscored spans."""
    from edgeasd.report.plots import timeline_png

    t0 = 1_800_000_000.0
    windows = [
        {"unix": t0 + i, "score": s, "threshold": 3.0, "nearest_domain": d}
        for i, (s, d) in enumerate([(0.5, "source"), (4.0, "source"), (-0.2, "target")] * 5)
    ] + [{"unix": t0 + 20, "decision": "signal"}]
    events = [
        {"unix": t0 - 5, "event": "enrolled", "ids": [0, 1], "groups": ["g1"]},
        {"unix": t0 + 1, "event": "alert"},
        {"unix": t0 + 2, "event": "recovered"},
        {"unix": t0 + 6, "event": "signal", "status": "silence"},
        {"unix": t0 + 9, "event": "signal", "status": "ok"},
        {"unix": t0 + 18, "event": "signal", "status": "clipping"},  # lasts to the end
    ]
    for w in (windows, windows[-1:]):  # with scores (symlog: one is negative), without any
        img = plt_image.imread(io.BytesIO(timeline_png(w, events, {"g1": "source"})))
        assert img[..., :3].std() > 0.05


def test_reference_window_in_kept_file_and_live_enrollments(tmp_path) -> None:
    from edgeasd.agent.enrollment.enroll import Batch
    from edgeasd.agent.enrollment.kept_audio import AudioStore
    from edgeasd.report.build import reference_audio

    rng = np.random.default_rng(1)
    store = AudioStore(tmp_path, 2**30)
    win, hop = 800, 500
    whole = (0.3 * rng.uniform(-1, 1, 2 * hop + win)).astype(np.float32)  # 3 windows
    emb = np.zeros((3, 4), np.float32)
    store.keep(Batch(emb, "source", "file-a", [whole], RATE, "a.wav"), [5, 6, 7])
    live = [(0.3 * rng.uniform(-1, 1, win)).astype(np.float32) for _ in range(3)]
    store.keep(Batch(emb, "target", "live-b", live, RATE, "live"), [8, 9, 10])
    file_group, live_group = store.records()
    kept = read_audio(tmp_path / "file-a.flac").samples  # 16-bit as stored
    for i, ref in enumerate([5, 6, 7]):  # file enrollment: window i starts at i * hop
        got, note = reference_audio(store, file_group, ref, win)
        np.testing.assert_array_equal(got, kept[i * hop : i * hop + win])
        assert "even spacing" in note
    got, note = reference_audio(store, live_group, 9, win)
    assert note is None and np.abs(got - live[1]).max() < 1e-4
    store.update_ids("live-b", [8, 10])  # a removal: ids no longer match the segments
    got, note = reference_audio(store, store.records()[1], 10, win)
    assert got is None and "no longer maps reference ids" in note


def test_reused_reference_id_shows_the_group_that_held_it_at_the_alert() -> None:
    from edgeasd.report.build import reference_group

    # kept audio of an older version: group "old" dropped by a restore, "new" got its id 5
    old = {"group": "old", "created": 100.0, "ids": [4, 5]}
    new = {"group": "new", "created": 200.0, "ids": [5, 6]}
    groups = [old, new]
    assert reference_group(groups, 5, 250.0) is new  # was: the first sidecar naming id 5
    assert reference_group(groups, 5, 150.0) is old
    assert reference_group(groups, 6, 150.0) is new  # only one names it: that one
    assert reference_group(groups, 7, 150.0) is None


def _label_boxes(fig) -> tuple[list, object]:
    """The enrollment labels' and the plot's extents in pixels."""
    renderer = fig.canvas.get_renderer()
    (ax,) = fig.axes
    labels = [t for t in ax.texts if t.get_color() == "tab:blue"]
    return [t.get_window_extent(renderer) for t in labels], ax.get_window_extent(renderer)


def test_enrollment_labels_neither_overlap_nor_clip() -> None:
    """Close enrollments (a burst, one at each edge) get labels that stay apart and inside."""
    from edgeasd.report.plots import pyplot, timeline_figure

    t0 = 1_800_000_000.0
    windows = [
        {"unix": t0 + 10 * i, "score": 1.0 + (i % 7 == 0) * 3, "threshold": 3.0,
         "nearest_domain": "source"}
        for i in range(360)
    ]  # fmt: skip
    times = [t0, t0 + 30, t0 + 60, t0 + 900, t0 + 905, t0 + 2000, t0 + 3590]
    events = [
        {"unix": t, "event": "enrolled", "ids": list(range(10 * (k + 1))), "groups": [f"g{k}"]}
        for k, t in enumerate(times)
    ]
    domains = {f"g{k}": "a-rather-long-domain-name" if k % 2 else "target" for k in range(7)}
    fig = timeline_figure(windows, events, domains)
    boxes, plot = _label_boxes(fig)
    pyplot().close(fig)
    assert 2 <= len(boxes) <= len(times)
    for i, a in enumerate(boxes):
        assert plot.x0 <= a.x0 and a.x1 <= plot.x1 and plot.y0 <= a.y0 and a.y1 <= plot.y1, (
            "clipped",
            a,
            plot,
        )
        for b in boxes[i + 1 :]:
            assert not a.overlaps(b), (a, b)


def test_stopped_spans_and_alert_summaries() -> None:
    from edgeasd.report.summary import stopped_spans, summarize_alert

    t0 = 1_800_000_000.0
    windows = [{"unix": t0 + 10 * i} for i in range(10)]
    windows += [{"unix": t0 + 500 + 10 * i} for i in range(10)]  # stopped for ~7 minutes
    assert stopped_spans(windows) == [(t0 + 90, t0 + 500)]
    assert stopped_spans(windows[:10]) == []
    scored = [{"unix": t0 + i, "score": s} for i, s in enumerate([1, 5, 9, 4, 1, 1])]
    alert = {"unix": t0 + 1, "time": "A", "event": "alert", "score": 5.0}
    recovered = {"unix": t0 + 4, "time": "B", "event": "recovered", "started": "A",
                 "duration_seconds": 3.0, "max_score": 9.0}  # fmt: skip
    done = summarize_alert(alert, [alert, recovered], scored)
    assert (done.peak_score, done.duration_seconds, done.ongoing) == (9.0, 3.0, False)
    going = summarize_alert(alert, [alert], scored)
    assert (going.peak_score, going.duration_seconds, going.ongoing) == (9.0, 4.0, True)


def test_band_changes_are_named_in_words() -> None:
    from edgeasd.report.summary import band_changes, describe_band_changes

    centres = np.geomspace(50, 8000, 64)
    diff = np.zeros(64)
    i120 = int(np.argmin(np.abs(centres - 120)))
    diff[i120], diff[i120 + 1], diff[50] = 14.2, 12.0, -6.4
    text = describe_band_changes(band_changes(diff, centres))
    assert text == f"+14 dB around {centres[i120]:.0f} Hz, −6 dB around " + (
        f"{centres[50] / 1000:.2g} kHz"
    )
    assert "no band differs" in describe_band_changes(band_changes(diff * 0.1, centres))


def test_report_names_the_machine_and_each_alerts_peak_and_duration(demo: Setup, report) -> None:
    out, _ = report
    html = out.read_text()
    config = yaml.safe_load(demo.config.read_text())
    machine = (config.get("mqtt") or {}).get("machine") or __import__("socket").gethostname()
    assert f"edgeasd report: {machine} at site</h1>" in html
    n = len(_alerts(demo))
    assert html.count("<th>peak score</th><td>") == n
    assert html.count("<th>duration</th><td>") == n
    assert html.count('<p class="changes">Largest changes: ') == n
    assert re.search(r"Largest changes: [+−]\d+ dB around \d", html)


def test_max_alerts_caps_the_detailed_panels(demo: Setup, tmp_path) -> None:
    """Three alerts (the demo's and two earlier ones written into a copy of its log):
    ``--max-alerts 1`` details the latest, and lists all three."""
    logs = tmp_path / "log"
    shutil.copytree(demo.logs, logs)
    config = yaml.safe_load(demo.config.read_text())
    config["paths"]["log_dir"] = str(logs)
    path = tmp_path / "edgeasd.yaml"
    path.write_text(yaml.safe_dump(config))
    real = _alerts(demo)[-1]
    t = datetime.fromisoformat(real["time"]).timestamp()
    with (logs / "alerts.jsonl").open("a") as f:
        for minutes in (2, 1):
            stamp = datetime.fromtimestamp(t - 60 * minutes, timezone.utc).isoformat()
            f.write(json.dumps({**real, "time": stamp}) + "\n")
    n = len(_alerts(demo)) + 2
    out = tmp_path / "capped.html"
    proc = _report(demo, out, "--since", "2h", "--max-alerts", "1", config=path)
    assert proc.returncode == 0, proc.stderr
    html = out.read_text()
    assert set(_images(html)) == {"timeline", f"alert {n} spectrograms"}  # the latest one
    alerts_section = html.split("<h2>Alerts</h2>", 1)[1]  # after the bank changes' table
    assert alerts_section.split("</table>", 1)[0].count("<tr><td>") == n  # every alert listed
    assert "(1 in detail)" in proc.stdout and f"--max-alerts {n} shows all" in html
    everything = _report(demo, out, "--since", "2h", "--max-alerts", "0", config=path)
    assert everything.returncode == 0 and "in detail" not in everything.stdout
    bad = _report(demo, out, "--since", "2h", "--max-alerts", "-3")
    assert bad.returncode == 2 and "--max-alerts: must be 0 or more, got -3" in bad.stderr


def test_bank_changes_table_names_every_change() -> None:
    from edgeasd.report.bank_changes import bank_changes_html

    events = [
        {"event": "alert", "time": "t0", "alert_id": "20261207-130501-42"},
        {"event": "enrolled", "time": "t1", "via": "direct", "ids": [1, 2], "groups": ["g"]},
        {
            "event": "feedback",
            "time": "t2",
            "via": "daemon",
            "ids": [3],
            "alert_id": "20261207-130501-42",
            "condition": "source",
            "bank_size": 3,
            "threshold": 2.5,
        },
        {"event": "removed", "time": "t3", "via": "daemon", "removed": [3], "bank_size": 2},
        {"event": "restored", "time": "t4", "via": "direct", "restored": "generation 1: x"},
    ]
    text = "".join(bank_changes_html(events, str))
    assert text.count("<tr>") == 5  # a header and the four changes, not the alert
    assert "+2 references in 1 group(s)" in text
    assert "alert 20261207-130501-42 confirmed normal: 1 window(s)" in text
    assert "3 references, threshold 2.5" in text and "removed references 3" in text
    assert "restored generation 1: x" in text
    assert "No change" in "".join(bank_changes_html(events[:1], str))
