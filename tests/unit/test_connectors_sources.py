"""Generic JSON sources (paging styles, auth), files (CSV/Parquet), HubSpot's 10k split, JWT login, linking."""

from __future__ import annotations

import csv
import re
import sys
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import responses
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from pydantic import SecretStr
from sqlalchemy import Engine, text

from connectors.base import ApiStats
from connectors.credentials import Credentials
from connectors.fields import RecordMapper
from connectors.files.streams import TabularConnector
from connectors.generic_http.streams import HttpConnector
from connectors.hubspot.mapping import TYPES
from connectors.hubspot.streams import HubSpotStream
from connectors.salesforce.client import SalesforceLogin
from core.config.runtime import LimitsConfig
from core.config.sources import HttpSourceConfig, SourcesConfig, TabularSourceConfig
from core.errors import ConfigError, FatalApiError
from core.records import AccountRecord, IntentSignalRecord, InvoiceRecord, SurveyResponseRecord, UsageRecord
from store.linking import link_accounts
from store.upsert import upsert_records

API = "https://vendor.example.test"


def _source(style: str, **paging: Any) -> HttpSourceConfig:
    return HttpSourceConfig.model_validate({
        "name": "reviews", "base_url": API, "auth": {"style": "header", "header": "X-Key"},
        "paging": {"style": style, "size": 2, **paging},
        "streams": [{"name": "responses", "path": "/v1/responses", "entity": "survey_responses",
                     "records_path": "data", "since_param": "after", "since_format": "unix",
                     "fields": {"external_id": "id", "score": "score", "responded_at": "at", "email": "who.email",
                                "source_updated_at": "at"},
                     "constants": {"kind": "csat"}}],
    })


def _item(n: int) -> dict[str, Any]:
    return {"id": n, "score": 4, "at": 1767225600 + n, "who": {"email": f"P{n}@Acme.com"}}


def _read(config: HttpSourceConfig, since: datetime | None = None) -> list[Any]:
    connector = HttpConnector(config, base_url=API, api_key="k-123", limits=LimitsConfig(), stats=ApiStats())
    return list(connector.streams()[0].read(since))


@responses.activate
def test_page_paging_stops_on_a_short_page_and_sends_the_key_and_since():
    for page in ([_item(1), _item(2)], [_item(3)]):
        responses.get(f"{API}/v1/responses", json={"data": page})
    records = _read(_source("page"), since=datetime(2026, 1, 1, tzinfo=UTC))
    assert [r.external_id for r in records] == ["1", "2", "3"]
    first = responses.calls[0].request
    assert first.headers["X-Key"] == "k-123"
    assert parse_qs(urlsplit(str(first.url)).query) == {"after": ["1767225600"], "per_page": ["2"], "page": ["1"]}
    assert parse_qs(urlsplit(str(responses.calls[1].request.url)).query)["page"] == ["2"]
    record = records[0]
    assert isinstance(record, SurveyResponseRecord)
    assert (record.kind, record.email, record.responded_at) == ("csat", "p1@acme.com",
                                                                datetime(2026, 1, 1, 0, 0, 1, tzinfo=UTC))


@responses.activate
def test_offset_paging_advances_by_the_items_read():
    responses.get(f"{API}/v1/responses", json={"data": [_item(1), _item(2)]})
    responses.get(f"{API}/v1/responses", json={"data": []})
    assert len(_read(_source("offset", offset_param="skip"))) == 2
    assert [parse_qs(urlsplit(str(c.request.url)).query)["skip"] for c in responses.calls] == [["0"], ["2"]]


@responses.activate
def test_cursor_paging_refuses_a_repeated_cursor():
    for _ in range(3):
        responses.get(f"{API}/v1/responses", json={"data": [_item(1)], "meta": {"next": "abc"}})
    with pytest.raises(FatalApiError, match="twice"):
        _read(_source("cursor", cursor_path="meta.next"))


@responses.activate
def test_link_paging_follows_the_link_header():
    responses.get(f"{API}/v1/responses", json={"data": [_item(1)]},
                  headers={"Link": f'<{API}/v1/responses?page=2>; rel="next"'}, match=[
                      responses.matchers.query_param_matcher({"per_page": "2"})])
    responses.get(f"{API}/v1/responses", json={"data": [_item(2)]},
                  match=[responses.matchers.query_param_matcher({"page": "2"})])
    assert [r.external_id for r in _read(_source("link"))] == ["1", "2"]


@responses.activate
def test_an_item_without_an_id_is_rejected_and_the_rest_land():
    responses.get(f"{API}/v1/responses", json={"data": [{**_item(1), "id": None}, _item(2)]})
    records = _read(_source("none"))
    assert [getattr(r, "reason", None) for r in records] == ["id: missing record id", None]


def test_the_nps_preset_keeps_its_streams_when_only_enabled():
    sources = SourcesConfig.model_validate({"nps": {"enabled": True}})
    assert (sources.nps.enabled, sources.nps.auth.style, sources.nps.paging.style) == (True, "basic", "link")
    assert sources.nps.streams[0].fields["email"] == "person.email"


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


