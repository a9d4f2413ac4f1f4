"""``edgeasd status`` shows the MQTT link (real Mosquitto) and the metrics target."""

from __future__ import annotations

import re

from e2e.harness import make_setup, write_normal

from .conftest import free_port


def test_status_shows_the_broker_connected_then_lost(broker, tmp_path):
    b = broker()
    feed = write_normal(tmp_path / "feed.wav", 60, seed=3)
    port = free_port()
    setup = make_setup(
        tmp_path / "agent",
        {"kind": "file", "path": str(feed), "realtime": True, "loop": True},
        mqtt={"enabled": True, "host": "127.0.0.1", "port": b.port, "machine": "pump-3"},
        metrics={"http_port": port},
    )
    proc = setup.start()
    try:
        setup.wait_ready(proc)
        setup.wait_for(
            lambda s: (s.get("fleet") or {}).get("mqtt", {}).get("connected"), what="mqtt"
        )
        text = setup.cli("status", check=True).stdout
        assert re.search(
            rf"^mqtt: +connected to 127\.0\.0\.1:{b.port}; 0 events queued on disk, 0 dropped$",
            text,
            re.M,
        ), text
        assert re.search(
            rf"^metrics: +\S+edgeasd\.prom and http://127\.0\.0\.1:{port}/metrics$", text, re.M
        ), text
        b.kill()
        setup.wait_for(
            lambda s: not s["fleet"]["mqtt"]["connected"], timeout=30, what="the broker lost"
        )
        text = setup.cli("status", check=True).stdout
        assert re.search(rf"^mqtt: +NOT connected to 127\.0\.0\.1:{b.port}; \d+ events", text, re.M)
    finally:
        setup.stop(proc)
