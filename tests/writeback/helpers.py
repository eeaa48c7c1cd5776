"""Writeback test helpers: accounts of both CRMs in the store, score rows, configs, clients, CRM read-backs."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, insert, select

from connectors.credentials import Credentials
from connectors.hubspot.client import HubSpotClient
from connectors.salesforce.client import SalesforceClient
from core.config import AgentConfig
from core.config.runtime import LimitsConfig
from core.config.writeback import OUTPUTS
from core.records import AccountRecord
from sandbox.ids import hubspot_id, salesforce_id
from sandbox.runtime import Sandbox
from store.models import Account, ScoreHistory
from store.upsert import upsert_records
from writeback.apply import WritebackReport, apply_plan
from writeback.plan import build_plan
from writeback.values import Canonical, ScoreRow, canonical, output_values

SF_FIELDS = {
    "score": "Health_Score__c", "band": "Health_Band__c", "trend": "Health_Trend__c", "delta": "Health_Delta__c",
    "drivers": "Health_Drivers__c", "coverage": "Health_Coverage__c",
    "relationship_capital": "Relationship_Capital__c", "thread_count": "Thread_Count__c",
    "low_confidence": "Health_Low_Confidence__c", "single_threaded": "Single_Threaded__c",
    "lonely_client": "Lonely_Client__c", "champion_gone": "Champion_Gone__c",
    "expansion_signal": "Expansion_Signal__c", "scored_at": "Health_Scored_At__c",
}
HS_FIELDS = {output: "health_" + output if not output.startswith("health") else output for output in SF_FIELDS}
NOW = datetime(2026, 11, 1, 6, 0, tzinfo=UTC)
BANDS = ((70.0, "green"), (40.0, "yellow"), (0.0, "red"))


def band_of(score: float) -> str:
    return next(name for floor, name in BANDS if score >= floor)


def make_config(**writeback: Any) -> AgentConfig:
    """A configuration mapping every output in both CRMs, with two task rules, overridable per test."""
    base: dict[str, Any] = {
        "salesforce": {"fields": SF_FIELDS, "fallback_owner_id": None},
        "hubspot": {"fields": HS_FIELDS},
        "tasks": {
            "rules": [
                {"name": "red_account", "when": {"band_in": ["red"]},
                 "subject": "{{ account_name }} is red ({{ score }})", "body": "Why: {{ drivers }}",
                 "due_in_days": 2, "priority": "high", "auto_close": True, "cooldown_days": 14},
                {"name": "single_threaded_renewal",
                 "when": {"flags_on": ["single_threaded"], "renewal_within_days": 120},
                 "subject": "Multithread {{ account_name }} before renewal", "associate_champion": True},
            ]
        },
    }
    base.update(writeback)
    return AgentConfig.model_validate({"version": 1, "writeback": base})


@dataclass(frozen=True)
class BookAccount:
    account_id: int  # the store's id
    crm: str
    record_id: str
    n: int  # the book's index


def seed_accounts(engine: Engine, sandbox: Sandbox) -> list[BookAccount]:
    """The book's live accounts, once as Salesforce accounts and once as HubSpot companies, in the store."""
    with sandbox.book.connect() as book:
        rows = book.execute(
            "SELECT n, name, owner_n, renewal_date FROM accounts WHERE is_deleted = 0 ORDER BY n"
        ).fetchall()
    records = []
    for n, name, owner_n, renewal in rows:
        for crm, rid, owner in (
            ("salesforce", salesforce_id("Account", n), salesforce_id("User", owner_n)),
            ("hubspot", hubspot_id("companies", n), hubspot_id("owners", owner_n)),
        ):
            records.append(AccountRecord(
                source=crm, external_id=rid, name=name, owner_external_id=owner,
                renewal_date=date.fromisoformat(renewal) if renewal else None,
            ))
    with engine.begin() as conn:
        upsert_records(conn, records)
        ids = {(s, e): i for i, s, e in conn.execute(select(Account.id, Account.source, Account.external_id))}
    by_n = {r[0]: r for r in rows}
    return [
        BookAccount(ids[(crm, rid)], crm, rid, n)
        for n in by_n
        for crm, rid in (("salesforce", salesforce_id("Account", n)), ("hubspot", hubspot_id("companies", n)))
    ]


def score_for(account: BookAccount, version: int = 0) -> dict[str, Any]:
    """A deterministic score for an account; ``version`` shifts it (a data change)."""
    score = float((account.n * 37 + version * 11) % 100) + 0.25
    return {
        "score": score, "band": band_of(score), "coverage": 0.5 + (account.n % 5) / 10,
        "trend_delta": float((account.n % 21) - 10), "direction": "up" if account.n % 3 else "down",
        "relationship_capital": float(account.n % 90), "thread_count": account.n % 6,
        "flags": {"single_threaded": {"on": account.n % 4 == 0, "reason": "one engaged contact"},
                  "lonely_client": {"on": account.n % 7 == 0, "reason": ""},
                  "champion_gone": {"on": False, "reason": ""},
                  "expansion_signal": {"on": account.n % 9 == 0, "reason": ""}},
        "drivers": f"{score:.0f}: NPS detractor (3/10); {account.n % 4} open P1 tickets; O'Brien\\ left",
        "low_confidence": account.n % 5 == 0,
    }


def write_scores(
    engine: Engine, accounts: list[BookAccount], scores: Mapping[int, dict[str, Any]], *, at: datetime = NOW
) -> str:
    """One scoring run's score_history rows (account_id -> score fields); returns the run id."""
    run_id = str(uuid.uuid4())
    rows = [
        {"run_id": run_id, "account_id": a.account_id, "scored_at": at, "as_of": at, "scorecard": "default",
         "computed_band": s["band"], "trend_days": 30, "signals": {}, "measures": [], **s}
        for a in accounts
        for s in [scores[a.account_id]]
    ]
    with engine.begin() as conn:
        conn.execute(insert(ScoreHistory), rows)
    return run_id


