"""One contract suite over every connector and stream, on the sandbox, with the store on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from sqlalchemy import Engine, func, select, text

from connectors.base import ApiStats, Connector
from connectors.credentials import Credentials
from connectors.registry import build_connectors
from connectors.salesforce.soql import literal_list
from core.config import AgentConfig
from core.config.loader import load_config
from core.config.runtime import LimitsConfig
from core.records import DealRecord
from sandbox.faults import FaultProfile
from sandbox.ids import hubspot_id, salesforce_id
from sandbox.runtime import Sandbox
from store.db import make_engine
from store.linking import link_accounts
from store.migrate import upgrade
from store.models import RejectedRow, SyncState
from store.sync import StreamReport, pull_all, pull_stream

SANDBOX_CONFIG = Path(__file__).resolve().parents[2] / "config" / "sandbox.yaml"
FAST = {"http": {"backoff_base_seconds": 0.001, "max_attempts": 8}, "salesforce": {"bulk_threshold": 0}}


def _config(sandbox: Sandbox) -> AgentConfig:
    return load_config(SANDBOX_CONFIG, env={"SANDBOX_WAREHOUSE_URL": sandbox.warehouse.sqlite_url})


def _connectors(
    sandbox: Sandbox, *, limits: LimitsConfig | None = None, sources: dict[str, Any] | None = None,
    credentials: Credentials | None = None,
) -> tuple[list[Connector], ApiStats]:
    config = _config(sandbox)
    source_config = config.sources
    if sources:
        source_config = type(config.sources).model_validate({**config.sources.model_dump(), **sources})
    stats = ApiStats()
    creds = credentials or Credentials.from_env(sandbox.env())
    return build_connectors(source_config, limits or LimitsConfig(**FAST), creds, stats), stats


def _by_stream(reports: list[StreamReport]) -> dict[str, StreamReport]:
    return {f"{r.source}/{r.stream}": r for r in reports}


STREAMS = [
    "salesforce/accounts", "salesforce/contacts", "salesforce/users", "salesforce/opportunities", "salesforce/cases",
    "salesforce/tasks", "salesforce/events", "hubspot/companies", "hubspot/contacts", "hubspot/deals",
    "hubspot/tickets", "hubspot/owners", "hubspot/calls", "hubspot/emails", "hubspot/meetings", "hubspot/notes",
    "nps/responses", "intent/signals", "usage/usage", "billing/billing",
]  # fmt: skip


def test_every_configured_stream_is_covered(sandbox: Sandbox) -> None:
    connectors, _ = _connectors(sandbox)
    assert sorted(f"{c.name}/{s.name}" for c in connectors for s in c.streams()) == sorted(STREAMS)


@pytest.fixture
def sqlite_engine(tmp_path: Path):
    engine = make_engine(f"sqlite:///{tmp_path / 'contract.db'}")
    upgrade(engine)
    yield engine
    engine.dispose()


@pytest.mark.parametrize("key", STREAMS)
def test_stream_returns_records_with_primary_keys_and_a_cursor_that_only_moves_forward(
    sandbox: Sandbox, sqlite_engine: Engine, key: str
) -> None:
    source, name = key.split("/")
    connectors, _ = _connectors(sandbox)
    connector = next(c for c in connectors if c.name == source)
    stream = next(s for s in connector.streams() if s.name == name)
    connector.check()
    records = list(stream.read(None))
    assert records, f"{key} returned nothing"
    assert all(getattr(r, "external_id", None) for r in records)
    assert not [r for r in records if not hasattr(r, "entity")], "no record of the sandbox is rejected"
    first = pull_stream(sqlite_engine, connector, stream, run_id="r1", limits=LimitsConfig(**FAST))
    assert first.error is None
    assert first.read == len(records)
    second = pull_stream(sqlite_engine, connector, stream, run_id="r2", limits=LimitsConfig(**FAST))
    assert second.error is None
    assert second.records == 0
    if first.cursor_after is not None:
        assert second.cursor_after is not None
        assert second.cursor_after >= first.cursor_after


def _row_counts(engine: Engine) -> dict[str, int]:
    tables = ("accounts", "contacts", "users", "activities", "deals", "tickets", "survey_responses",
              "intent_signals", "usage_metrics", "invoices")
    with engine.connect() as conn:
        return {t: conn.execute(text(f"SELECT COUNT(*) FROM {t}")).scalar_one() for t in tables}


def test_full_then_incremental_makes_the_minimum_calls_and_changes_nothing(
    sandbox: Sandbox, store_engine: Engine
) -> None:
    connectors, stats = _connectors(sandbox)
    first = _by_stream(pull_all(store_engine, connectors, run_id="full", limits=LimitsConfig(**FAST)))
    assert [k for k, r in first.items() if r.error] == []
    counts = _row_counts(store_engine)
    assert counts["accounts"] == 120  # 60 from each CRM
    with store_engine.connect() as conn:
        synced_before = conn.execute(select(func.max(text("synced_at"))).select_from(text("accounts"))).scalar_one()

    second = _by_stream(pull_all(store_engine, connectors, run_id="incr", limits=LimitsConfig(**FAST)))
    assert [k for k, r in second.items() if r.error] == []
    assert {k: r.records for k, r in second.items() if r.records} == {}
    assert _row_counts(store_engine) == counts
    with store_engine.connect() as conn:
        assert conn.execute(select(func.max(text("synced_at"))).select_from(text("accounts"))).scalar_one() \
            == synced_before
    # One query per Salesforce stream; opportunities add one paged contact-role query (filtered by the
    # opportunity's SystemModstamp), on the backfill and on the incremental run alike.
    assert first["salesforce/opportunities"].api_calls == 2
    sf_calls = {k: r.api_calls for k, r in second.items() if k.startswith("salesforce/")}
    assert all(calls == 1 for k, calls in sf_calls.items() if k != "salesforce/opportunities"), sf_calls
    assert sf_calls["salesforce/opportunities"] == 2
    # HubSpot: one search per object plus one association read per associated type (of the records that share
    # the cursor's timestamp); the archived lists and the owners were listed by the first run and are not
    # listed again within archived_sweep_hours and owners_refresh_hours, and the report says so.
    hs_calls = {k: r.api_calls for k, r in second.items() if k.startswith("hubspot/")}
    assert hs_calls == {"hubspot/companies": 1, "hubspot/contacts": 2, "hubspot/deals": 3, "hubspot/tickets": 2,
                        "hubspot/owners": 0, "hubspot/calls": 3, "hubspot/emails": 3, "hubspot/meetings": 3,
                        "hubspot/notes": 3}
    skipped = [k for k, r in second.items() if any(n.startswith("archived sweep skipped") for n in r.notes)]
    assert skipped == ["hubspot/companies", "hubspot/contacts", "hubspot/deals", "hubspot/tickets"]
    assert [n.split(":")[0] for n in second["hubspot/owners"].notes] == ["owners refresh skipped"]
    assert all(second[k].pages <= first[k].pages for k in second)
    assert stats.snapshot("hubspot").rate_limited == 0


def test_after_17_records_change_the_next_run_pulls_exactly_those(sandbox: Sandbox, store_engine: Engine) -> None:
    connectors, _ = _connectors(sandbox)
    pull_all(store_engine, connectors, run_id="full", limits=LimitsConfig(**FAST))
    account_ids = [salesforce_id("Account", n) for n in range(1, 18)]
    company_ids = [hubspot_id("companies", n) for n in range(1, 18)]
    sandbox.apps["salesforce"].touch("Account", account_ids)  # type: ignore[attr-defined]
    sandbox.apps["hubspot"].touch("companies", company_ids, industry="Retail")  # type: ignore[attr-defined]
    second = _by_stream(pull_all(store_engine, connectors, run_id="incr", limits=LimitsConfig(**FAST)))
    assert second["salesforce/accounts"].records == 17
    assert second["hubspot/companies"].records == 17
    assert {k: r.records for k, r in second.items() if r.records} == {
        "salesforce/accounts": 17, "hubspot/companies": 17,
    }
    with store_engine.connect() as conn:
        retail = conn.execute(text(
            "SELECT COUNT(*) FROM accounts WHERE source = 'hubspot' AND industry = 'Retail' AND external_id IN "
            f"({', '.join(repr(i) for i in company_ids)})"
        )).scalar_one()
    assert retail == 17


def test_a_record_modified_at_the_cursor_timestamp_is_not_missed(
    sandbox: Sandbox, sqlite_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = sandbox.apps["salesforce"]
    frozen = datetime(2026, 11, 20, 12, 0, 0, tzinfo=UTC)
    monkeypatch.setattr(app.store, "clock", lambda: frozen)  # type: ignore[attr-defined]
    connectors, _ = _connectors(sandbox, limits=LimitsConfig(**FAST, cursor_lag_seconds=0))
    connector = next(c for c in connectors if c.name == "salesforce")
    stream = next(s for s in connector.streams() if s.name == "accounts")
    limits = LimitsConfig(**FAST, cursor_lag_seconds=0)
    app.touch("Account", [salesforce_id("Account", 1)])  # type: ignore[attr-defined]
    first = pull_stream(sqlite_engine, connector, stream, run_id="r1", limits=limits)
    assert first.cursor_after == frozen
    app.touch("Account", [salesforce_id("Account", 2)], Name="Same Second Ltd")  # type: ignore[attr-defined]
    second = pull_stream(sqlite_engine, connector, stream, run_id="r2", limits=limits)
    assert second.records == 1
    with sqlite_engine.connect() as conn:
        name = conn.execute(text("SELECT name FROM accounts WHERE external_id = :i"),
                            {"i": salesforce_id("Account", 2)}).scalar_one()
    assert name == "Same Second Ltd"


def test_a_full_pull_completes_under_429s_5xx_and_a_token_expiry(sandbox: Sandbox, store_engine: Engine) -> None:
    clean, _ = _connectors(sandbox)
    expected_engine = store_engine
    tokens = sandbox.tokens
    credentials = Credentials.from_env({
        **sandbox.env(), "SALESFORCE_ACCESS_TOKEN": "",
    }).model_copy(update={
        "salesforce_consumer_key": tokens.salesforce_client_id,
        "salesforce_client_secret": SecretStr(tokens.salesforce_client_secret),
    })
    sources = {"salesforce": {**_config(sandbox).sources.salesforce.model_dump(), "auth": "client_credentials"}}
    flaky = FaultProfile(rate_429=0.10, rate_5xx=0.05, token_expiry_after=5, seed=3)
    sandbox.set_faults("salesforce", flaky)
    sandbox.set_faults("hubspot", FaultProfile(rate_429=0.10, rate_5xx=0.05, seed=3))
    connectors, stats = _connectors(sandbox, sources=sources, credentials=credentials)
    reports = pull_all(expected_engine, connectors, run_id="faults", limits=LimitsConfig(**FAST))
    assert [(r.source, r.stream, r.error) for r in reports if r.error] == []
    retries = {name: stats.snapshot(name).retries for name in ("salesforce", "hubspot")}
    assert retries["salesforce"] > 0
    assert retries["hubspot"] > 0
    assert sum(r.retries for r in reports) == sum(stats.snapshot(s).retries for s in stats.systems())
    assert connectors[0].client.token.renewals >= 1  # type: ignore[attr-defined]
    counts = _row_counts(expected_engine)
    sandbox.set_faults("salesforce", FaultProfile())
    sandbox.set_faults("hubspot", FaultProfile())
    clean_engine = make_engine("sqlite://")
    upgrade(clean_engine)
    pull_all(clean_engine, clean, run_id="clean", limits=LimitsConfig(**FAST))
    assert counts == _row_counts(clean_engine)


def test_a_misconfigured_stream_fails_alone_with_a_clear_error(sandbox: Sandbox, sqlite_engine: Engine) -> None:
    base = _config(sandbox).sources
    sf = base.salesforce.model_dump()
    sf["streams"]["accounts"]["extra_fields"] = {"churn_risk": "Churn_Risk__c"}
    hs = base.hubspot.model_dump()
    hs["streams"]["tickets"] = {"object": "widgets"}
    connectors, _ = _connectors(sandbox, sources={"salesforce": sf, "hubspot": hs})
    reports = _by_stream(pull_all(sqlite_engine, connectors, run_id="r", limits=LimitsConfig(**FAST)))
    failed = {k: r.error for k, r in reports.items() if r.error}
    assert set(failed) == {"salesforce/accounts", "hubspot/tickets"}
    assert "Churn_Risk__c" in (failed["salesforce/accounts"] or "")
    assert "widgets" in (failed["hubspot/tickets"] or "")
    assert all(r.read > 0 for k, r in reports.items() if k not in failed)
    with sqlite_engine.connect() as conn:
        state = conn.execute(select(SyncState.cursor, SyncState.last_error).where(
            SyncState.source == "salesforce", SyncState.stream == "accounts")).one()
    assert state.cursor is None
    assert "Churn_Risk__c" in state.last_error


def test_bad_records_are_skipped_with_reasons_and_the_rest_land(sandbox: Sandbox, sqlite_engine: Engine) -> None:
    hubspot = sandbox.apps["hubspot"]
    bad = {hubspot_id("companies", 1): {"name": "x" * 100_000}, hubspot_id("companies", 2): {"numberofemployees": "lots"}}
    for company_id, props in bad.items():
        hubspot.touch("companies", [company_id], **props)  # type: ignore[attr-defined]
    connectors, _ = _connectors(sandbox, sources={"salesforce": {"enabled": False}})
    connector = next(c for c in connectors if c.name == "hubspot")
    stream = next(s for s in connector.streams() if s.name == "companies")
    report = pull_stream(sqlite_engine, connector, stream, run_id="bad", limits=LimitsConfig(**FAST))
    assert report.error is None
    assert (report.read, report.rejected) == (58, 2)
    assert sorted(report.rejected_reasons) == sorted([
        f"{hubspot_id('companies', 1)}: properties.name: too long (100000 characters)",
        f"{hubspot_id('companies', 2)}: properties.numberofemployees: not a whole number ('lots')",
    ])
    with sqlite_engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(RejectedRow)).scalar_one() == 2


def test_linking_matches_surveys_intent_usage_and_invoices_to_accounts(sandbox: Sandbox, sqlite_engine: Engine) -> None:
    connectors, _ = _connectors(sandbox)
    pull_all(sqlite_engine, connectors, run_id="r", limits=LimitsConfig(**FAST))
    counts = link_accounts(sqlite_engine)
    assert counts == link_accounts(sqlite_engine)  # rebuilding gives the same links
    for entity in ("survey_responses", "intent_signals", "usage_metrics", "invoices"):
        assert counts[entity] > 0
        assert counts[entity] + counts[f"{entity}_unmatched"] == _row_counts(sqlite_engine)[entity]


def test_check_remote_fields_names_each_missing_field_with_its_object(sandbox: Sandbox) -> None:
    from agent.settings import Settings
    from agent.wiring import check_remote_fields

    env = sandbox.env()
    settings = Settings(
        _env_file=None,
        salesforce_instance_url=env["SALESFORCE_INSTANCE_URL"],
        salesforce_access_token=env["SALESFORCE_ACCESS_TOKEN"],
        hubspot_base_url=env["HUBSPOT_BASE_URL"],
        hubspot_access_token=env["HUBSPOT_ACCESS_TOKEN"],
        ca_bundle=env["HEALTH_AGENT_CA_BUNDLE"],
    )
    config = _config(sandbox)
    assert check_remote_fields(settings, config) == []
    sources = config.sources.model_dump()
    sources["salesforce"]["streams"]["accounts"]["extra_fields"] = {"risk": "Churn_Risk__c", "boss": "Owner.Email"}
    sources["salesforce"]["streams"]["cases"] = {"fields": {"subject": "Topic"}}
    sources["hubspot"]["streams"]["companies"]["fields"]["tier"] = "segment"
    broken = config.model_copy(update={"sources": type(config.sources).model_validate(sources)})
    assert check_remote_fields(settings, broken) == [
        "salesforce: Account.Churn_Risk__c: no such field (stream accounts)",
        "salesforce: Case.Topic: no such field (stream cases)",
        "hubspot: companies.segment: no such property (stream companies)",
    ]


def test_a_backfill_above_the_bulk_threshold_goes_through_bulk_api_2(sandbox: Sandbox, sqlite_engine: Engine) -> None:
    limits = LimitsConfig(**{**FAST, "salesforce": {"bulk_threshold": 50}})
    connectors, _ = _connectors(sandbox, limits=limits, sources={"hubspot": {"enabled": False}})
    connector = next(c for c in connectors if c.name == "salesforce")
    accounts = next(s for s in connector.streams() if s.name == "accounts")
    bulk = list(accounts.read(None))
    assert accounts.backfill_mode == "bulk"  # type: ignore[attr-defined]
    rest = list(next(s for s in _connectors(sandbox)[0][0].streams() if s.name == "accounts").read(None))
    assert [r.model_dump() for r in bulk] == [r.model_dump() for r in rest]
    assert sandbox.ledger("salesforce").count(path_prefix="/services/data/v59.0/jobs/query") >= 2


def test_writes_through_the_client_bulk_ingest_composite_and_tooling(sandbox: Sandbox) -> None:
    connectors, _ = _connectors(sandbox, sources={"hubspot": {"enabled": False}})
    client = connectors[0].client  # type: ignore[attr-defined]
    field_id = client.tooling_create_custom_field("Account", "Health_Score__c", label="Health score",
                                                  field_type="Number", length=None, precision=5, scale=1)
    assert field_id
    assert "Health_Score__c" in {f["name"] for f in client.describe("Account")["fields"]}
    ids = [salesforce_id("Account", n) for n in (1, 2)]
    results = client.composite_update([{"Id": i, "Health_Score__c": 42.5} for i in ids], sobject="Account")
    assert [r.success for r in results] == [True, True]
    outcome = client.bulk2_ingest("Account", "update", [{"Id": ids[0], "Health_Score__c": 10},
                                                        {"Id": "001bad", "Health_Score__c": 1}])
    assert (len(outcome.successful), len(outcome.failed)) == (1, 1)
    soql = f"SELECT Id, Health_Score__c FROM Account WHERE Id IN {literal_list(ids)} ORDER BY Id"
    rows = list(client.query_iter(soql))
    assert [r["Health_Score__c"] for r in rows] == [10, 42.5]
    task_id = client.create("Task", {"Subject": "Check in", "WhatId": ids[0]})
    assert task_id.startswith("00T")


def test_deal_contacts_match_the_contact_roles_on_rest_and_bulk_backfills(sandbox: Sandbox) -> None:
    def deals(bulk_threshold: int) -> tuple[dict[str, tuple[str, ...]], Any]:
        limits = LimitsConfig(**{**FAST, "salesforce": {"bulk_threshold": bulk_threshold}})
        connectors, _ = _connectors(sandbox, limits=limits, sources={"hubspot": {"enabled": False}})
        stream = next(s for s in connectors[0].streams() if s.name == "opportunities")
        records = [r for r in stream.read(None) if isinstance(r, DealRecord)]
        return {str(r.external_id): r.contact_external_ids for r in records}, connectors[0]

    rest, connector = deals(0)
    bulk, _ = deals(50)
    expected: dict[str, list[str]] = {}
    for row in connector.client.query_iter(
            "SELECT OpportunityId, ContactId FROM OpportunityContactRole ORDER BY OpportunityId, Id"):
        expected.setdefault(row["OpportunityId"], []).append(row["ContactId"])
    assert len(rest) == 207
    assert sum(1 for ids in rest.values() if ids) == len(expected)
    assert {k: list(v) for k, v in rest.items() if v} == expected
    assert bulk == rest
    bulk_jobs = sandbox.ledger("salesforce").count(method="POST", path_prefix="/services/data/v59.0/jobs/query")
    assert bulk_jobs == 2  # the deals and their contact roles
