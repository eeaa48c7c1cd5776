"""End-to-end fixtures: the sandbox (reset per test) and the environment that points the agent at it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from agent.settings import Settings
from core.config import AgentConfig
from core.config.loader import load_config
from sandbox.runtime import Sandbox
from sandbox.testing import sandbox_fixture, sandbox_session
from store.db import make_engine
from store.migrate import upgrade

__all__ = ["sandbox_fixture", "sandbox_session"]
ROOT = Path(__file__).resolve().parents[2]

# What the e2e runs write back: a few outputs of each kind, to fields `provision` creates in the sandbox.
WRITEBACK_FIELDS = {
    "salesforce": {"score": "Health_Score__c", "band": "Health_Band__c", "drivers": "Health_Drivers__c",
                   "single_threaded": "Single_Threaded__c"},
    "hubspot": {"score": "health_score", "band": "health_band", "drivers": "health_drivers",
                "single_threaded": "single_threaded"},
}


@pytest.fixture
def sandbox_env(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    env = {**sandbox.env(), "SANDBOX_WAREHOUSE_URL": sandbox.warehouse.sqlite_url}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


@pytest.fixture
def e2e_config(sandbox_env: dict[str, str], tmp_path: Path) -> AgentConfig:
    """config/sandbox.yaml with an explicit field mapping and reports in a temporary folder."""
    config = load_config(ROOT / "config" / "sandbox.yaml")
    wb = config.writeback
    writeback = wb.model_copy(update={
        "salesforce": wb.salesforce.model_copy(update={"fields": WRITEBACK_FIELDS["salesforce"]}),
        "hubspot": wb.hubspot.model_copy(update={"fields": WRITEBACK_FIELDS["hubspot"]}),
    })
    observability = config.observability.model_copy(update={"report_dir": str(tmp_path / "reports")})
    return config.model_copy(update={"writeback": writeback, "observability": observability})


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Iterator[Engine]:
    """A migrated SQLite store, for e2e tests whose point is not the backend."""
    engine = make_engine(f"sqlite:///{tmp_path / 'store.db'}")
    upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def settings(sandbox_env: dict[str, str]) -> Settings:
    return Settings()


def provision_sandbox(config: AgentConfig, settings: Settings, sandbox: Sandbox) -> None:
    """Create the agent's fields in the sandbox CRMs (as `health-agent provision --apply` does), then clear the ledgers."""
    from agent.run import crm_clients
    from connectors.credentials import Credentials
    from connectors.registry import build_connectors
    from writeback.provision import provision

    credentials = Credentials.model_validate(settings.model_dump(include=set(Credentials.model_fields)))
    report = provision(config, crm_clients(build_connectors(config.sources, config.limits, credentials)), apply=True)
    assert report.ok, report.to_dict()
    for name in ("salesforce", "hubspot"):
        sandbox.ledger(name).clear()
