"""``health-agent provision`` and ``health-agent plan`` against the sandbox and the store."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from agent.commands import plan as plan_command
from agent.commands import provision as provision_command
from agent.context import CommandContext
from agent.settings import Settings
from core.config import AgentConfig
from core.config.loader import load_config
from sandbox.runtime import Sandbox
from tests.writeback.helpers import SF_FIELDS, BookAccount, make_config, scores_of, write_scores

REPO = Path(__file__).resolve().parents[2]


def context(sandbox: Sandbox, config: AgentConfig, engine: Engine | None = None) -> CommandContext:
    env = sandbox.env()
    settings = Settings(
        salesforce_instance_url=env["SALESFORCE_INSTANCE_URL"], salesforce_access_token=env["SALESFORCE_ACCESS_TOKEN"],
        hubspot_base_url=env["HUBSPOT_BASE_URL"], hubspot_access_token=env["HUBSPOT_ACCESS_TOKEN"],
        ca_bundle=Path(env["HEALTH_AGENT_CA_BUNDLE"]),
    )
    ctx = CommandContext(settings=settings, config_path=REPO / "config" / "sandbox.yaml", database_url="", as_json=True)
    ctx.__dict__["config"] = config  # the cached properties, filled in
    if engine is not None:
        ctx.__dict__["engine"] = engine
    return ctx


def tooling_and_property_creates(sandbox: Sandbox) -> int:
    sf = sandbox.ledger("salesforce").count(method="POST", path_prefix="/services/data/v59.0/tooling/sobjects")
    hs = sandbox.ledger("hubspot").count(method="POST", path_prefix="/crm/v3/properties/companies")
    return sf + hs


def test_provision_reports_then_creates_every_field_once(
    sandbox: Sandbox, capsys: pytest.CaptureFixture[str]
) -> None:
    config = load_config(REPO / "config" / "sandbox.yaml")
    fields = len(config.writeback.salesforce.fields) + len(config.writeback.hubspot.fields)

    assert provision_command.run(context(sandbox, config), apply=False) == 1
    report = json.loads(capsys.readouterr().out)
    assert [f["status"] for f in report["fields"]] == ["missing"] * fields
    assert report["group"] == "missing"
    assert "<fullName>Health_Score__c</fullName>" in report["metadata_to_deploy"]
    assert tooling_and_property_creates(sandbox) == 0

    assert provision_command.run(context(sandbox, config), apply=True) == 0
    report = json.loads(capsys.readouterr().out)
    assert [f["status"] for f in report["fields"]] == ["created"] * fields
    assert report["group"] == "created"
    assert tooling_and_property_creates(sandbox) == fields + 1  # the fields, and the HubSpot property group

    assert provision_command.run(context(sandbox, config), apply=True) == 0
    report = json.loads(capsys.readouterr().out)
    assert [f["status"] for f in report["fields"]] == ["ok"] * fields
    assert report["group"] == "ok"
    assert tooling_and_property_creates(sandbox) == fields + 1


def _with_sources(config: AgentConfig, **writeback: Any) -> AgentConfig:
    data = config.model_dump()
    data["sources"]["salesforce"]["enabled"] = data["sources"]["hubspot"]["enabled"] = True
    data["writeback"].update(writeback)
    return AgentConfig.model_validate(data)


def test_plan_prints_the_changes_and_respects_the_guard(
    store_engine: Engine, sandbox: Sandbox, accounts: list[BookAccount], capsys: pytest.CaptureFixture[str]
) -> None:
    config = _with_sources(make_config())
    write_scores(store_engine, accounts, scores_of(accounts))
    assert plan_command.run(context(sandbox, config, store_engine)) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["records_to_write"] == len(accounts)
    assert plan["fields_to_write"] == len(accounts) * len(SF_FIELDS)
    assert len(plan["changes"]) == len(accounts) * len(SF_FIELDS)
    assert sandbox.ledger("salesforce").count() == 0  # planning never calls a CRM

    guarded = _with_sources(make_config(), guard={"max_records": 10})
    assert plan_command.run(context(sandbox, guarded, store_engine)) == 1
    stopped = json.loads(capsys.readouterr().out)
    assert stopped["guard"]["stopped"] and stopped["changes"] == []
    assert plan_command.run(context(sandbox, guarded, store_engine), force=True) == 0
    assert len(json.loads(capsys.readouterr().out)["changes"]) == len(accounts) * len(SF_FIELDS)
