"""Whole runs of the agent on the sandbox with the real connectors, scoring and writeback (SQLite and PostgreSQL)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine, func, select

from agent.run import run_once
from agent.settings import Settings
from core.config import AgentConfig
from sandbox.runtime import Sandbox
from store.models import Run, ScoreHistory, WriteLedger
from tests.e2e.conftest import WRITEBACK_FIELDS, provision_sandbox

WRITES = {"salesforce": ("PATCH", "/services/data"), "hubspot": ("POST", "/crm/v3/objects/companies/batch/update")}


def _write_calls(sandbox: Sandbox) -> dict[str, int]:
    return {crm: sandbox.ledger(crm).count(method, prefix) for crm, (method, prefix) in WRITES.items()}


def test_full_run_writes_every_score_then_a_second_run_writes_nothing(
    store_engine: Engine, sandbox: Sandbox, e2e_config: AgentConfig, settings: Settings
) -> None:
    provision_sandbox(e2e_config, settings, sandbox)
    first = run_once(e2e_config, settings, engine=store_engine, trigger="cli")
    assert first.status == "succeeded", first.errors
    assert first.scoring is not None and first.writeback is not None
    accounts = {crm: first.writeback.records_by_crm[crm] for crm in ("salesforce", "hubspot")}
    assert accounts["salesforce"] > 0 and accounts["hubspot"] > 0
    assert first.scoring.accounts == accounts["salesforce"] + accounts["hubspot"]
    with store_engine.connect() as conn:
        written = conn.execute(
            select(WriteLedger.field, func.count()).where(WriteLedger.run_id == first.run_id,
                                                          WriteLedger.outcome == "written").group_by(WriteLedger.field)
        ).all()
    by_field = dict(written)
    assert first.writeback.fields_written == first.writeback.planned_changes == sum(by_field.values())
    # Every scored account got its score and band (a flag or a driver text may be empty and left unwritten).
    for crm, fields in WRITEBACK_FIELDS.items():
        assert (by_field[fields["score"]], by_field[fields["band"]]) == (accounts[crm], accounts[crm])
    assert first.writeback.failures == []
    # Floor: ceil(n/200) Salesforce composite calls, ceil(n/100) HubSpot batch updates.
    assert _write_calls(sandbox) == {
        "salesforce": -(-accounts["salesforce"] // 200), "hubspot": -(-accounts["hubspot"] // 100),
    }
    assert {s.source for s in first.streams} >= {"salesforce", "hubspot", "nps", "intent", "usage", "billing"}
    assert first.failing_streams() == []
    assert first.html_path is not None and Path(first.html_path).exists()

    for name in ("salesforce", "hubspot"):
        sandbox.ledger(name).clear()
    second = run_once(e2e_config, settings, engine=store_engine, trigger="cli")
    assert second.status == "succeeded", second.errors
    assert second.writeback is not None
    assert (second.writeback.planned_changes, second.writeback.fields_written) == (0, 0)
    assert second.writeback.tasks_created == 0  # each (rule, account) task exists once, from the first run
    assert _write_calls(sandbox) == {"salesforce": 0, "hubspot": 0}
    with store_engine.connect() as conn:
        assert conn.execute(select(Run.status)).scalars().all() == ["succeeded", "succeeded"]
        assert conn.execute(select(func.count()).select_from(ScoreHistory)).scalar() == 2 * first.scoring.accounts
        assert conn.execute(
            select(func.count()).select_from(WriteLedger).where(WriteLedger.run_id == second.run_id,
                                                                WriteLedger.outcome == "written")
        ).scalar() == 0


def test_dry_run_on_flaky_apis_finishes_counts_retries_and_writes_nothing(
    sqlite_engine: Engine, sandbox: Sandbox, e2e_config: AgentConfig, settings: Settings
) -> None:
    provision_sandbox(e2e_config, settings, sandbox)
    fast = e2e_config.limits.http.model_copy(update={"backoff_base_seconds": 0.0, "max_attempts": 8})
    config = e2e_config.model_copy(update={"limits": e2e_config.limits.model_copy(update={"http": fast})})
    sandbox.set_faults("hubspot", "flaky")
    report = run_once(config, settings, engine=sqlite_engine, dry_run=True)
    assert report.status == "succeeded", report.errors
    hubspot = next(a for a in report.api if a.system == "hubspot")
    assert hubspot.retries > 0
    assert hubspot.calls == sandbox.ledger("hubspot").count()
    assert report.writeback is not None and report.writeback.dry_run
    assert report.writeback.planned_changes > 0
    assert _write_calls(sandbox) == {"salesforce": 0, "hubspot": 0}
