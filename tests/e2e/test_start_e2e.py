"""``health-agent start`` against the sandbox: a scheduled run, live /readyz and /metrics, SIGTERM -> exit 0."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select

from agent.settings import Settings
from core.config.loader import load_config
from sandbox.runtime import Sandbox
from store.db import make_engine
from store.migrate import upgrade
from store.models import Lease, Run
from tests.e2e.conftest import provision_sandbox

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:  # noqa: S310 - loopback
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


@pytest.mark.slow
def test_start_runs_on_schedule_serves_metrics_and_stops_on_sigterm(
    sandbox: Sandbox, sandbox_env: dict[str, str], tmp_path: Path
) -> None:
    provision_sandbox(load_config(ROOT / "config" / "sandbox.yaml"), Settings(), sandbox)
    port = _free_port()
    config = tmp_path / "agent.yaml"
    yaml_text = (ROOT / "config" / "sandbox.yaml").read_text(encoding="utf-8")
    yaml_text = yaml_text.replace('observability:\n  listen: ""', f'observability:\n  listen: "127.0.0.1:{port}"')
    config.write_text(yaml_text.replace("report_dir: ./data/reports", f"report_dir: {tmp_path / 'reports'}"))
    url = f"sqlite:///{tmp_path / 'store.db'}"
    engine = make_engine(url)
    upgrade(engine)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("SALESFORCE_", "HUBSPOT_", "HEALTH_"))},
        **sandbox.env(), "SANDBOX_WAREHOUSE_URL": sandbox.warehouse.sqlite_url, "HEALTH_DATABASE_URL": url,
        "HEALTH_AGENT_CONFIG": str(config), "LOG_FORMAT": "json",
    }
    proc = subprocess.Popen([sys.executable, "-m", "agent.cli", "start"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 90
        status = None
        while time.monotonic() < deadline and status not in ("succeeded", "partial", "failed"):
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            time.sleep(0.2)
            with engine.connect() as conn:
                status, error = conn.execute(select(Run.status, Run.error)).first() or (None, None)
        assert status == "succeeded", error
        code, body = _get(f"http://127.0.0.1:{port}/readyz")
        assert (code, json.loads(body)["ready"]) == (200, True)
        code, metrics = _get(f"http://127.0.0.1:{port}/metrics")
        samples = {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(metrics) for s in family.samples
        }
        assert samples[("health_agent_runs_total", (("status", "succeeded"),))] == 1
        assert samples[("health_agent_api_calls_total", (("system", "salesforce"),))] == sandbox.ledger("salesforce").count()
        assert samples[("health_agent_records_pulled_total", (("source", "hubspot"),))] > 0
        assert samples[("health_agent_last_success_timestamp_seconds", ())] > 0
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    with engine.connect() as conn:
        assert conn.execute(select(Lease.name)).scalars().all() == []
    logs = [json.loads(line) for line in (proc.stderr.read() if proc.stderr else "").splitlines() if line.startswith("{")]
    stream_lines = [entry for entry in logs if entry.get("stream") == "accounts" and entry.get("source") == "salesforce"]
    assert stream_lines and all(entry.get("run_id") for entry in stream_lines)
    assert not any(sandbox.tokens.hubspot_access_token in json.dumps(entry) for entry in logs)
