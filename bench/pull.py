"""Benchmark: a full pull of a large book from the sandbox into a fresh store, then an incremental one.

Reports wall time, API calls per stream against the floor, retries, HubSpot 429s and the peak RSS of the
pulling process. The sandbox runs in a child process, so its memory is not counted. Targets: calls within 5% of
the floor, peak RSS under 300 MB, no HubSpot 429 at the default limit.

The floor of a stream is the calls its records inherently cost, at least 1 unless said otherwise:

- Salesforce, both runs: ceil(records read / page size), 10,000 rows per Bulk API 2.0 results page or
  ``limits.salesforce.query_batch_size`` per REST page; opportunities add the pages of contact roles read with
  them, by the same rule. A Bulk stream's Bulk minimum adds 2 calls per Bulk job (the job create and one status
  check, inherent to Bulk API 2.0). The calls the Salesforce connector makes once per run for every stream (its
  backfill preflight: one ``limits/recordCount``, one Composite describe per 25 Bulk objects) are taken out of
  the stream that happened to make them and shown on their own ``salesforce/(preflight)`` row, with a floor of 0.
- HubSpot full pull: ceil(records / ``limits.hubspot.page_size``) list pages (associations come inline with
  them); owners ceil(owners / ``OWNERS_PAGE_SIZE``), the owners list's own largest page.
- HubSpot incremental run: objects are searched, ceil(records / ``SEARCH_PAGE_SIZE``) search pages, plus, for a
  stream that reads associations, one v4 batch read per associated type for each ``ASSOCIATION_BATCH_SIZE`` ids
  of a non-empty search page (HubSpot's batch limit is above a search page, so one per type per page). Owners
  have no search: a refresh costs ceil(owners listed / ``OWNERS_PAGE_SIZE``), and a run within
  ``owners_refresh_hours`` of the last refresh needs no call (floor 0). An archived sweep that is due (none is
  within ``archived_sweep_hours`` of the last, as the bench's incremental run is) would count above the floor.

Each system's total sums its rows, preflight included.

    .venv/bin/python -m bench.pull --accounts 50000 [--sources salesforce,hubspot] [--database-url URL] [--json]
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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from connectors.base import ApiStats
from connectors.credentials import Credentials
from connectors.hubspot.client import ASSOCIATION_BATCH_SIZE, OWNERS_PAGE_SIZE, SEARCH_PAGE_SIZE
from connectors.registry import build_connectors
from core.config.runtime import LimitsConfig
from core.config.sources import SourcesConfig
from store.db import make_engine
from store.migrate import upgrade
from store.sync import StreamReport, pull_all

BULK_PAGE = 10_000  # rows per Bulk API 2.0 results page (SalesforceClient.bulk2_query's max_records)

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


@dataclass(frozen=True)
class HubSpotReads:
    """What the HubSpot floor needs from the connector: associated types per stream, owners its last read listed."""

    association_types: dict[str, int]
    owners_listed: int | None  # None: the owners refresh was not due


def _salesforce_page(limits: LimitsConfig, bulk_pages: bool) -> int:
    return BULK_PAGE if bulk_pages else limits.salesforce.query_batch_size


def _hubspot_floor(report: StreamReport, limits: LimitsConfig, reads: HubSpotReads, incremental: bool) -> int:
    """A HubSpot stream's floor, as the module docstring defines it."""
    if report.stream == "owners":
        return 0 if reads.owners_listed is None else max(1, math.ceil(reads.owners_listed / OWNERS_PAGE_SIZE))
    if not incremental:
        return max(1, math.ceil(report.read / limits.hubspot.page_size))
    full_pages, rest = divmod(report.read, SEARCH_PAGE_SIZE)
    per_type = (full_pages * math.ceil(SEARCH_PAGE_SIZE / ASSOCIATION_BATCH_SIZE)
                + math.ceil(rest / ASSOCIATION_BATCH_SIZE))  # association batch reads per associated type
    return max(1, full_pages + (rest > 0)) + reads.association_types.get(report.stream, 0) * per_type


def _over(calls: int, floor: int) -> float | None:
    return round(calls / floor - 1, 3) if floor else None


