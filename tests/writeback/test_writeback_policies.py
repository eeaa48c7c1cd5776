"""Per-record failures, human edits, the blast-radius guard, task life cycle and Bulk API writes, on the sandbox."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Engine, delete, select

from sandbox.faults import FaultProfile
from sandbox.runtime import Sandbox
from store.models import TaskLedger, WriteLedger
from tests.writeback.helpers import (
    HS_FIELDS,
    SF_FIELDS,
    BookAccount,
    band_of,
    expected,
    later,
    limits_for,
    make_clients,
    make_config,
    read_back,
    run,
    scores_of,
    write_calls,
)
from writeback.ledger import recent_writes
from writeback.provision import provision
from writeback.tasks import dedupe_key


def clear_ledgers(sandbox: Sandbox) -> None:
    for name in ("salesforce", "hubspot"):
        sandbox.ledger(name).clear()


def test_per_record_write_failures_are_reported_and_land_on_the_next_run(
    store_engine: Engine, sandbox: Sandbox, clients: dict[str, Any], accounts: list[BookAccount]
) -> None:
    config = make_config(tasks={"enabled": False})
    scores = scores_of(accounts)
    for name in ("salesforce", "hubspot"):
        sandbox.set_faults(name, FaultProfile(write_failure_rate=0.05, seed=11))
    first = run(store_engine, clients, accounts, scores, config)

    failed = {crm: set(r.failures) for crm, r in first.crms.items()}
    per_crm = len(accounts) // 2
    assert failed["salesforce"] and failed["hubspot"]
    for crm, report in first.crms.items():
        assert report.records_written == per_crm - len(failed[crm])
    for account in accounts:
        landed = read_back(sandbox, account) == expected(account, scores[account.account_id])
        assert landed == (account.record_id not in failed[account.crm])
    with store_engine.connect() as conn:
        outcomes = conn.execute(select(WriteLedger.record_id, WriteLedger.outcome, WriteLedger.error)).all()
    assert {rid for rid, outcome, _ in outcomes if outcome == "failed"} == failed["salesforce"] | failed["hubspot"]
    assert all(error for _, outcome, error in outcomes if outcome == "failed")

    for name in ("salesforce", "hubspot"):
        sandbox.set_faults(name, FaultProfile())
    clear_ledgers(sandbox)
    second = run(store_engine, clients, accounts, scores, config)
    assert {crm: r.records_written for crm, r in second.crms.items()} == {c: len(f) for c, f in failed.items()}
    assert second.failed_records == 0
    assert write_calls(sandbox)["salesforce"] == 1 and write_calls(sandbox)["hubspot"] == 1
    for account in accounts:
        assert read_back(sandbox, account) == expected(account, scores[account.account_id])


def _edit_score(sandbox: Sandbox, account: BookAccount, value: float) -> None:
    if account.crm == "salesforce":
        sandbox.apps["salesforce"].set_field("Account", account.record_id, SF_FIELDS["score"], value)  # type: ignore[attr-defined]
    else:
        sandbox.apps["hubspot"].set_property("companies", account.record_id, HS_FIELDS["score"], str(value))  # type: ignore[attr-defined]


@pytest.mark.parametrize("policy", ["overwrite", "skip_and_report", "keep_and_review_task"])
def test_human_edit_policy(
    policy: str, store_engine: Engine, sandbox: Sandbox, clients: dict[str, Any], accounts: list[BookAccount]
) -> None:
    config = make_config(human_edits=policy, tasks={"enabled": policy == "keep_and_review_task"})
    run(store_engine, clients, accounts, scores_of(accounts), config)
    edited = [a for a in accounts if a.n in (2, 3)]  # two Salesforce accounts and two HubSpot companies
    for account in edited:
        _edit_score(sandbox, account, 12.5)
    changed = {a.account_id: 1 for a in accounts if a.n in (2, 3, 5)}
    new_scores = scores_of(accounts, changed=changed)
    clear_ledgers(sandbox)
    report = run(store_engine, clients, accounts, new_scores, config)

    human = [e for r in report.crms.values() for e in r.human_edits]
    assert sorted((e["record_id"], e["current"]) for e in human) == sorted((a.record_id, 12.5) for a in edited)
    for account in edited:
        now_there = read_back(sandbox, account)["score"]
        wanted = expected(account, new_scores[account.account_id])["score"]
        assert now_there == (wanted if policy == "overwrite" else 12.5)
    with store_engine.connect() as conn:
        rows = conn.execute(
            select(WriteLedger.record_id, WriteLedger.outcome, WriteLedger.previous_value)
            .where(WriteLedger.field.in_([SF_FIELDS["score"], HS_FIELDS["score"]]),
                   WriteLedger.record_id.in_([a.record_id for a in edited]))
            .order_by(WriteLedger.id)
        ).all()
        reviews = conn.execute(select(TaskLedger.rule, TaskLedger.status)).all()
    outcome = {"overwrite": "overwrote_human_edit", "skip_and_report": "skipped_human_edit",
               "keep_and_review_task": "review_task"}[policy]
    assert [(o, p) for _, o, p in rows[-4:]] == [(outcome, "12.5")] * 4
    review_count = sum(1 for rule, status in reviews if rule == "human_edit_review" and status == "open")
    assert review_count == (4 if policy == "keep_and_review_task" else 0)
    audit = recent_writes(store_engine, limit=500)
    assert any(w["previous_value"] == 12.5 and w["outcome"] == outcome for w in audit)


def test_guard_stops_a_run_that_changes_too_many_bands_until_forced(
    store_engine: Engine, sandbox: Sandbox, clients: dict[str, Any], accounts: list[BookAccount]
) -> None:
    config = make_config(tasks={"enabled": False})
    run(store_engine, clients, accounts, scores_of(accounts), config)
    shifted = scores_of(accounts)
    for score in shifted.values():
        score["score"] = (score["score"] + 40) % 100  # most accounts move band
        score["band"] = band_of(score["score"])
    clear_ledgers(sandbox)
    stopped = run(store_engine, clients, accounts, shifted, config, at=later(1))
    assert stopped.guard_stopped
    assert stopped.guard_reason is not None and "would change band" in stopped.guard_reason
    assert write_calls(sandbox) == {"salesforce": 0, "hubspot": 0, "tasks": 0}

    forced = run(store_engine, clients, accounts, shifted, config, force=True, at=later(1))
    assert not forced.guard_stopped
    assert forced.records_written == len(accounts)


def test_guard_stops_a_run_that_writes_more_records_than_allowed(
    store_engine: Engine, sandbox: Sandbox, clients: dict[str, Any], accounts: list[BookAccount]
) -> None:
    config = make_config(tasks={"enabled": False}, guard={"max_records": 50})
    report = run(store_engine, clients, accounts, scores_of(accounts), config)
    assert report.guard_stopped
    assert report.guard_reason is not None and f"{len(accounts)} records would be written" in report.guard_reason
    assert write_calls(sandbox)["salesforce"] == 0


def _crm_tasks(sandbox: Sandbox, account: BookAccount) -> list[str]:
    """Bodies of the agent's open tasks on an account in the CRM."""
    if account.crm == "salesforce":
        app = sandbox.apps["salesforce"]
        rows = app.store.conn.execute(  # type: ignore[attr-defined]
            "SELECT Description FROM sf_Task WHERE IsDeleted = 0 AND WhatId = ? AND Status != 'Completed' "
            "AND Description LIKE '%health-agent key:%'", (account.record_id,)
        ).fetchall()
        return [r[0] for r in rows]
    tasks = sandbox.apps["hubspot"].tasks_for(account.record_id)  # type: ignore[attr-defined]
    return [t["hs_task_body"] for t in tasks
            if "health-agent key:" in (t.get("hs_task_body") or "") and t.get("hs_task_status") != "COMPLETED"]


