"""A real Prometheus server (Debian's ``prometheus``) scrapes the agent's ``/metrics``."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.parse
import urllib.request

import pytest

from edgeasd.agent.alerts.detector import make_event
from edgeasd.config.fleet import MetricsConfig
from edgeasd.fleet.metrics import Metrics

from .conftest import free_port

PROMETHEUS = shutil.which("prometheus")


def _query(port: int, expr: str) -> list[dict]:
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=5) as r:
        body = json.loads(r.read())
    assert body["status"] == "success", body
    return body["data"]["result"]


@pytest.mark.skipif(
    PROMETHEUS is None, reason="prometheus not installed (apt-get install prometheus)"
)
def test_prometheus_scrapes_the_endpoint(tmp_path) -> None:
    agent_port, prom_port = free_port(), free_port()
    metrics = Metrics(
        MetricsConfig(http_port=agent_port),
        tmp_path / "edgeasd.prom",
        lambda: {"state": "running", "threshold": 3.0, "bank": {"source": 12}},
    )
    metrics.emit(make_event("alert", 1.0, score=9.0))
    metrics.emit(make_event("window", 1.0, score=9.0, decision="anomalous", embed_ms=11.0))
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n"
        "scrape_configs:\n  - job_name: edgeasd\n    static_configs:\n"
        f"      - targets: ['127.0.0.1:{agent_port}']\n"
    )
    proc = subprocess.Popen(
        [
            PROMETHEUS,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{prom_port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=open(tmp_path / "prometheus.log", "wb"),
    )
    try:
        end = time.monotonic() + 90
        result: list[dict] = []
        while time.monotonic() < end and not result:
            assert proc.poll() is None, (tmp_path / "prometheus.log").read_text()[-2000:]
            try:
                result = _query(prom_port, 'edgeasd_events_total{kind="alert"}')
            except OSError:  # not listening yet
                pass
            time.sleep(0.5)
        assert result, "no sample scraped in 90 s"
        assert float(result[0]["value"][1]) == 1.0
        assert float(_query(prom_port, 'up{job="edgeasd"}')[0]["value"][1]) == 1.0
        bank = _query(prom_port, "edgeasd_bank_references")
        assert [(r["metric"]["domain"], r["value"][1]) for r in bank] == [("source", "12")]
        assert _query(prom_port, "edgeasd_build_info")[0]["metric"]["version"]
    finally:
        proc.terminate()
        proc.wait(30)
        metrics.close()
