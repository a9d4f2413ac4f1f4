"""Helpers of the end-to-end tests: a test setup on disk, the CLI and the daemon as subprocesses.

Every test gets its own configuration (small 1 s / 16 kHz test model, state, runtime and
log directories under ``tmp_path``) so that daemons never share a socket or a bank.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from support.onnx_models import machine_sound, make_test_model

from edgeasd.audio.io import write_audio

RATE = 16000
REPO = Path(__file__).resolve().parents[2]


@dataclass
class Setup:
    """One agent installation in a temporary folder."""

    root: Path
    config: Path
    env: dict[str, str] = field(default_factory=lambda: dict(os.environ))

    @property
    def state(self) -> Path:
        return self.root / "state"

    @property
    def run_dir(self) -> Path:
        return self.root / "run"

    @property
    def logs(self) -> Path:
        return self.root / "log"

    def cli(self, *args: str, timeout: float = 60, check: bool = False):
        """Run ``edgeasd ARGS --config ...`` (``--config`` added where the command takes it)."""
        cmd = [sys.executable, "-m", "edgeasd", *args]
        if args and args[0] not in ("demo", "devices"):
            cmd += ["--config", str(self.config)]
        proc = subprocess.run(
            cmd, env=self.env, capture_output=True, text=True, timeout=timeout, cwd=REPO
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"{args} failed ({proc.returncode}):\n{proc.stderr}")
        return proc

    def config_args(self) -> list[str]:
        """``["--config", PATH]`` for commands started by hand."""
        return ["--config", str(self.config)]

    def start(self) -> subprocess.Popen:
        """Start ``edgeasd run`` in the background (output in ``<root>/daemon.log``)."""
        out = open(self.root / "daemon.log", "ab")
        return subprocess.Popen(
            [sys.executable, "-m", "edgeasd", "run", "--config", str(self.config)],
            env=self.env,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=REPO,
        )

    def status(self) -> dict[str, Any] | None:
        try:
            return json.loads((self.run_dir / "status.json").read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None

    def wait_ready(self, proc: subprocess.Popen, timeout: float = 30) -> dict[str, Any]:
        """Wait until the daemon runs (status learning/running and the socket exists)."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if proc.poll() is not None:
                raise AssertionError(f"daemon exited with {proc.returncode}:\n{self.log()}")
            s = self.status()
            if s and s["state"] in ("learning", "running") and s["pid"] == proc.pid:
                if (self.run_dir / "control.sock").exists():
                    return s
            time.sleep(0.05)
        raise AssertionError(f"daemon not ready within {timeout} s:\n{self.log()}")

    def wait_for(self, predicate, timeout: float = 30, what: str = "condition") -> Any:
        """Poll ``predicate(status)`` until it returns something truthy."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            s = self.status()
            got = s and predicate(s)
            if got:
                return got
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what}; status {self.status()}\n{self.log()}")

    def stop(self, proc: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 20) -> int:
        proc.send_signal(sig)
        try:
            return proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise AssertionError(f"daemon ignored signal {sig}:\n{self.log()}") from None

    def log(self) -> str:
        path = self.root / "daemon.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    def events(self, name: str = "alerts.jsonl") -> list[dict[str, Any]]:
        path = self.logs / name
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def make_setup(root: Path, source: dict[str, Any], **sections: dict[str, Any]) -> Setup:
    """Write a test model and a configuration using it; returns the :class:`Setup`."""
    root.mkdir(parents=True, exist_ok=True)
    model = make_test_model(root / "model.onnx", sample_rate=RATE, window_seconds=1.0)
    config = {
        "model": {"path": str(model)},
        "source": source,
        "scoring": {"min_references": 4},
        "paths": {
            "state_dir": str(root / "state"),
            "runtime_dir": str(root / "run"),
            "log_dir": str(root / "log"),
        },
        "device": {"retries": 0, "retry_delay_seconds": 0.1, "stall_seconds": 2.0},
    }
    for name, values in sections.items():
        config.setdefault(name, {}).update(values)
    path = root / "edgeasd.yaml"
    path.write_text(yaml.safe_dump(config))
    # one numba cache for all test daemons, so that only the first one compiles
    env = dict(os.environ, NUMBA_CACHE_DIR=str(Path(tempfile.gettempdir()) / "edgeasd-test-numba"))
    env.pop("NOTIFY_SOCKET", None)
    return Setup(root, path, env)


def write_normal(path: Path, seconds: float, seed: int) -> Path:
    """A WAV of normal machine sound."""
    write_audio(path, machine_sound(seconds, RATE, seed=seed), RATE, subtype="FLOAT")
    return path


def running_daemon(root: Path, **sections: dict[str, Any]) -> tuple[Setup, subprocess.Popen]:
    """A daemon scoring a looping feed (a bank of 2 recordings enrolled directly first).

    Returns ``(setup, proc)``; the caller stops ``proc``.
    """
    feed = write_normal(root / "feed.wav", 4, seed=7)
    setup = make_setup(
        root / "agent",
        {"kind": "file", "path": str(feed), "realtime": True, "loop": True},
        **sections,
    )
    files = [write_normal(root / f"e{i}.wav", 3, seed=i) for i in range(2)]
    setup.cli("enroll", *map(str, files), check=True)
    proc = setup.start()
    setup.wait_ready(proc)
    setup.wait_for(lambda s: s["windows_scored"] >= 1, what="scoring")
    return setup, proc


def feed_signal(parts: list[tuple[float, bool]], seed: int = 100) -> np.ndarray:
    """Concatenated (seconds, anomalous) parts of machine sound, shape (samples,)."""
    return np.concatenate(
        [
            machine_sound(sec, RATE, anomalous=anom, seed=seed + i)
            for i, (sec, anom) in enumerate(parts)
        ]
    )