def test_tasks_are_created_once_closed_when_cleared_and_wait_out_the_cooldown(
    store_engine: Engine, sandbox: Sandbox, clients: dict[str, Any], accounts: list[BookAccount]
) -> None:
    only_red = {"rules": [{"name": "red_account", "when": {"band_in": ["red"]}, "subject": "{{ account_name }} is red",
                           "auto_close": True, "cooldown_days": 14}]}
    config = make_config(tasks=only_red)
    scores = scores_of(accounts)
    red = [a for a in accounts if scores[a.account_id]["band"] == "red"]
    first = run(store_engine, clients, accounts, scores, config)
    assert first.tasks_created == len(red)
    for account in red:
        bodies = _crm_tasks(sandbox, account)
        assert len(bodies) == 1
        assert dedupe_key("red_account", account.crm, account.record_id) in bodies[0]

    again = run(store_engine, clients, accounts, scores, config, at=later(1))
    assert again.tasks_created == 0

    # A rep completes one task; its account stays red: no new task during the cooldown, one after it.
    done = red[0]
    key = dedupe_key("red_account", done.crm, done.record_id)
    with store_engine.connect() as conn:
        task_id = conn.scalar(select(TaskLedger.task_id).where(TaskLedger.dedupe_key == key))
    assert task_id is not None
    if done.crm == "salesforce":
        sandbox.apps["salesforce"].set_field("Task", task_id, "Status", "Completed")  # type: ignore[attr-defined]
    else:
        sandbox.apps["hubspot"].set_property("tasks", task_id, "hs_task_status", "COMPLETED")  # type: ignore[attr-defined]
    seen = run(store_engine, clients, accounts, scores, config, at=later(2))
    assert seen.tasks_created == 0
    assert seen.crms[done.crm].tasks_completed_by_user == 1
    assert run(store_engine, clients, accounts, scores, config, at=later(10)).tasks_created == 0
    after = run(store_engine, clients, accounts, scores, config, at=later(17))
    assert after.tasks_created == 1
    assert len(_crm_tasks(sandbox, done)) == 1

    # Another red account turns green: its task is closed.
    cleared = red[1]
    better = dict(scores)
    better[cleared.account_id] = {**scores[cleared.account_id], "score": 90.0, "band": "green"}
    closed = run(store_engine, clients, accounts, better, config, at=later(18))
    assert closed.crms[cleared.crm].tasks_closed == 1
    assert _crm_tasks(sandbox, cleared) == []


