"""Per-window cost of the MQTT sink and the metrics: off, against a live broker, against a
dead one.

Run with ``python benchmarks/run.py mqtt`` (or ``python benchmarks/bench_mqtt.py
[--windows 200]``). Each configuration runs ``edgeasd run`` with the shipped default model
on a simulated fan (``DemoSource``: 40 s normal, then 20 s with a bearing fault) looped as
fast as the daemon takes it, so that one window in three raises an alert or a recovery:
far more events than a real machine gives, the worst case for the sink. Measured, after a
warm-up of 20 windows, over ``--windows`` windows:

- per-window processing time (quality + embedding + scoring + the alert's enqueueing),
  from the score log: median and 90th percentile;
- CPU time of the daemon process per window (user + system, all its threads: paho's and
  the publisher's included);
- windows per second of wall time.

Rows: baseline (MQTT and metrics off, twice: the run-to-run noise), metrics only (the
default), MQTT to a live Mosquitto started here, MQTT to a dead broker (a closed port: the
queue grows on disk, one fsync'ed commit per event).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

from edgeasd.audio.demo import DemoSource
from edgeasd.audio.io import write_audio
from edgeasd.embedding.models import default_model_path

RATE = 16000
TICK = os.sysconf("SC_CLK_TCK")
WARMUP = 20
MOSQUITTO = "/usr/sbin/mosquitto"


def _render(path: Path, normal: float, anomalous: float, seed: int) -> Path:
    source = DemoSource(RATE, seconds_normal=normal, seconds_anomalous=anomalous, seed=seed)
    write_audio(path, np.concatenate([b.samples for b in source.blocks()]), RATE, subtype="FLOAT")
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _config(root: Path, name: str, feed: Path, mqtt: dict | None, metrics: bool) -> Path:
    config = {
        "model": {"path": str(default_model_path())},
        "source": {"kind": "file", "path": str(feed), "realtime": False, "loop": True},
        "paths": {
            "state_dir": str(root / "state"),
            "runtime_dir": str(root / f"run-{name}"),
            "log_dir": str(root / f"log-{name}"),
        },
        "mqtt": {"enabled": mqtt is not None, **(mqtt or {})},
        "metrics": {"enabled": metrics},
    }
    path = root / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def _scored(status: Path) -> int:
    try:
        return int(json.loads(status.read_text()).get("windows_scored", 0))
    except (FileNotFoundError, json.JSONDecodeError):
        return 0


def _until(status: Path, n: int, proc: subprocess.Popen, timeout: float = 600) -> None:
    end = time.monotonic() + timeout
    while _scored(status) < n:
        if proc.poll() is not None or time.monotonic() > end:
            raise RuntimeError(f"daemon stopped or too slow (exit {proc.poll()})")
        time.sleep(0.05)


def _measure(root: Path, name: str, config: Path, env: dict, windows: int) -> dict:
    status = root / f"run-{name}" / "status.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "edgeasd", "run", "--config", str(config)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _until(status, WARMUP, proc)
        cpu0, t0, n0 = _cpu_seconds(proc.pid), time.monotonic(), _scored(status)
        _until(status, WARMUP + windows, proc)
        cpu1, t1, n1 = _cpu_seconds(proc.pid), time.monotonic(), _scored(status)
    finally:
        proc.terminate()
        proc.wait(30)
    rows = [json.loads(line) for line in (root / f"log-{name}" / "scores.jsonl").open()]
    ms = np.array([r["processing_ms"] for r in rows if "score" in r][n0:n1])
    events = [json.loads(line) for line in (root / f"log-{name}" / "alerts.jsonl").open()]
    return {
        "median": float(np.median(ms)),
        "p90": float(np.percentile(ms, 90)),
        "cpu_ms": 1000 * (cpu1 - cpu0) / (n1 - n0),
        "rate": (n1 - n0) / (t1 - t0),
        "events": sum(e["event"] in ("alert", "recovered") for e in events),
        "windows": n1 - n0,
    }


def main(windows: int = 200) -> None:
    """Run the configurations and print a Markdown table."""
    if not Path(MOSQUITTO).exists():
        print(f"skipped: {MOSQUITTO} not installed")
        return
    with tempfile.TemporaryDirectory(prefix="edgeasd-bench-mqtt-") as tmp:
        root = Path(tmp)
        env = dict(os.environ, NUMBA_CACHE_DIR=str(root / "numba"))
        env.pop("NOTIFY_SOCKET", None)
        env.pop("CREDENTIALS_DIRECTORY", None)
        feed = _render(root / "feed.wav", 40.0, 20.0, seed=1)
        enroll = [_render(root / f"enroll{i}.wav", 50.0, 0.0, seed=100 * (i + 1)) for i in range(2)]
        live_port, dead_port = _free_port(), _free_port()
        conf = root / "mosquitto.conf"
        conf.write_text(
            f"listener {live_port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
            + ("user root\n" if os.geteuid() == 0 else "")
        )
        broker = subprocess.Popen(
            [MOSQUITTO, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        mqtt = {"host": "127.0.0.1", "site": "bench", "machine": "fan"}
        runs = [
            ("baseline", None, False),
            ("metrics", None, True),
            ("live", {**mqtt, "port": live_port}, True),
            ("dead", {**mqtt, "port": dead_port}, True),
            ("baseline2", None, False),
        ]
        labels = {
            "baseline": "MQTT off, metrics off",
            "baseline2": "MQTT off, metrics off (again)",
            "metrics": "metrics on (default), MQTT off",
            "live": "MQTT on, live broker (+ metrics)",
            "dead": "MQTT on, dead broker (+ metrics)",
        }
        results = {}
        try:
            first = _config(root, "baseline", feed, None, False)
            subprocess.run(
                [sys.executable, "-m", "edgeasd", "enroll", "--config", str(first)]
                + [str(p) for p in enroll],
                env=env,
                check=True,
                capture_output=True,
            )
            for name, m, metrics in runs:
                config = _config(root, name, feed, m, metrics)
                results[name] = _measure(root, name, config, env, windows)
        finally:
            broker.terminate()
            broker.wait(10)
        queued = (root / "state" / "mqtt-queue.sqlite").stat().st_size
    print(
        f"Default model `{default_model_path().name}`, 10 s windows, demo fan (40 s normal, "
        f"20 s faulty) looped as fast as possible; {windows} windows per row after "
        f"{WARMUP} of warm-up; alert/recovered events every ~3 windows.\n"
    )
    print(
        "| configuration | per-window ms, median / p90 | CPU ms per window | windows/s | events |"
    )
    print("|---|---|---|---|---|")
    for name, *_ in runs:
        r = results[name]
        print(
            f"| {labels[name]} | {r['median']:.1f} / {r['p90']:.1f} | {r['cpu_ms']:.1f} "
            f"| {r['rate']:.1f} | {r['events']} |"
        )
    base = [results["baseline"]["cpu_ms"], results["baseline2"]["cpu_ms"]]
    print(
        f"\nRun-to-run noise of the baseline: CPU {min(base):.1f}-{max(base):.1f} ms per window. "
        f"Queue file after the dead-broker run: {queued / 1024:.0f} KiB. "
        f"Load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores."
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--windows", type=int, default=200, help="windows measured per row")
    main(parser.parse_args().windows)
