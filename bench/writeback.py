"""Writeback at scale on the sandbox: 100k accounts in Salesforce and 100k companies in HubSpot, a first run
that writes everything, then a run where 10% of the accounts' outputs changed.

Prints, per run and CRM: records written, write calls against the floor (ceil(n/200) composite calls or one
Bulk API 2.0 job in Salesforce above ``bulk_write_threshold``; ceil(n/100) HubSpot batch updates), all API
calls (current-value reads included), wall time, and the peak RSS of the process during the run (the sandbox
runs in this process too, so its memory is included; the writeback's own growth is shown separately, and
with ``--trace-memory`` the Python heap peak of the changed and unchanged runs).

    .venv/bin/python -m bench.writeback [--accounts 100000] [--changed 0.10] [--bulk-threshold 10000]
        [--book-cache DIR] [--database-url URL]
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a file: this folder would shadow the ``writeback`` package
    sys.path[0] = str(Path(__file__).resolve().parents[1])

import argparse
import math
import tempfile
import threading
import time
import tracemalloc
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from typing import Any

import psutil

from sandbox.faults import FaultProfile
from sandbox.runtime import Sandbox, start_sandbox
from store.db import make_engine
from store.migrate import upgrade
from tests.writeback.helpers import (
    NOW,
    clients_for,
    credentials_from_env,
    limits_for,
    make_config,
    scores_of,
    seed_accounts,
    write_scores,
)
from writeback.apply import WritebackReport, apply_plan
from writeback.plan import build_plan
from writeback.provision import provision

ANCHOR = date(2026, 11, 1)  # the tests' anchor, so a cached book of the same size is reused


@contextmanager
def peak_rss() -> Iterator[dict[str, float]]:
    """Sample this process's RSS every 20 ms; yields a dict filled with start/peak MB when the block ends."""
    proc = psutil.Process()
    out = {"start_mb": proc.memory_info().rss / 2**20, "peak_mb": 0.0}
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            out["peak_mb"] = max(out["peak_mb"], proc.memory_info().rss / 2**20)
            done.wait(0.02)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield out
    finally:
        done.set()
        thread.join()
        out["peak_mb"] = max(out["peak_mb"], proc.memory_info().rss / 2**20)


def _write_calls(sandbox: Sandbox) -> dict[str, int]:
    sf, hs = sandbox.ledger("salesforce"), sandbox.ledger("hubspot")
    return {
        "salesforce_composite": sf.count(method="PATCH", path_prefix="/services/data/v59.0/composite/sobjects"),
        "salesforce_bulk_jobs": sf.count(method="POST", path_prefix="/services/data/v59.0/jobs/ingest"),
        "hubspot_batch_update": hs.count(method="POST", path_prefix="/crm/v3/objects/companies/batch/update"),
        "salesforce_all": sf.count(),
        "hubspot_all": hs.count(),
    }


def _run(label: str, sandbox: Sandbox, engine: Any, clients: dict[str, Any], config: Any, run_id: str,
         bulk_threshold: int, trace: bool = False) -> dict[str, Any]:
    for name in ("salesforce", "hubspot"):
        sandbox.ledger(name).clear()
    if trace:  # the Python heap this run allocates at its peak (the sandbox's SQLite memory is not in it)
        tracemalloc.start()
    with peak_rss() as rss:
        started = time.perf_counter()
        plan = build_plan(engine, config, run_id=run_id, crms=["salesforce", "hubspot"], now=NOW)
        planned = time.perf_counter() - started
        report: WritebackReport = apply_plan(engine, plan, clients=clients, run_id=run_id, force=True)
        seconds = time.perf_counter() - started
    traced_mb = None
    if trace:
        traced_mb = round(tracemalloc.get_traced_memory()[1] / 2**20)
        tracemalloc.stop()
    calls = _write_calls(sandbox)
    sf_n = report.crms["salesforce"].records_written + len(report.crms["salesforce"].failures)
    hs_n = report.crms["hubspot"].records_written + len(report.crms["hubspot"].failures)
    sf_floor = 1 if sf_n > bulk_threshold else math.ceil(sf_n / 200)
    sf_calls = calls["salesforce_bulk_jobs"] if sf_n > bulk_threshold else calls["salesforce_composite"]
    result = {
        "run": label, "seconds": round(seconds, 1), "plan_seconds": round(planned, 1),
        "sf_records": report.crms["salesforce"].records_written, "sf_write_calls": sf_calls, "sf_floor": sf_floor,
        "sf_bulk_jobs": calls["salesforce_bulk_jobs"], "sf_all_calls": calls["salesforce_all"],
        "hs_records": report.crms["hubspot"].records_written, "hs_write_calls": calls["hubspot_batch_update"],
        "hs_floor": math.ceil(hs_n / 100), "hs_all_calls": calls["hubspot_all"],
        "failed": report.failed_records, "peak_rss_mb": round(rss["peak_mb"]),
        "rss_growth_mb": round(rss["peak_mb"] - rss["start_mb"]), "traced_peak_mb": traced_mb,
    }
    print("  ".join(f"{k}={v}" for k, v in result.items()), flush=True)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--accounts", type=int, default=100_000)
    parser.add_argument("--changed", type=float, default=0.10, help="share of accounts whose outputs change")
    parser.add_argument("--bulk-threshold", type=int, default=10_000)
    parser.add_argument("--book-cache", type=Path, default=None, help="directory of cached sandbox books")
    parser.add_argument("--database-url", default=None, help="default: a SQLite file in a temporary directory")
    parser.add_argument("--trace-memory", action="store_true",
                        help="also trace the Python heap peak of the changed and unchanged runs (slower)")
    args = parser.parse_args(argv)

    workdir = Path(tempfile.mkdtemp(prefix="bench-writeback-"))
    timer = time.perf_counter()
    sandbox = start_sandbox(accounts=args.accounts, seed=7, anchor=ANCHOR, workdir=workdir,
                            book_cache=args.book_cache, apps=("salesforce", "hubspot"))
    print(f"sandbox with {args.accounts} accounts up in {time.perf_counter() - timer:.1f} s", flush=True)
    try:
        sandbox.set_faults("salesforce", FaultProfile(daily_limit=10_000_000))
        sandbox.apps["hubspot"].configure_limits(ten_second=10_000_000, daily=10_000_000)  # type: ignore[attr-defined]
        engine = make_engine(args.database_url or f"sqlite:///{workdir / 'store.db'}")
        upgrade(engine)
        timer = time.perf_counter()
        accounts = seed_accounts(engine, sandbox)
        print(f"{len(accounts)} CRM accounts in the store in {time.perf_counter() - timer:.1f} s", flush=True)
        limits = limits_for(bulk_write_threshold=args.bulk_threshold)
        clients = clients_for(credentials_from_env(sandbox.env()), limits)
        config = make_config(tasks={"enabled": False}, guard={"max_records": 10_000_000})
        assert provision(config, clients, apply=True).ok

        every = max(1, round(1 / args.changed))
        changed = {a.account_id: 1 for a in accounts if a.n % every == 0}
        first = write_scores(engine, accounts, scores_of(accounts))
        _run("first", sandbox, engine, clients, config, first, args.bulk_threshold)
        second = write_scores(engine, accounts, scores_of(accounts, changed=changed))
        _run(f"changed_{args.changed:.0%}", sandbox, engine, clients, config, second, args.bulk_threshold,
             args.trace_memory)
        unchanged = write_scores(engine, accounts, scores_of(accounts, changed=changed))
        _run("unchanged", sandbox, engine, clients, config, unchanged, args.bulk_threshold, args.trace_memory)
    finally:
        sandbox.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
