"""start_sandbox and Sandbox: URLs, environment, reset, run-time faults, missing apps, warehouse, shutdown."""

from __future__ import annotations

import csv
import logging
import os
import signal
import sqlite3
import threading
from pathlib import Path

import pytest
import requests
from sqlalchemy import create_engine, text

from sandbox import runtime
from sandbox.faults import FaultProfile
from sandbox.runtime import Sandbox, serve_forever, start_sandbox
from sandbox.testing import SANDBOX_TEST_ACCOUNTS

ENV_KEYS = {
    "SALESFORCE_INSTANCE_URL", "SALESFORCE_ACCESS_TOKEN", "SALESFORCE_LOGIN_URL", "HUBSPOT_BASE_URL",
    "HUBSPOT_ACCESS_TOKEN", "NPS_BASE_URL", "NPS_API_KEY", "INTENT_BASE_URL", "INTENT_API_KEY",
    "HEALTH_AGENT_CA_BUNDLE",
}


@pytest.fixture
def http() -> requests.Session:
    s = requests.Session()
    s.trust_env = False
    return s


def _nps(sb: Sandbox, http: requests.Session) -> requests.Response:
    return http.get(f"{sb.nps_url}/v1/survey_responses.json", params={"per_page": 1},
                    auth=(sb.tokens.nps_api_key, ""), timeout=5)


def test_env_has_exactly_the_variables_the_agent_reads(sandbox: Sandbox) -> None:
    env = sandbox.env()
    assert set(env) == ENV_KEYS
    assert env["NPS_BASE_URL"] == sandbox.nps_url
    assert env["INTENT_BASE_URL"] == sandbox.intent_url
    assert env["NPS_API_KEY"] == sandbox.tokens.nps_api_key
    assert Path(env["HEALTH_AGENT_CA_BUNDLE"]).read_text().startswith("-----BEGIN CERTIFICATE-----")
    for name in ("salesforce", "hubspot"):
        if name in sandbox.servers:
            assert env[f"{name.upper()}_{'INSTANCE_URL' if name == 'salesforce' else 'BASE_URL'}"] == sandbox.url(name)
    if "salesforce" in sandbox.servers:
        assert sandbox.salesforce_url.startswith("https://127.0.0.1:")


def test_every_app_listens_on_its_own_loopback_port(sandbox: Sandbox) -> None:
    ports = [server.port for server in sandbox.servers.values()]
    assert len(set(ports)) == len(ports)
    assert {"nps", "intent"} <= set(sandbox.servers)
    assert all(server.url.startswith(("http://127.0.0.1:", "https://127.0.0.1:")) for server in sandbox.servers.values())
    assert sandbox.book.accounts == SANDBOX_TEST_ACCOUNTS
    assert sandbox.truth_path.exists()


def test_reset_empties_ledgers_and_restores_the_starting_faults(sandbox: Sandbox, http: requests.Session) -> None:
    sandbox.set_faults("nps", FaultProfile(rate_429=1.0))
    assert _nps(sandbox, http).status_code == 429
    assert sandbox.ledger("nps").count() == 1
    sandbox.reset()
    assert sandbox.ledger("nps").count() == 0
    assert sandbox.faults("nps").profile == FaultProfile()
    assert _nps(sandbox, http).status_code == 200


def test_set_faults_accepts_a_named_profile(sandbox: Sandbox, http: requests.Session) -> None:
    sandbox.set_faults("intent", "slow")
    assert sandbox.faults("intent").profile.latency_ms == 50.0
    assert sandbox.faults("nps").profile.latency_ms == 0.0
    with pytest.raises(ValueError, match="unknown fault profile"):
        sandbox.set_faults("intent", "apocalypse")


