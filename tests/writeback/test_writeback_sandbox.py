"""Writeback end to end on the sandbox with the real client libraries, on SQLite and PostgreSQL."""

from __future__ import annotations

import math
from typing import Any

from sqlalchemy import Engine, func, select

from sandbox.runtime import Sandbox
from store.models import Account, TaskLedger, WriteLedger
from tests.writeback.helpers import (
    NOW,
    SF_FIELDS,
    BookAccount,
    expected,
    limits_for,
    make_clients,
    make_config,
    read_back,
    run,
    scores_of,
    write_calls,
    write_scores,
)
from writeback.apply import apply_plan
from writeback.plan import build_plan
from writeback.tasks import dedupe_key


def test_first_run_writes_every_field_and_second_run_writes_nothing(
    store_engine: Engine, sandbox: Sandbox, clients: dict[str, Any], accounts: list[BookAccount]
) -> None:
    scores = scores_of(accounts)
    report = run(store_engine, clients, accounts, scores)

    per_crm = len(accounts) // 2
    assert report.crms["salesforce"].records_written == per_crm
    assert report.crms["hubspot"].records_written == per_crm
    for crm_report in report.crms.values():  # a value the CRM holds already (an unticked checkbox) is not sent
        assert crm_report.fields_written + crm_report.already_current == per_crm * len(SF_FIELDS)
    assert write_calls(sandbox)["salesforce"] == math.ceil(per_crm / 200)
    assert write_calls(sandbox)["hubspot"] == math.ceil(per_crm / 100)
    for account in accounts:
        assert read_back(sandbox, account) == expected(account, scores[account.account_id])
    tasks_first = report.tasks_created
    assert tasks_first > 0

    for name in ("salesforce", "hubspot"):
        sandbox.ledger(name).clear()
    second = run(store_engine, clients, accounts, scores)
    assert write_calls(sandbox) == {"salesforce": 0, "hubspot": 0, "tasks": 0}
    assert second.fields_written == 0
    assert second.tasks_created == 0
    with store_engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(TaskLedger)) == tasks_first
        assert conn.scalar(select(func.count()).select_from(WriteLedger)) == per_crm * 2 * len(SF_FIELDS)


def test_changed_accounts_are_written_in_the_floor_number_of_calls(
    store_engine: Engine, sandbox: Sandbox, accounts: list[BookAccount]
) -> None:
    from writeback.provision import provision

    clients = make_clients(sandbox, limits_for(write_batch_size=10))
    config = make_config(tasks={"enabled": False})  # task closes are composite PATCHes too: count fields only
    assert provision(config, clients, apply=True).ok
    run(store_engine, clients, accounts, scores_of(accounts), config)
    for name in ("salesforce", "hubspot"):
        sandbox.ledger(name).clear()

    changed_sf = [a for a in accounts if a.crm == "salesforce"][:23]
    changed_hs = [a for a in accounts if a.crm == "hubspot"][-23:]
    changed = {a.account_id: 1 for a in changed_sf + changed_hs}
    report = run(store_engine, clients, accounts, scores_of(accounts, changed=changed), config)

    assert report.crms["salesforce"].records_written == 23
    assert report.crms["hubspot"].records_written == 23
    calls = write_calls(sandbox)
    assert calls["salesforce"] == math.ceil(23 / 10)
    assert calls["hubspot"] == math.ceil(23 / 10)


def test_tasks_carry_owner_due_date_priority_and_association(
    store_engine: Engine, sandbox: Sandbox, clients: dict[str, Any], accounts: list[BookAccount]
) -> None:
    scores = scores_of(accounts)
    run(store_engine, clients, accounts, scores)
    red = {a.crm: a for a in accounts if scores[a.account_id]["band"] == "red"}
    with store_engine.connect() as conn:
        owners = dict(conn.execute(select(Account.id, Account.owner_external_id)).all())
        task_ids = dict(conn.execute(select(TaskLedger.account_id, TaskLedger.task_id)
                                     .where(TaskLedger.rule == "red_account")).all())
    sf_account, hs_company = red["salesforce"], red["hubspot"]
    task = sandbox.apps["salesforce"].get_record("Task", task_ids[sf_account.account_id])  # type: ignore[attr-defined]
    assert task is not None
    assert (task["WhatId"], task["OwnerId"], task["Priority"], task["Status"], task["ActivityDate"]) == (
        sf_account.record_id, owners[sf_account.account_id], "High", "Not Started", "2026-11-03"
    )
    assert task["Subject"].endswith(f"is red ({round(scores[sf_account.account_id]['score'], 1)})")
    hs_tasks = sandbox.apps["hubspot"].tasks_for(hs_company.record_id)  # type: ignore[attr-defined]
    key = dedupe_key("red_account", "hubspot", hs_company.record_id)
    ours = [t for t in hs_tasks if key in (t.get("hs_task_body") or "")]
    assert len(ours) == 1
    assert ours[0]["hubspot_owner_id"] == owners[hs_company.account_id]
    assert ours[0]["hs_task_priority"] == "HIGH"
    assert ours[0]["hs_timestamp"].startswith("2026-11-03T00:00:00")


def test_dry_run_reads_but_writes_nothing(
    store_engine: Engine, sandbox: Sandbox, clients: dict[str, Any], accounts: list[BookAccount]
) -> None:
    run_id = write_scores(store_engine, accounts, scores_of(accounts))
    plan = build_plan(store_engine, make_config(), run_id=run_id, crms=["salesforce", "hubspot"], now=NOW)
    report = apply_plan(store_engine, plan, clients=clients, run_id=run_id, dry_run=True)
    assert report.dry_run and report.records_written == len(accounts)
    assert write_calls(sandbox) == {"salesforce": 0, "hubspot": 0, "tasks": 0}
    with store_engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(WriteLedger)) == 0
        assert conn.scalar(select(func.count()).select_from(TaskLedger)) == 0
