"""Round-trip latency (p50/p95 ms) and pages per second of the sandbox's emulated APIs, driven by the real
client libraries: simple-salesforce (SOQL query + nextRecordsUrl paging, over TLS), hubspot-api-client
(companies/contacts list paging), and plain requests for NPS and intent.

    .venv/bin/python bench/sandbox_latency.py [--accounts 300] [--calls 200]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import requests

from sandbox.runtime import Sandbox, start_sandbox


def _session(sb: Sandbox) -> requests.Session:
    s = requests.Session()
    s.trust_env = False  # REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE would override verify
    s.verify = str(sb.ca_path)
    return s


def _latency(call: Callable[[], Any], calls: int) -> tuple[float, float]:
    call()  # warm the connection
    samples = []
    for _ in range(calls):
        started = time.perf_counter()
        call()
        samples.append((time.perf_counter() - started) * 1000)
    cuts = statistics.quantiles(samples, n=20, method="inclusive")
    return statistics.median(samples), cuts[18]


def _paging(pages: Callable[[], tuple[int, int]]) -> tuple[int, int, float]:
    started = time.perf_counter()
    page_count, records = pages()
    return page_count, records, time.perf_counter() - started


def bench_salesforce(sb: Sandbox, calls: int) -> dict[str, Any]:
    from simple_salesforce.api import Salesforce

    sf = Salesforce(instance_url=sb.salesforce_url, session_id=sb.tokens.salesforce_access_token,
                    session=_session(sb), version="59.0")
    p50, p95 = _latency(lambda: sf.query("SELECT Id, Name FROM Account LIMIT 200"), calls)

    def pages() -> tuple[int, int]:
        result = sf.query("SELECT Id, Subject, ActivityDate, WhatId FROM Task")
        count, records = 1, len(result["records"])
        while not result["done"]:
            result = sf.query_more(result["nextRecordsUrl"], identifier_is_url=True)
            count += 1
            records += len(result["records"])
        return count, records

    return {"api": "salesforce query (TLS)", "p50": p50, "p95": p95, "paging": _paging(pages)}


def bench_hubspot(sb: Sandbox, calls: int) -> dict[str, Any]:
    import hubspot

    # The emulator enforces HubSpot's Professional-tier 190 calls per 10 s; the benchmark measures speed, not limits.
    sb.apps["hubspot"].configure_limits(ten_second=10**9, daily=10**9)  # type: ignore[attr-defined]
    client = hubspot.Client.create(access_token=sb.tokens.hubspot_access_token, host=sb.hubspot_url)
    companies = client.crm.companies.basic_api  # cached: each property access builds a new ApiClient
    contacts = client.crm.contacts.basic_api
    p50, p95 = _latency(lambda: companies.get_page(limit=100, properties=["name", "domain"]), calls)

    def pages() -> tuple[int, int]:
        count = records = 0
        after = None
        while True:
            page = contacts.get_page(limit=100, after=after, properties=["email", "firstname", "lastname"])
            count += 1
            records += len(page.results)
            if not page.paging or not page.paging.next:
                return count, records
            after = page.paging.next.after

    return {"api": "hubspot list (HTTP)", "p50": p50, "p95": p95, "paging": _paging(pages)}


def bench_nps(sb: Sandbox, calls: int) -> dict[str, Any]:
    http = _session(sb)
    url = f"{sb.nps_url}/v1/survey_responses.json"
    auth = (sb.tokens.nps_api_key, "")
    p50, p95 = _latency(lambda: http.get(url, params={"per_page": 100}, auth=auth).raise_for_status(), calls)

    def pages() -> tuple[int, int]:
        response = http.get(url, params={"per_page": 100}, auth=auth)
        count, records = 1, len(response.json())
        while "next" in response.links:
            response = http.get(response.links["next"]["url"], auth=auth)
            count += 1
            records += len(response.json())
        return count, records

    return {"api": "nps list (HTTP)", "p50": p50, "p95": p95, "paging": _paging(pages)}


def bench_intent(sb: Sandbox, calls: int) -> dict[str, Any]:
    http = _session(sb)
    url = f"{sb.intent_url}/v1/intent/companies"
    headers = {"X-API-Key": sb.tokens.intent_api_key}
    p50, p95 = _latency(lambda: http.get(url, params={"limit": 100}, headers=headers).raise_for_status(), calls)

    def pages() -> tuple[int, int]:
        count = records = 0
        params: dict[str, Any] = {"limit": 1000}
        while True:
            body = http.get(url, params=params, headers=headers).json()
            count += 1
            records += len(body["data"])
            if not body["next_cursor"]:
                return count, records
            params["cursor"] = body["next_cursor"]

    return {"api": "intent list (HTTP)", "p50": p50, "p95": p95, "paging": _paging(pages)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--accounts", type=int, default=300)
    parser.add_argument("--calls", type=int, default=200, help="round trips per latency measurement")
    parser.add_argument("--anchor", type=date.fromisoformat, default=date(2026, 11, 1))
    args = parser.parse_args()
    started = time.perf_counter()
    with start_sandbox(accounts=args.accounts, anchor=args.anchor, workdir=Path(tempfile.mkdtemp())) as sb:
        print(f"sandbox with {args.accounts} accounts ready in {time.perf_counter() - started:.2f} s")
        print(f"{'api':26} {'p50 ms':>8} {'p95 ms':>8} {'pages':>6} {'records':>8} {'pages/s':>8}")
        for name, bench in (("salesforce", bench_salesforce), ("hubspot", bench_hubspot),
                            ("nps", bench_nps), ("intent", bench_intent)):
            if name in sb.missing:
                print(f"{name:26} missing: {sb.missing[name]}")
                continue
            row = bench(sb, args.calls)
            pages, records, seconds = row["paging"]
            print(f"{row['api']:26} {row['p50']:8.2f} {row['p95']:8.2f} {pages:6d} {records:8d} "
                  f"{pages / seconds:8.1f}")


if __name__ == "__main__":
    main()