def test_warehouse_holds_the_books_usage_and_billing(sandbox: Sandbox) -> None:
    files = sandbox.warehouse
    book = sandbox.book.connect()
    usage_rows, invoice_rows = (book.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in ("usage", "invoices"))
    first_invoice = book.execute("SELECT n, account_n, amount, paid_at, status FROM invoices ORDER BY n").fetchone()
    book.close()
    engine = create_engine(files.sqlite_url)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM product_usage")).scalar_one() == usage_rows
        assert conn.execute(text("SELECT COUNT(*) FROM billing_invoices")).scalar_one() == invoice_rows
        row = conn.execute(text("SELECT invoice_id, account_id, amount, paid_on, status FROM billing_invoices "
                                "WHERE invoice_id = '1'")).one()
        assert tuple(row) == (str(first_invoice[0]), str(first_invoice[1]), *first_invoice[2:])
        assert conn.execute(text("SELECT MIN(adoption) >= 0 AND MAX(adoption) <= 1 FROM product_usage")).scalar_one()
    engine.dispose()
    with files.usage_csv.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["account_id", "domain", "month", "mau", "seats", "adoption"]
    assert len(rows) == usage_rows + 1
    with files.billing_csv.open(newline="", encoding="utf-8") as handle:
        header = next(csv.reader(handle))
    assert header == ["invoice_id", "account_id", "amount", "issued_on", "due_on", "paid_on", "status",
                      "failed_attempts"]


def test_missing_emulator_is_skipped_with_a_warning(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                    caplog: pytest.LogCaptureFixture,
                                                    http: requests.Session) -> None:
    monkeypatch.setitem(runtime.APP_SPECS, "salesforce", ("sandbox.no_such_module", "SalesforceApp", True, 0))
    with caplog.at_level(logging.WARNING, logger="sandbox.runtime"), start_sandbox(
        accounts=5, workdir=tmp_path, apps=("salesforce", "nps")
    ) as sb:
        assert "salesforce" in sb.missing
        assert "salesforce emulator is not available" in caplog.text
        with pytest.raises(RuntimeError, match="salesforce emulator is not running"):
            _ = sb.salesforce_url
        assert sb.env()["SALESFORCE_INSTANCE_URL"] == ""
        assert _nps(sb, http).status_code == 200


def test_start_with_a_fault_profile_applies_it_to_every_app(tmp_path: Path, http: requests.Session) -> None:
    with start_sandbox(accounts=5, workdir=tmp_path, faults=FaultProfile(rate_5xx=1.0), apps=("nps", "intent")) as sb:
        assert _nps(sb, http).status_code == 503
        assert sb.faults("intent").profile.rate_5xx == 1.0
        sb.set_faults("nps", FaultProfile())
        assert _nps(sb, http).status_code == 200
        sb.reset()
        assert _nps(sb, http).status_code == 503  # reset goes back to the profile the sandbox started with


def test_stop_shuts_every_server(tmp_path: Path, http: requests.Session) -> None:
    sb = start_sandbox(accounts=5, workdir=tmp_path, apps=("nps", "intent"))
    url = sb.nps_url
    assert _nps(sb, http).status_code == 200
    sb.stop()
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(f"{url}/v1/survey_responses.json", timeout=1)


def test_serve_forever_returns_and_stops_on_sigint(tmp_path: Path) -> None:
    sb = start_sandbox(accounts=5, workdir=tmp_path, apps=("nps",))
    url = sb.nps_url
    timer = threading.Timer(0.1, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    serve_forever(sb)
    timer.join()
    fresh = requests.Session()
    fresh.trust_env = False
    with pytest.raises(requests.exceptions.ConnectionError):
        fresh.get(f"{url}/v1/survey_responses.json", timeout=1)


def test_book_cache_is_shared_between_sandboxes(tmp_path: Path) -> None:
    cache = tmp_path / "books"
    with start_sandbox(accounts=7, workdir=tmp_path / "one", book_cache=cache, apps=()) as first:
        pass
    with start_sandbox(accounts=7, workdir=tmp_path / "two", book_cache=cache, apps=()) as second:
        assert second.book.path == first.book.path
        conn = sqlite3.connect(second.warehouse.sqlite_path)
        assert conn.execute("SELECT COUNT(DISTINCT account_id) FROM product_usage").fetchone()[0] <= 7
        conn.close()
