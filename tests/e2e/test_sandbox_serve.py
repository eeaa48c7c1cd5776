"""``health-agent sandbox serve`` prints the environment; a plain ``run --once`` in that environment talks to it."""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "agent.cli"]


@pytest.mark.slow
def test_exports_from_sandbox_serve_point_run_once_at_the_sandbox(tmp_path: Path) -> None:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("SALESFORCE_", "HUBSPOT_", "NPS_", "INTENT_", "HEALTH_"))}
    serve = subprocess.Popen([*CLI, "sandbox", "serve", "--accounts", "20"], cwd=tmp_path, env=base,
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert serve.stdout is not None
        lines = []
        for line in serve.stdout:
            lines.append(line)
            if line.startswith("# Ctrl-C stops."):
                break
        exports = dict(
            shlex.split(m.group(1))[0].split("=", 1)
            for m in (re.match(r"^export (.+)$", line.strip()) for line in lines) if m
        )
        assert set(exports) >= {"SALESFORCE_INSTANCE_URL", "SALESFORCE_ACCESS_TOKEN", "HUBSPOT_BASE_URL",
                                "HUBSPOT_ACCESS_TOKEN", "NPS_BASE_URL", "NPS_API_KEY", "INTENT_BASE_URL",
                                "INTENT_API_KEY", "HEALTH_AGENT_CA_BUNDLE", "SANDBOX_WAREHOUSE_URL"}
        assert Path(exports["HEALTH_AGENT_CA_BUNDLE"]).is_file()
        env = {**base, **exports, "HEALTH_DATABASE_URL": f"sqlite:///{tmp_path / 'store.db'}", "LOG_FORMAT": "json"}
        config = str(ROOT / "config" / "sandbox.yaml")
        provision = subprocess.run([*CLI, "provision", "--apply", "--config", config], cwd=tmp_path, env=env,
                                   capture_output=True, text=True, timeout=120, check=False)
        assert provision.returncode == 0, provision.stderr[-2000:]
        run = subprocess.run([*CLI, "run", "--once", "--config", config], cwd=tmp_path, env=env,
                             capture_output=True, text=True, timeout=180, check=False)
        assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
        assert re.search(r"\(cli\): succeeded", run.stdout)
        assert re.search(r"Scored \d+ accounts", run.stdout)
    finally:
        serve.send_signal(signal.SIGINT)
        assert serve.wait(timeout=30) == 0