USAGE_ROWS = [
    {"account_id": "001A", "domain": "WWW.Acme.com", "month": "2026-01-01", "mau": 40, "seats": 50, "adoption": 0.5},
    {"account_id": "", "domain": "", "month": "2026-01-01", "mau": 3, "seats": 5, "adoption": 0.1},
]
USAGE_COLUMNS = {"account_external_id": "account_id", "account_domain": "domain", "period_start": "month",
                 "active_users": "mau", "licensed_seats": "seats", "feature_adoption": "adoption"}


@pytest.mark.parametrize("kind", ["csv", "parquet"])
def test_usage_rows_from_a_file_are_keyed_by_account_id_or_domain(tmp_path: Path, kind: str):
    path = tmp_path / f"usage.{kind}"
    if kind == "csv":
        _write_csv(path, USAGE_ROWS)
    else:
        rows = [{**r, "account_id": r["account_id"] or None, "domain": r["domain"] or None} for r in USAGE_ROWS]
        pq.write_table(pa.Table.from_pylist(rows), path)
    config = TabularSourceConfig(enabled=True, file=str(path), columns=USAGE_COLUMNS, id_columns=["account_id", "month"])
    connector = TabularConnector("usage", "usage_metrics", config)
    connector.check()
    first, second = list(connector.streams()[0].read(None))
    assert isinstance(first, UsageRecord)
    assert (first.external_id, first.account_domain, first.period_start, first.active_users) == (
        "001A:2026-01-01", "acme.com", date(2026, 1, 1), 40)
    assert getattr(second, "reason", "") == "neither an account id nor a domain to match the row to an account"


def test_a_parquet_file_without_pyarrow_names_the_extra_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    path = tmp_path / "usage.parquet"
    pq.write_table(pa.Table.from_pylist([{"account_id": "001A", "month": "2026-01-01"}]), path)
    # A None entry in sys.modules makes `import pyarrow.parquet` raise ModuleNotFoundError, as if not installed.
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    config = TabularSourceConfig(enabled=True, file=str(path), columns=USAGE_COLUMNS, id_columns=["account_id", "month"])
    connector = TabularConnector("usage", "usage_metrics", config)
    install = "pip install 'crm-health-agent[parquet]'"
    with pytest.raises(ConfigError, match=re.escape(install)):
        connector.check()
    with pytest.raises(ConfigError, match=re.escape(f"usage: reading the Parquet file {path} needs pyarrow")):
        list(connector.streams()[0].read(None))


def test_billing_rows_from_a_warehouse_query_read_only_what_changed(tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'wh.db'}"
    from sqlalchemy import create_engine

    wh = create_engine(url)
    with wh.begin() as conn:
        conn.execute(text("CREATE TABLE inv (id TEXT, acct TEXT, amount REAL, issued TEXT, status TEXT, changed TEXT)"))
        conn.execute(text("INSERT INTO inv VALUES ('i1', '001A', 100, '2026-01-01', 'PAID', '2026-01-02 00:00:00'),"
                          " ('i2', '001A', 50, '2026-02-01', 'past_due', '2026-02-02 00:00:00')"))
    wh.dispose()
    config = TabularSourceConfig(
        enabled=True, url=url, query="SELECT * FROM inv", cursor_column="changed",
        columns={"external_id": "id", "account_external_id": "acct", "amount": "amount", "issued_at": "issued",
                 "status": "status"},
    )
    stream = TabularConnector("billing", "invoices", config).streams()[0]
    everything = list(stream.read(None))
    assert [(r.external_id, r.status) for r in everything if isinstance(r, InvoiceRecord)] == [
        ("i1", "paid"), ("i2", "open")]
    changed = list(stream.read(datetime(2026, 2, 1, tzinfo=UTC)))
    assert [r.external_id for r in changed if isinstance(r, InvoiceRecord)] == ["i2"]


def test_a_tabular_source_needs_a_query_or_a_file():
    with pytest.raises(ConfigError, match="exactly one of query"):
        TabularConnector("usage", "usage_metrics", TabularSourceConfig(enabled=True, columns={"external_id": "x"}))


class FakeSearch:
    """A HubSpot search that holds 25,000 records and, like HubSpot, refuses to page past 10,000."""

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = [{"id": str(n), "properties": {"hs_lastmodifieddate": str(1_700_000_000_000 + n * 1000)},
                         "createdAt": "2026-01-01T00:00:00Z", "updatedAt": "2026-01-01T00:00:00Z", "archived": False}
                        for n in range(25_000)]
        self.bodies: list[tuple[str, str | None]] = []

    def search(self, object_type, filter_groups, sorts, properties, after=None, limit=200):
        start_ms = int(filter_groups[0]["filters"][0]["value"])
        self.bodies.append((filter_groups[0]["filters"][0]["value"], after))
        offset = int(after or 0)
        assert offset + limit <= 10_000, "paged past the 10,000-result cap"
        matching = [r for r in self.records if int(r["properties"]["hs_lastmodifieddate"]) >= start_ms]
        page = matching[offset : offset + limit]
        more = offset + limit < len(matching)
        return {"total": len(matching), "results": page,
                "paging": {"next": {"after": str(offset + limit)}} if more else None}