def scores_of(accounts: list[BookAccount], version: int = 0, changed: Mapping[int, int] | None = None) -> dict[int, dict[str, Any]]:
    """account_id -> score at ``version``; ``changed`` overrides the version of some accounts."""
    changed = changed or {}
    return {a.account_id: score_for(a, changed.get(a.account_id, version)) for a in accounts}


def limits_for(write_batch_size: int | None = None, **salesforce: Any) -> LimitsConfig:
    """Limits for tests: no real back-off sleeps, no client-side HubSpot throttling, optional small batches."""
    hubspot: dict[str, Any] = {"ten_second_limit": 100_000}
    if write_batch_size is not None:
        salesforce["write_batch_size"] = hubspot["write_batch_size"] = write_batch_size
    return LimitsConfig.model_validate({
        "http": {"backoff_base_seconds": 0, "max_attempts": 8, "max_retry_seconds": 5},
        "salesforce": salesforce,
        "hubspot": hubspot,
    })


def make_clients(sandbox: Sandbox, limits: LimitsConfig | None = None) -> dict[str, Any]:
    """A SalesforceClient and a HubSpotClient against the sandbox (real libraries, TLS for Salesforce)."""
    sandbox.apps["hubspot"].configure_limits(ten_second=100_000)  # type: ignore[attr-defined]
    return clients_for(credentials_from_env(sandbox.env()), limits or limits_for())


def clients_for(credentials: Credentials, limits: LimitsConfig) -> dict[str, Any]:
    return {
        "salesforce": SalesforceClient(credentials, limits=limits, sleep=lambda s: None, bulk_poll_seconds=0),
        "hubspot": HubSpotClient(credentials, limits=limits, sleep=lambda s: None),
    }




SF_WRITE = "/services/data/v59.0/composite/sobjects"
HS_WRITE = "/crm/v3/objects/companies/batch/update"
HS_TASKS = "/crm/v3/objects/tasks"


def write_calls(sandbox: Sandbox) -> dict[str, int]:
    return {
        "salesforce": sandbox.ledger("salesforce").count(method="PATCH", path_prefix=SF_WRITE)
        + sandbox.ledger("salesforce").count(path_prefix="/services/data/v59.0/jobs/ingest"),
        "hubspot": sandbox.ledger("hubspot").count(method="POST", path_prefix=HS_WRITE),
        "tasks": sandbox.ledger("salesforce").count(method="POST", path_prefix=SF_WRITE)
        + sum(1 for e in sandbox.ledger("hubspot").entries() if (e.method, e.path) == ("POST", HS_TASKS)),
    }


def run(
    engine: Engine, clients: dict[str, Any], accounts: list[BookAccount], scores: dict[int, dict[str, Any]],
    config: AgentConfig | None = None, *, force: bool = False, at: datetime = NOW,
) -> WritebackReport:
    """One scoring run's rows, then plan and apply against the sandbox (as the agent's run loop does)."""
    config = config or make_config()
    run_id = write_scores(engine, accounts, scores, at=at)
    plan = build_plan(engine, config, run_id=run_id, crms=["salesforce", "hubspot"], now=at)
    return apply_plan(engine, plan, clients=clients, run_id=run_id, force=force)


def read_back(sandbox: Sandbox, account: BookAccount) -> dict[str, Canonical]:
    """The account's mapped fields as the CRM holds them, canonical, keyed by output."""
    if account.crm == "salesforce":
        record = sandbox.apps["salesforce"].get_record("Account", account.record_id)  # type: ignore[attr-defined]
        return {o: canonical(OUTPUTS[o][0], record.get(f)) for o, f in SF_FIELDS.items()}
    props = sandbox.apps["hubspot"].get_record("companies", account.record_id)  # type: ignore[attr-defined]
    return {o: canonical(OUTPUTS[o][0], props.get(f)) for o, f in HS_FIELDS.items()}


def expected(account: BookAccount, score: dict[str, Any], at: datetime = NOW) -> dict[str, Canonical]:
    flags = {k: v["on"] for k, v in score["flags"].items()}
    row = ScoreRow(
        account.account_id, account.crm, account.record_id, "", None, None, at, score["score"], score["band"], None,
        score["coverage"], score["low_confidence"], score["trend_delta"], 30, score["direction"],
        score["relationship_capital"], score["thread_count"], flags, score["drivers"],
    )
    return output_values(row)




def later(days: int) -> datetime:
    return NOW + timedelta(days=days)


def chaos_config() -> AgentConfig:
    """The configuration of the fault and crash runs: every field, both task rules, no band-share guard."""
    return make_config(guard={"max_band_change_share": 1.0})


def rotating_scores(accounts: list[BookAccount], run_number: int) -> dict[int, dict[str, Any]]:
    """Scores of run ``run_number``: a quarter of the accounts (a different quarter each run) change."""
    return scores_of(accounts, changed={a.account_id: run_number for a in accounts if (a.n + run_number) % 4 == 0})


def credentials_from_env(env: Mapping[str, str]) -> Credentials:
    return Credentials(
        salesforce_instance_url=env["SALESFORCE_INSTANCE_URL"], salesforce_access_token=env["SALESFORCE_ACCESS_TOKEN"],
        hubspot_base_url=env["HUBSPOT_BASE_URL"], hubspot_access_token=env["HUBSPOT_ACCESS_TOKEN"],
        ca_bundle=env["HEALTH_AGENT_CA_BUNDLE"],
    )