def _rows(
    reports: list[StreamReport], limits: LimitsConfig, bulk: set[str], roles: dict[str, tuple[int, str]],
    preflight: dict[str, int], hubspot: HubSpotReads, *, incremental: bool,
) -> list[dict[str, Any]]:
    """One row per stream (its calls without the preflight's), then the preflight row when it made calls."""
    rows: list[dict[str, Any]] = []
    for r in reports:
        jobs = int(r.source == "salesforce" and r.stream in bulk)
        if r.source == "hubspot":
            floor = _hubspot_floor(r, limits, hubspot, incremental)
        else:
            floor = max(1, math.ceil(r.read / _salesforce_page(limits, bool(jobs))))
        if r.source == "salesforce" and r.stream in roles:
            role_count, mode = roles[r.stream]
            floor += math.ceil(role_count / _salesforce_page(limits, mode == "bulk"))
            jobs += mode == "bulk"
        calls = r.api_calls - (preflight.get(r.stream, 0) if r.source == "salesforce" else 0)
        rows.append({
            "stream": f"{r.source}/{r.stream}", "records": r.read, "written": r.records, "rejected": r.rejected,
            "api_calls": calls, "floor": floor, "bulk_min": floor + 2 * jobs if jobs else None,
            "over_floor": _over(calls, floor), "pages": r.pages, "retries": r.retries, "seconds": r.seconds,
            "error": r.error,
        })
    if any(preflight.values()):
        after = max((i + 1 for i, row in enumerate(rows) if row["stream"].startswith("salesforce/")), default=0)
        rows.insert(after, {"stream": "salesforce/(preflight)", "records": 0, "written": 0, "rejected": 0,
                            "api_calls": sum(preflight.values()), "floor": 0, "bulk_min": None, "over_floor": None,
                            "pages": 0, "retries": 0, "seconds": 0.0, "error": None})
    return rows


def _totals(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per system: calls, floor and Bulk minimum (floor + Bulk's inherent calls) summed over its rows."""
    out: dict[str, dict[str, Any]] = {}
    for row in rows:
        total = out.setdefault(row["stream"].split("/")[0], {"api_calls": 0, "floor": 0, "bulk_min": 0})
        total["api_calls"] += row["api_calls"]
        total["floor"] += row["floor"]
        total["bulk_min"] += row["bulk_min"] or row["floor"]
    for total in out.values():
        total["over_floor"] = _over(total["api_calls"], total["floor"])
        total["over_bulk_min"] = _over(total["api_calls"], total["bulk_min"])
    return out


def _roles_read(connectors: list[Any]) -> dict[str, tuple[int, str]]:
    """Salesforce streams that read contact roles: (roles read by the last pull, "bulk" or "rest")."""
    return {s.name: s.roles_read for c in connectors if c.name == "salesforce" for s in c.streams()
            if getattr(s, "contact_roles", False)}


def _hubspot_reads(connectors: list[Any]) -> HubSpotReads:
    """The HubSpot streams' associated types, and the owners the owners stream listed in the last pull."""
    streams = [s for c in connectors if c.name == "hubspot" for s in c.streams()]
    return HubSpotReads({s.name: len(s.associations) for s in streams},
                        next((s.listed for s in streams if s.name == "owners"), None))


def _preflight_calls(connectors: list[Any]) -> dict[str, int]:
    """The Salesforce preflight's calls in the last run, by the stream that was reading when it made them."""
    return {k: v for c in connectors if c.name == "salesforce" for k, v in c.preflight.calls.items()}


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
        full_rows = _rows(full, limits, bulk, _roles_read(connectors), _preflight_calls(connectors),
                          _hubspot_reads(connectors), incremental=False)
        t1 = time.monotonic()
        incremental = pull_all(engine, connectors, run_id="bench-incr", limits=limits)
        incr_seconds = time.monotonic() - t1
        incr_rows = _rows(incremental, limits, set(), _roles_read(connectors), _preflight_calls(connectors),
                          _hubspot_reads(connectors), incremental=True)
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
            "full": full_rows,
            "full_totals": _totals(full_rows),
            "incremental": incr_rows,
            "incremental_totals": _totals(incr_rows),
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
        print(f"\n{phase}: stream records calls floor bulk-min over-floor pages retries seconds")
        for row in result[phase]:
            print(f"  {row['stream']:<26} {row['records']:>8} {row['api_calls']:>6} {row['floor']:>6} "
                  f"{_cell(row['bulk_min'])} {_cell(row['over_floor'], '.1%')} {row['pages']:>6} "
                  f"{row['retries']:>4} {row['seconds']:>8.1f}{'  ERROR ' + str(row['error']) if row['error'] else ''}")
        for system, total in result[f"{phase}_totals"].items():
            print(f"  {system + ' total':<26} {'':>8} {total['api_calls']:>6} {total['floor']:>6} "
                  f"{total['bulk_min']:>8} {_cell(total['over_floor'], '.1%')} "
                  f"(over the Bulk minimum {_cell(total['over_bulk_min'], '.1%').strip()})")
    return 0


def _cell(value: float | int | None, spec: str = "") -> str:
    return f"{'-' if value is None else format(value, spec):>8}"


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    raise SystemExit(main())
