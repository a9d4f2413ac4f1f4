"""Fixtures of the fleet tests: a real Mosquitto broker on a free loopback port, and a
paho subscriber that records what it receives."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

MOSQUITTO = Path(os.environ.get("EDGEASD_MOSQUITTO", "/usr/sbin/mosquitto"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Broker:
    """One Mosquitto process with a generated config; restartable on the same port."""

    root: Path
    port: int
    tls: dict[str, Path] | None = None
    users: dict[str, str] | None = None
    persist: bool = False
    proc: subprocess.Popen | None = None
    log: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log = self.root / "mosquitto.log"
        lines = [
            f"listener {self.port} 127.0.0.1",
            f"log_dest file {self.log}",
            "log_type all",
        ]
        if self.persist:  # sessions survive a SIGKILL: saved at (nearly) every change
            lines += [
                "persistence true",
                f"persistence_location {self.root}/",
                "autosave_on_changes true",
                "autosave_interval 1",
            ]
        else:
            lines.append("persistence false")
        if os.geteuid() == 0:  # else mosquitto drops to its own user, who cannot read tmp_path
            lines.append("user root")
        if self.users:
            pw = self.root / "passwd"
            pw.write_text("")
            for user, password in self.users.items():
                subprocess.run(["mosquitto_passwd", "-b", str(pw), user, password], check=True)
            lines += ["allow_anonymous false", f"password_file {pw}"]
        else:
            lines.append("allow_anonymous true")
        if self.tls:
            lines += [
                f"cafile {self.tls['ca']}",
                f"certfile {self.tls['cert']}",
                f"keyfile {self.tls['key']}",
            ]
        self.conf = self.root / "mosquitto.conf"
        self.conf.write_text("\n".join(lines) + "\n")

    def start(self, timeout: float = 10) -> Broker:
        self.proc = subprocess.Popen(
            [str(MOSQUITTO), "-c", str(self.conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise AssertionError(f"mosquitto exited: {self.proc.stderr.read().decode()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), 0.2):
                    return self
            except OSError:
                time.sleep(0.05)
        raise AssertionError("mosquitto did not start listening")

    def kill(self) -> None:
        """SIGKILL the broker (an outage: no goodbye to anyone)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
        self.proc = None


@pytest.fixture
def broker(tmp_path):
    """``broker(tls=None, users=None) -> Broker``, started; all stopped after the test."""
    if not MOSQUITTO.exists():
        pytest.skip(f"mosquitto not installed at {MOSQUITTO} (apt-get install mosquitto)")
    started: list[Broker] = []

    def make(
        tls: dict[str, Path] | None = None,
        users: dict[str, str] | None = None,
        persist: bool = False,
    ) -> Broker:
        root = tmp_path / f"broker{len(started)}"
        root.mkdir()
        b = Broker(root, free_port(), tls, users, persist).start()
        started.append(b)
        return b

    yield make
    for b in started:
        b.kill()


class Subscriber:
    """A paho client that records every message of its subscriptions, (topic, payload, retain)."""

    def __init__(self, port: int, topics: list[str], persistent: bool = False, **tls: Any) -> None:
        import paho.mqtt.client as mqtt

        self.messages: list[tuple[str, bytes, bool]] = []
        self._cond = threading.Condition()
        self._subscribed = threading.Event()
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=f"sub-{port}-{id(self)}",
            clean_session=not persistent,  # persistent: the broker queues while we are away
        )
        if tls:
            self.client.tls_set(**tls)

        def on_connect(client, userdata, flags, rc, props):
            client.subscribe([(t, 1) for t in topics])

        def on_subscribe(client, userdata, mid, rcs, props):
            self._subscribed.set()

        def on_message(client, userdata, msg):
            with self._cond:
                self.messages.append((msg.topic, msg.payload, bool(msg.retain)))
                self._cond.notify_all()

        self.client.on_connect = on_connect
        self.client.on_subscribe = on_subscribe
        self.client.on_message = on_message
        self.client.reconnect_delay_set(0.2, 1)
        self.client.connect_async("127.0.0.1", port)
        self.client.loop_start()
        assert self._subscribed.wait(20), "the subscriber could not subscribe"

    def wait_for(self, predicate, timeout: float = 60, what: str = "messages") -> list:
        """Wait until ``predicate(messages)`` is truthy; returns the messages."""
        end = time.monotonic() + timeout
        with self._cond:
            while not predicate(self.messages):
                left = end - time.monotonic()
                if left <= 0:
                    got = [(t, p[:120]) for t, p, _ in self.messages]
                    raise AssertionError(f"timed out waiting for {what}; got {got}")
                self._cond.wait(min(left, 0.5))
            return list(self.messages)

    def payloads(self, suffix: str) -> list[Any]:
        """Decoded JSON payloads of topics ending with ``suffix``."""
        with self._cond:
            return [json.loads(p) for t, p, _ in self.messages if t.endswith(suffix)]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def subscribe():
    """``subscribe(port, topics, **tls) -> Subscriber``; disconnected after the test."""
    made: list[Subscriber] = []

    def make(port: int, topics: list[str], persistent: bool = False, **tls: Any) -> Subscriber:
        sub = Subscriber(port, topics, persistent, **tls)
        made.append(sub)
        return sub

    yield make
    for sub in made:
        sub.close()


def make_ca(root: Path) -> dict[str, Path]:
    """A self-signed CA and a server certificate for 127.0.0.1/localhost (openssl CLI)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl CLI not installed")
    root.mkdir(parents=True, exist_ok=True)
    ca, ca_key = root / "ca.pem", root / "ca.key"
    cert, key, csr = root / "server.pem", root / "server.key", root / "server.csr"
    ext = root / "san.ext"
    ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")

    def run(*args: str) -> None:
        subprocess.run([openssl, *args], check=True, capture_output=True)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
        "/CN=edgeasd test CA", "-keyout", str(ca_key), "-out", str(ca))  # fmt: skip
    run("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
        "-keyout", str(key), "-out", str(csr))  # fmt: skip
    run("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key),
        "-CAcreateserial", "-days", "2", "-extfile", str(ext), "-out", str(cert))  # fmt: skip
    return {"ca": ca, "cert": cert, "key": key}