def test_a_task_created_before_a_crash_is_found_by_its_key_not_duplicated(
    store_engine: Engine, sandbox: Sandbox, clients: dict[str, Any], accounts: list[BookAccount]
) -> None:
    config = make_config()
    scores = scores_of(accounts)
    run(store_engine, clients, accounts, scores, config)
    created = {}
    with store_engine.begin() as conn:
        for key, task_id in conn.execute(select(TaskLedger.dedupe_key, TaskLedger.task_id)):
            created[key] = task_id
        # As if the process died after the CRM create, before the ledger commit: the rows are gone.
        conn.execute(delete(TaskLedger))
    clear_ledgers(sandbox)
    report = run(store_engine, clients, accounts, scores, config, at=later(1))
    assert report.tasks_created == 0
    assert sum(r.tasks_found for r in report.crms.values()) == len(created)
    with store_engine.connect() as conn:
        again = dict(conn.execute(select(TaskLedger.dedupe_key, TaskLedger.task_id)).all())
    assert again == created


def test_bulk_api_writes_above_the_threshold_in_one_job(
    store_engine: Engine, sandbox: Sandbox, accounts: list[BookAccount]
) -> None:
    clients = make_clients(sandbox, limits_for(bulk_write_threshold=20))
    config = make_config(tasks={"enabled": False})
    assert provision(config, clients, apply=True).ok
    clear_ledgers(sandbox)
    scores = scores_of(accounts)
    report = run(store_engine, clients, accounts, scores, config)
    assert report.crms["salesforce"].bulk_jobs == 1
    assert report.crms["salesforce"].records_written == len(accounts) // 2
    assert sandbox.ledger("salesforce").count(method="POST", path_prefix="/services/data/v59.0/jobs/ingest") == 1
    assert sandbox.ledger("salesforce").count(method="PATCH", path_prefix="/services/data/v59.0/composite") == 0
    for account in accounts:
        assert read_back(sandbox, account) == expected(account, scores[account.account_id])


def test_a_crm_whose_values_cannot_be_read_is_skipped_and_the_other_is_written(
    store_engine: Engine, sandbox: Sandbox, clients: dict[str, Any], accounts: list[BookAccount]
) -> None:
    config = make_config(tasks={"enabled": False})
    sandbox.set_faults("salesforce", FaultProfile(rate_5xx=1.0, endpoints=("/services/data/v59.0/query",)))
    report = run(store_engine, clients, accounts, scores_of(accounts), config)
    assert report.crms["salesforce"].stopped is not None
    assert "current values could not be read" in report.crms["salesforce"].stopped
    assert report.crms["salesforce"].records_written == 0
    assert write_calls(sandbox)["salesforce"] == 0
    assert report.crms["hubspot"].records_written == len(accounts) // 2

    sandbox.set_faults("salesforce", FaultProfile())
    again = run(store_engine, clients, accounts, scores_of(accounts), config)
    assert again.crms["salesforce"].records_written == len(accounts) // 2
    assert again.crms["hubspot"].records_written == 0
