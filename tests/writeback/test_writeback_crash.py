"""Ten runs with injected faults and two SIGKILLs of a writeback process mid-run: no task duplicated, no write lost."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from sandbox.faults import FaultProfile
from sandbox.runtime import Sandbox
from tests.writeback.helpers import (
    HS_TASKS,
    SF_WRITE,
    BookAccount,
    chaos_config,
    expected,
    later,
    read_back,
    rotating_scores,
    run,
    write_scores,
)
from writeback.tasks import KEY_LABEL

ROOT = Path(__file__).resolve().parents[2]
FAULTS = FaultProfile(rate_429=0.10, rate_5xx=0.05, write_failure_rate=0.05)


def _kill_when(sandbox: Sandbox, engine: Engine, run_id: str, at: str, crm: str, method: str, path: str,
               calls: int) -> bool:
    """Run writeback in a subprocess and SIGKILL it once ``crm`` has received ``calls`` such requests.

    Returns True when the kill landed before the process finished on its own.
    """
    env = {**os.environ, **sandbox.env(), "PYTHONPATH": str(ROOT)}
    url = engine.url.render_as_string(hide_password=False)
    for name in ("salesforce", "hubspot"):
        sandbox.set_faults(name, FaultProfile(latency_ms=25))  # slow enough to be caught mid-way
        sandbox.ledger(name).clear()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.writeback.worker", url, run_id, at, "5"], cwd=ROOT, env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            seen = sum(1 for e in sandbox.ledger(crm).entries() if e.method == method and e.path == path)
            if seen >= calls:
                os.kill(proc.pid, signal.SIGKILL)
                break
            time.sleep(0.002)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    return proc.returncode == -signal.SIGKILL


def _agent_tasks(sandbox: Sandbox) -> Counter[str]:
    """dedupe key -> how many tasks in both CRMs carry it (open or not)."""
    keys: Counter[str] = Counter()
    sf = sandbox.apps["salesforce"].store.conn.execute(  # type: ignore[attr-defined]
        "SELECT Description FROM sf_Task WHERE IsDeleted = 0 AND Description LIKE ?", (f"%{KEY_LABEL}%",)
    ).fetchall()
    bodies = [r[0] for r in sf]
    hs_store = sandbox.apps["hubspot"].store  # type: ignore[attr-defined]
    with hs_store.lock:
        rows = hs_store.db.execute(
            "SELECT json_extract(props, '$.hs_task_body') FROM o_tasks WHERE archived = 0"
        ).fetchall()
    bodies.extend(r[0] or "" for r in rows)
    for body in bodies:
        if KEY_LABEL in body:
            keys[body.split(KEY_LABEL, 1)[1].strip()] += 1
    return keys


def test_ten_runs_with_faults_and_kills_duplicate_no_task_and_lose_no_write(
    store_engine: Engine, sandbox: Sandbox, clients: dict[str, Any], accounts: list[BookAccount]
) -> None:
    config = chaos_config()
    kills = 0
    scores: dict[int, dict[str, Any]] = {}
    for number in range(10):
        scores = rotating_scores(accounts, number)
        at = later(number)
        if number == 3:  # killed during the Salesforce field writes
            run_id = write_scores(store_engine, accounts, scores, at=at)
            kills += _kill_when(sandbox, store_engine, run_id, at.isoformat(), "salesforce", "PATCH", SF_WRITE, 3)
            continue
        if number == 6:  # killed between HubSpot task creates and their ledger commit
            run_id = write_scores(store_engine, accounts, scores, at=at)
            kills += _kill_when(sandbox, store_engine, run_id, at.isoformat(), "hubspot", "POST", HS_TASKS, 2)
            continue
        for name in ("salesforce", "hubspot"):
            sandbox.set_faults(name, FaultProfile(**{**FAULTS.__dict__, "seed": number}))
        run(store_engine, clients, accounts, scores, config, at=at)
        assert max(_agent_tasks(sandbox).values(), default=0) == 1
    assert kills == 2

    for name in ("salesforce", "hubspot"):
        sandbox.set_faults(name, FaultProfile())
    final = run(store_engine, clients, accounts, scores, config, at=later(10))
    assert final.failed_records == 0
    for account in accounts:  # scored_at is written only along with a change: it holds an earlier run's time
        now_there = read_back(sandbox, account)
        wanted = expected(account, scores[account.account_id])
        assert {k: v for k, v in now_there.items() if k != "scored_at"} == {
            k: v for k, v in wanted.items() if k != "scored_at"
        }
    counts = _agent_tasks(sandbox)
    assert counts and max(counts.values()) == 1
