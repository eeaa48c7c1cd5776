"""Benchmark: a full pull of a large book from the sandbox into a fresh store, then an incremental one.

Reports wall time, API calls per stream against the floor (ceil(records / page size), plus the pages of
Salesforce contact roles that opportunities read with them), retries, HubSpot
429s and the peak RSS of the pulling process. The sandbox runs in a child process, so its memory is not
counted. Targets: calls within 5% of the floor, peak RSS under 300 MB, no HubSpot 429 at the default limit.

    .venv/bin/python bench/pull.py --accounts 50000 [--sources salesforce,hubspot] [--database-url URL]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from connectors.base import ApiStats
from connectors.credentials import Credentials
from connectors.registry import build_connectors
from core.config.runtime import LimitsConfig
from core.config.sources import SourcesConfig
from store.db import make_engine
from store.migrate import upgrade
from store.sync import StreamReport, pull_all

SERVE = """
import json, sys, tempfile
from pathlib import Path
from sandbox.runtime import serve_forever, start_sandbox
sandbox = start_sandbox(accounts=int(sys.argv[1]), seed=7, workdir=Path(sys.argv[2]),
                        book_cache=Path(sys.argv[3]), apps=("salesforce", "hubspot"))
print(json.dumps(sandbox.env()), flush=True)
serve_forever(sandbox)
"""


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def _page_size(report: StreamReport, limits: LimitsConfig, bulk_pages: bool) -> int:
    if report.source == "salesforce":
        return 10_000 if bulk_pages else limits.salesforce.query_batch_size
    return limits.hubspot.page_size


def _rows(
    reports: list[StreamReport], limits: LimitsConfig, bulk: set[str], roles: dict[str, tuple[int, str]]
) -> list[dict[str, Any]]:
    rows = []
    for r in reports:
        size = _page_size(r, limits, r.stream in bulk)
        floor = max(1, math.ceil(r.read / size))
        if r.source == "salesforce" and r.stream in roles:
            role_count, mode = roles[r.stream]
            floor += math.ceil(role_count / _page_size(r, limits, mode == "bulk"))
        rows.append({
            "stream": f"{r.source}/{r.stream}", "records": r.read, "written": r.records, "rejected": r.rejected,
            "api_calls": r.api_calls, "floor": floor, "over_floor": round(r.api_calls / floor - 1, 3),
            "pages": r.pages, "retries": r.retries, "seconds": r.seconds, "error": r.error,
        })
    return rows


def _roles_read(connectors: list[Any]) -> dict[str, tuple[int, str]]:
    """Salesforce streams that read contact roles: (roles read by the last pull, "bulk" or "rest")."""
    return {s.name: s.roles_read for c in connectors if c.name == "salesforce" for s in c.streams()
            if getattr(s, "contact_roles", False)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--accounts", type=int, default=50_000)
    parser.add_argument("--sources", default="salesforce,hubspot")
    parser.add_argument("--database-url", default=None, help="default: a SQLite file in a temp folder")
    parser.add_argument("--book-cache", type=Path, default=Path(tempfile.gettempdir()) / "health-agent-books")
    parser.add_argument("--bulk-threshold", type=int, default=None, help="override limits.salesforce.bulk_threshold")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    workdir = Path(tempfile.mkdtemp(prefix="bench-pull-"))
    args.book_cache.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    child = subprocess.Popen(
        [sys.executable, "-c", SERVE, str(args.accounts), str(workdir), str(args.book_cache)],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert child.stdout is not None
        env = json.loads(child.stdout.readline())
        sandbox_seconds = time.monotonic() - started
        wanted = set(args.sources.split(","))
        sources = SourcesConfig.model_validate({
            "salesforce": {"enabled": "salesforce" in wanted, "auth": "token", "bulk_poll_seconds": 0.2},
            "hubspot": {"enabled": "hubspot" in wanted},
        })
        limits_data: dict[str, Any] = {}
        if args.bulk_threshold is not None:
            limits_data["salesforce"] = {"bulk_threshold": args.bulk_threshold}
        limits = LimitsConfig.model_validate(limits_data)
        stats = ApiStats()
        connectors = build_connectors(sources, limits, Credentials.from_env(env), stats)
        url = args.database_url or f"sqlite:///{workdir / 'store.db'}"
        engine = make_engine(url)
        upgrade(engine)
        t0 = time.monotonic()
        full = pull_all(engine, connectors, run_id="bench-full", limits=limits)
        full_seconds = time.monotonic() - t0
        bulk = {s.name for c in connectors for s in c.streams() if getattr(s, "backfill_mode", None) == "bulk"}
        full_roles = _roles_read(connectors)
        t1 = time.monotonic()
        incremental = pull_all(engine, connectors, run_id="bench-incr", limits=limits)
        incr_seconds = time.monotonic() - t1
        result = {
            "accounts": args.accounts,
            "database": engine.dialect.name,
            "sandbox_start_seconds": round(sandbox_seconds, 1),
            "full_seconds": round(full_seconds, 1),
            "incremental_seconds": round(incr_seconds, 1),
            "peak_rss_mb": round(_peak_rss_mb(), 1),
            "hubspot_429": stats.snapshot("hubspot").rate_limited,
            "retries": {s: stats.snapshot(s).retries for s in stats.systems()},
            "bulk_streams": sorted(bulk),
            "full": _rows(full, limits, bulk, full_roles),
            "incremental": _rows(incremental, limits, set(), _roles_read(connectors)),
        }
    finally:
        child.terminate()
        child.wait(timeout=30)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"accounts={result['accounts']} store={result['database']} sandbox start {result['sandbox_start_seconds']} s")
    print(f"full pull {result['full_seconds']} s, incremental {result['incremental_seconds']} s, "
          f"peak RSS {result['peak_rss_mb']} MB, HubSpot 429s {result['hubspot_429']}, retries {result['retries']}")
    print(f"bulk backfills: {', '.join(result['bulk_streams']) or 'none'}")
    for phase in ("full", "incremental"):
        print(f"\n{phase}: stream records calls floor over pages retries seconds")
        for row in result[phase]:
            print(f"  {row['stream']:<26} {row['records']:>8} {row['api_calls']:>6} {row['floor']:>6} "
                  f"{row['over_floor']:>6.1%} {row['pages']:>6} {row['retries']:>4} {row['seconds']:>8.1f}"
                  f"{'  ERROR ' + str(row['error']) if row['error'] else ''}")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    raise SystemExit(main())