def test_hubspot_increments_past_10000_results_split_the_time_window():
    spec = TYPES["companies"]
    mapper = RecordMapper(source="hubspot", stream="companies", record_type=AccountRecord,
                          fields={"external_id": "id", "source_updated_at": "properties.hs_lastmodifieddate"})
    fake = FakeSearch()
    stream = HubSpotStream(spec, mapper, fake, archived=False)  # type: ignore[arg-type]
    ids = [r.external_id for r in stream.read(datetime(2023, 1, 1, tzinfo=UTC))]
    assert len(set(ids)) == 25_000
    windows = [b for b in fake.bodies if b[1] is None]
    assert len(windows) == 3  # 10,000 + 10,000 (from the last time seen) + the rest
    assert len(ids) - 25_000 == 2  # the records at each window's first instant are read twice


def test_jwt_login_signs_the_configured_claims(tmp_path: Path):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    key_file = tmp_path / "key.pem"
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    creds = Credentials(salesforce_login_url="https://login.example.test/", salesforce_username="u@x",
                        salesforce_consumer_key="ck", salesforce_private_key_file=key_file)
    form = SalesforceLogin("jwt", creds, session=None)._form()  # type: ignore[arg-type]
    assert form["grant_type"] == "urn:ietf:params:oauth:grant-type:jwt-bearer"
    claims = jwt.decode(form["assertion"], key.public_key(), algorithms=["RS256"], audience="https://login.example.test")
    assert (claims["iss"], claims["sub"]) == ("ck", "u@x")


def test_client_credentials_login_sends_the_secret():
    creds = Credentials(salesforce_consumer_key="ck", salesforce_client_secret=SecretStr("cs-1"))
    form = SalesforceLogin("client_credentials", creds, session=None)._form()  # type: ignore[arg-type]
    assert form == {"grant_type": "client_credentials", "client_id": "ck", "client_secret": "cs-1"}


def test_linking_by_email_domain_subdomain_and_external_id(store_engine: Engine):
    t = datetime(2026, 1, 1, tzinfo=UTC)
    with store_engine.begin() as conn:
        upsert_records(conn, [
            AccountRecord(source="salesforce", external_id="001A", domain="acme.com", extra_domains=("acme.io",)),
            AccountRecord(source="salesforce", external_id="001B", domain="globex.com"),
        ])
        conn.execute(text("INSERT INTO contacts (source, external_id, account_external_id, email, is_deleted, "
                          "synced_at, extra, seniority, has_left) VALUES ('salesforce', '003A', '001B', "
                          "'pat@acme.com', false, :t, '{}', 'unknown', false)"), {"t": t})
        upsert_records(conn, [
            SurveyResponseRecord(source="nps", external_id="s1", kind="nps", score=9, responded_at=t,
                                 email="pat@acme.com"),  # a known contact at Globex, on an acme.com address
            SurveyResponseRecord(source="nps", external_id="s2", kind="nps", score=3, responded_at=t,
                                 email="kim@acme.io"),
            SurveyResponseRecord(source="nps", external_id="s3", kind="nps", score=5, responded_at=t,
                                 email="someone@gmail.com"),
        ])
        upsert_records(conn, [
            IntentSignalRecord(source="intent", external_id="i1", domain="eu.app.acme.com", topic="CRM", score=80,
                               observed_at=t),
            IntentSignalRecord(source="intent", external_id="i2", domain="unknown.org", topic="CRM", score=80,
                               observed_at=t),
        ])
        upsert_records(conn, [
            UsageRecord(source="usage", external_id="u1", account_external_id="001B", period_start=date(2026, 1, 1)),
            UsageRecord(source="usage", external_id="u2", account_domain="acme.io", period_start=date(2026, 1, 1)),
        ])
    counts = link_accounts(store_engine)
    assert counts == {"survey_responses": 2, "survey_responses_unmatched": 1, "intent_signals": 1,
                      "intent_signals_unmatched": 1, "usage_metrics": 2, "usage_metrics_unmatched": 0,
                      "invoices": 0, "invoices_unmatched": 0}
    with store_engine.connect() as conn:
        links = conn.execute(text(
            "SELECT l.entity, a.external_id, l.method FROM account_links l JOIN accounts a ON a.id = l.account_id "
            "ORDER BY l.entity, l.record_id")).all()
    assert [tuple(r) for r in links] == [
        ("intent_signals", "001A", "domain"),
        ("survey_responses", "001B", "email"),
        ("survey_responses", "001A", "domain"),
        ("usage_metrics", "001B", "external_id"),
        ("usage_metrics", "001A", "domain"),
    ]
