"""The HubSpot emulator as a plain App (no socket): shapes, determinism, reset, limits, search compilation."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

import pytest

from sandbox.book import build_book
from sandbox.faults import FaultProfile, FaultState
from sandbox.http import SandboxRequest, SandboxResponse
from sandbox.hubspot import HubSpotApp, RateLimits
from sandbox.hubspot.properties import PropertyRegistry
from sandbox.hubspot.search import SearchCompiler, SearchError, iso_instant
from tests.sandbox.hs_helpers import ANCHOR, TOKENS, FakeClock, book_of, make_app

AUTH = {"authorization": f"Bearer {TOKENS.hubspot_access_token}", "content-type": "application/json"}


def call(app: HubSpotApp, method: str, target: str, body: Any = None) -> SandboxResponse:
    data = json.dumps(body).encode() if body is not None else b""
    return app.handle(SandboxRequest(method, target, AUTH, data))


def payload(response: SandboxResponse) -> Any:
    return json.loads(response.body)


@pytest.fixture(scope="module")
def small_app() -> Any:
    app = make_app(book_of(60))
    yield app
    app.close()


@pytest.fixture
def app(small_app: HubSpotApp) -> HubSpotApp:
    small_app.reset()
    small_app.faults.set(FaultProfile())
    return small_app


DETERMINISM_REQUESTS: list[tuple[str, str, Any]] = [
    ("GET", "/crm/v3/objects/companies?limit=50&properties=name,tier,arr,renewal_date&associations=contacts", None),
    ("GET", "/crm/v3/objects/contacts?limit=100&properties=email,jobtitle,department&archived=true", None),
    ("GET", "/crm/v3/objects/deals/12000000003?properties=dealstage,dealtype,deal_kind,amount,closedate", None),
    ("GET", "/crm/v3/objects/meetings?limit=20&properties=hs_meeting_start_time,hs_meeting_end_time", None),
    ("GET", "/crm/v3/owners/?limit=10", None),
    (
        "POST",
        "/crm/v3/objects/tickets/search",
        {
            "filterGroups": [
                {"filters": [{"propertyName": "hs_ticket_priority", "operator": "IN", "values": ["HIGH", "URGENT"]}]}
            ],
            "sorts": [{"propertyName": "createdate", "direction": "DESCENDING"}],
            "properties": ["subject", "escalated", "hs_pipeline_stage"],
            "limit": 50,
        },
    ),
    (
        "POST",
        "/crm/v4/associations/companies/calls/batch/read",
        {"inputs": [{"id": "9000000001"}, {"id": "9000000002"}]},
    ),
]


def test_same_seed_gives_byte_identical_answers_from_independently_built_books(tmp_path: Path) -> None:
    answers = []
    for attempt in ("one", "two"):
        book = build_book(accounts=60, seed=7, anchor=ANCHOR, cache_dir=tmp_path / attempt)
        emulator = make_app(book)
        answers.append([call(emulator, m, t, b).body for m, t, b in DETERMINISM_REQUESTS])
        emulator.close()
    assert answers[0] == answers[1]
    assert all(b.startswith(b"{") for b in answers[0])
    shutil.rmtree(tmp_path, ignore_errors=True)


def test_another_seed_gives_other_answers(tmp_path: Path) -> None:
    bodies = []
    for seed in (7, 8):
        emulator = make_app(build_book(accounts=60, seed=seed, anchor=ANCHOR, cache_dir=tmp_path))
        bodies.append(call(emulator, *DETERMINISM_REQUESTS[0]).body)
        emulator.close()
    assert bodies[0] != bodies[1]


def test_book_rows_map_to_hubspot_values(app: HubSpotApp) -> None:
    with app.book.connect() as conn:
        deal = conn.execute(
            "SELECT n, kind, is_closed, is_won, close_date, amount FROM deals WHERE is_closed = 1 AND is_deleted = 0 "
            "ORDER BY n LIMIT 1"
        ).fetchone()
        call_row = conn.execute(
            "SELECT n, direction, duration_minutes, updated_at FROM activities WHERE kind = 'call' AND is_deleted = 0 "
            "AND duration_minutes IS NOT NULL ORDER BY n LIMIT 1"
        ).fetchone()
    props = app.get_record("deals", str(12_000_000_000 + deal[0]))
    assert props["dealstage"] == ("closedwon" if deal[3] else "closedlost")
    assert props["dealtype"] == ("newbusiness" if deal[1] == "new_business" else "existingbusiness")
    assert props["deal_kind"] == deal[1]
    assert props["closedate"] == f"{deal[4]}T00:00:00.000Z"
    assert float(props["amount"]) == deal[5]
    engagement = app.get_record("calls", str(30_000_000_000 + call_row[0]))
    assert engagement["hs_call_direction"] == call_row[1].upper()
    assert engagement["hs_call_duration"] == str(round(call_row[2] * 60_000))
    assert engagement["hs_lastmodifieddate"] == call_row[3][:19] + ".000Z"


def test_reset_restores_the_book_in_under_half_a_second(app: HubSpotApp) -> None:
    before = call(app, "GET", "/crm/v3/objects/companies?limit=100&properties=name,tier").body
    for n in range(1, 31):
        call(app, "PATCH", f"/crm/v3/objects/companies/{9_000_000_000 + n}", {"properties": {"name": f"edited {n}"}})
        call(
            app,
            "POST",
            "/crm/v3/objects/tasks",
            {
                "properties": {"hs_timestamp": "2026-11-05T00:00:00Z", "hs_task_subject": f"task {n}"},
                "associations": [
                    {
                        "to": {"id": str(9_000_000_000 + n)},
                        "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 192}],
                    }
                ],
            },
        )
    call(app, "DELETE", "/crm/v4/objects/contacts/51000001/associations/companies/9000000001")
    started = time.perf_counter()
    app.reset()
    assert time.perf_counter() - started < 0.5
    assert call(app, "GET", "/crm/v3/objects/companies?limit=100&properties=name,tier").body == before
    assert payload(call(app, "GET", "/crm/v3/objects/tasks"))["results"] == []
    assert app.store.associations("contacts", [1], "companies")[1] == [(1, True)]
    created = payload(call(app, "POST", "/crm/v3/objects/tasks", {"properties": {"hs_timestamp": "0"}}))
    assert created["id"] == "34000000001"


def test_touch_bumps_modified_time_and_shows_in_a_modified_since_search(app: HubSpotApp) -> None:
    clock = app.clock
    assert isinstance(clock, FakeClock)
    clock.advance(3600)
    app.touch("companies", ["9000000003"], industry="Aerospace")
    found = payload(
        call(
            app,
            "POST",
            "/crm/v3/objects/companies/search",
            {
                "filterGroups": [
                    {
                        "filters": [
                            {
                                "propertyName": "hs_lastmodifieddate",
                                "operator": "GTE",
                                "value": str(int(clock() * 1000)),
                            }
                        ]
                    }
                ]
            },
        )
    )
    assert [r["id"] for r in found["results"]] == ["9000000003"]
    assert app.get_record("companies", "9000000003")["industry"] == "Aerospace"
    history = payload(call(app, "GET", "/crm/v3/objects/companies/9000000003?propertiesWithHistory=industry"))
    assert [h["sourceType"] for h in history["propertiesWithHistory"]["industry"]] == ["CRM_UI", "CRM_UI"]


def test_set_property_and_archive_hooks(app: HubSpotApp) -> None:
    app.set_property("contacts", "51000002", "jobtitle", "Chief Customer Officer")
    assert app.get_record("contacts", "51000002")["jobtitle"] == "Chief Customer Officer"
    app.archive("contacts", "51000002")
    assert call(app, "GET", "/crm/v3/objects/contacts/51000002").status == 404
    assert payload(call(app, "GET", "/crm/v3/objects/contacts/51000002?archived=true"))["archived"] is True


def test_create_answers_201_update_200_delete_204(app: HubSpotApp) -> None:
    created = call(
        app, "POST", "/crm/v3/objects/companies", {"properties": {"name": "New Co", "domain": "new.example"}}
    )
    assert created.status == 201
    record_id = payload(created)["id"]
    assert call(app, "PATCH", f"/crm/v3/objects/companies/{record_id}", {"properties": {"tier": "smb"}}).status == 200
    assert call(app, "DELETE", f"/crm/v3/objects/companies/{record_id}").status == 204
    assert call(app, "DELETE", f"/crm/v3/objects/companies/{record_id}").status == 404


def test_invalid_enumeration_option_is_a_validation_error(app: HubSpotApp) -> None:
    response = call(app, "PATCH", "/crm/v3/objects/companies/9000000001", {"properties": {"tier": "gold"}})
    assert response.status == 400
    assert "INVALID_OPTION" in payload(response)["message"]


def test_duplicate_contact_email_refuses_create_and_the_whole_batch_with_409(app: HubSpotApp) -> None:
    email = app.get_record("contacts", "51000001")["email"]
    single = call(app, "POST", "/crm/v3/objects/contacts", {"properties": {"email": email.upper()}})
    assert single.status == 409
    assert payload(single)["message"] == "Contact already exists. Existing ID: 51000001"
    assert payload(single)["category"] == "CONFLICT"
    batch = call(
        app,
        "POST",
        "/crm/v3/objects/contacts/batch/create",
        {"inputs": [{"properties": {"email": "fresh@new.example"}}, {"properties": {"email": email}}]},
    )
    assert batch.status == 409
    assert payload(batch)["message"] == "Contact already exists. Existing ID: 51000001"
    assert app.store.find_by("contacts", "email", "fresh@new.example") is None


def test_id_property_must_be_unique_for_updates_and_upserts(app: HubSpotApp) -> None:
    by_domain = call(app, "PATCH", "/crm/v3/objects/companies/x.example?idProperty=domain", {"properties": {}})
    assert by_domain.status == 400
    assert payload(by_domain)["message"] == (
        "Unable to perform update/upsert by non-unique 0-2 property domain in portal ID 20261101"
    )
    by_object_id = call(
        app,
        "POST",
        "/crm/v3/objects/companies/batch/update",
        {"inputs": [{"id": "9000000001", "idProperty": "hs_object_id", "properties": {"name": "n"}}]},
    )
    assert by_object_id.status == 400
    no_id_property = call(
        app, "POST", "/crm/v3/objects/contacts/batch/upsert", {"inputs": [{"id": "a@b.example", "properties": {}}]}
    )
    assert no_id_property.status == 400
    email = app.get_record("contacts", "51000001")["email"]
    by_email = call(
        app, "PATCH", f"/crm/v3/objects/contacts/{email}?idProperty=email", {"properties": {"jobtitle": "CEO"}}
    )
    assert (by_email.status, payload(by_email)["id"]) == (200, "51000001")


def test_batch_create_all_ok_is_201_and_upsert_by_email_reports_new(app: HubSpotApp) -> None:
    created = call(
        app, "POST", "/crm/v3/objects/contacts/batch/create", {"inputs": [{"properties": {"email": "a@x.example"}}]}
    )
    assert created.status == 201
    upsert = call(
        app,
        "POST",
        "/crm/v3/objects/contacts/batch/upsert",
        {
            "inputs": [
                {"idProperty": "email", "id": "a@x.example", "properties": {"firstname": "Ann"}},
                {"idProperty": "email", "id": "b@x.example", "properties": {"firstname": "Bo"}},
            ]
        },
    )
    assert upsert.status == 200
    assert [(r["properties"]["firstname"], r["new"]) for r in payload(upsert)["results"]] == [
        ("Ann", False),
        ("Bo", True),
    ]


def test_error_response_kinds(app: HubSpotApp) -> None:
    limited = app.error_response("rate_limited")
    assert limited.status == 429
    assert payload(limited)["policyName"] == "TEN_SECONDLY_ROLLING"
    assert limited.headers["X-HubSpot-RateLimit-Remaining"] == "0"
    assert "Retry-After" not in limited.headers
    failed = app.error_response("server_error")
    assert failed.status == 502
    assert payload(failed)["status"] == "error"
    # An injected fault is not a request HubSpot counted: the next real one still has the full window.
    assert call(app, "GET", "/crm/v3/objects/companies?limit=1").headers["X-HubSpot-RateLimit-Remaining"] == "189"


def test_unknown_object_type_and_route(app: HubSpotApp) -> None:
    assert call(app, "GET", "/crm/v3/objects/widgets").status == 400
    assert call(app, "GET", "/crm/v3/objects/company?limit=1").status == 200
    assert call(app, "GET", "/crm/v3/objects/0-2?limit=1").status == 200
    missing = call(app, "GET", "/crm/v5/nothing")
    assert missing.status == 404
    assert missing.headers["X-HubSpot-Correlation-Id"] == payload(missing)["correlationId"]


def test_search_with_association_filter_finds_a_companys_contacts(app: HubSpotApp) -> None:
    with app.book.connect() as conn:
        expected = [
            n for (n,) in conn.execute("SELECT n FROM contacts WHERE account_n = 2 AND is_deleted = 0 ORDER BY n")
        ]
    body = {
        "filterGroups": [
            {"filters": [{"propertyName": "associations.company", "operator": "EQ", "value": "9000000002"}]}
        ]
    }
    found = payload(call(app, "POST", "/crm/v3/objects/contacts/search", body))
    assert [int(r["id"]) - 51_000_000 for r in found["results"]] == expected


def test_search_rejects_too_many_groups_and_a_limit_over_200(app: HubSpotApp) -> None:
    groups = [{"filters": [{"propertyName": "name", "operator": "HAS_PROPERTY"}]}] * 6
    assert call(app, "POST", "/crm/v3/objects/companies/search", {"filterGroups": groups}).status == 400
    assert call(app, "POST", "/crm/v3/objects/companies/search", {"limit": 201}).status == 400
    unknown = {"filterGroups": [{"filters": [{"propertyName": "nope", "operator": "EQ", "value": "1"}]}]}
    assert call(app, "POST", "/crm/v3/objects/companies/search", unknown).status == 400


# --- search compiler (pure) --------------------------------------------------------------------------------


def _compile(body: dict[str, Any], object_type: str = "companies") -> tuple[str, list[Any], str]:
    compiled = SearchCompiler(object_type, PropertyRegistry(), lambda *_: "SELECT 1").compile(body)
    return compiled.where, compiled.params, compiled.order


def test_compiler_types_values_by_property_type() -> None:
    where, params, order = _compile(
        {
            "filterGroups": [
                {
                    "filters": [
                        {"propertyName": "arr", "operator": "BETWEEN", "value": "10", "highValue": "20.5"},
                        {"propertyName": "hs_lastmodifieddate", "operator": "GT", "value": "1788220800000"},
                        {"propertyName": "renewal_date", "operator": "LT", "value": "2027-01-01"},
                        {"propertyName": "tier", "operator": "NEQ", "value": "SMB"},
                    ]
                }
            ],
            "sorts": ["-arr"],
        }
    )
    assert params == [10.0, 20.5, "2026-09-01T00:00:00.000Z", "2027-01-01", "smb"]
    assert "updated_at > ?" in where
    assert order == "CAST(json_extract(props, '$.arr') AS REAL) DESC, n DESC"


def test_compiler_refuses_25_plus_filters_and_bad_values() -> None:
    many = [{"filters": [{"propertyName": "name", "operator": "HAS_PROPERTY"}] * 6}] * 5
    with pytest.raises(SearchError):
        _compile({"filterGroups": many})
    with pytest.raises(SearchError):
        _compile({"filterGroups": [{"filters": [{"propertyName": "arr", "operator": "EQ", "value": "lots"}]}]})
    with pytest.raises(SearchError):
        _compile({"filterGroups": [{"filters": [{"propertyName": "arr", "operator": "IN", "values": []}]}]})


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1788220800000", "2026-09-01T00:00:00.000Z"),
        ("2026-09-01T02:00:00+02:00", "2026-09-01T00:00:00.000Z"),
        ("2026-09-01", "2026-09-01T00:00:00.000Z"),
        (1788220800123, "2026-09-01T00:00:00.123Z"),
    ],
)
def test_iso_instant_accepts_epoch_ms_iso_and_dates(value: Any, expected: str) -> None:
    assert iso_instant(value) == expected


# --- rate limits (pure) --------------------------------------------------------------------------------------


def test_ten_second_window_rolls_with_the_clock() -> None:
    clock = FakeClock(1_000.0)
    limits = RateLimits(ten_second=2, daily=100, clock=clock)
    assert [limits.count(is_search=False).policy for _ in range(3)] == [None, None, "TEN_SECONDLY_ROLLING"]
    clock.advance(9.9)
    assert limits.count(is_search=False).policy == "TEN_SECONDLY_ROLLING"
    clock.advance(0.2)
    verdict = limits.count(is_search=False)
    assert verdict.policy is None
    assert verdict.headers["X-HubSpot-RateLimit-Daily-Remaining"] == "97"


def test_daily_count_resets_on_a_new_utc_day() -> None:
    clock = FakeClock(86_400.0 * 20_000 + 86_399.0)
    limits = RateLimits(ten_second=100, daily=1, clock=clock)
    assert limits.count(is_search=False).policy is None
    assert limits.count(is_search=False).policy == "DAILY"
    clock.advance(1.0)
    assert limits.count(is_search=False).policy is None


def test_token_expiry_counts_only_authenticated_calls() -> None:
    emulator = make_app(book_of(60), FaultState(FaultProfile(token_expiry_after=1)))
    wrong = SandboxRequest("GET", "/crm/v3/objects/companies", {"authorization": "Bearer nope"})
    assert emulator.handle(wrong).status == 401
    assert call(emulator, "GET", "/crm/v3/objects/companies?limit=1").status == 200
    expired = call(emulator, "GET", "/crm/v3/objects/companies?limit=1")
    assert (expired.status, payload(expired)["category"]) == (401, "EXPIRED_AUTHENTICATION")
    emulator.close()


def test_search_pages_stop_at_the_10000th_result_and_the_next_page_is_refused(app: HubSpotApp) -> None:
    app.store.db.execute("BEGIN")  # one transaction keeps 10,050 inserts fast
    for i in range(10_050):
        props = {"hs_task_subject": f"bulk {i}", "hs_timestamp": "2026-11-05T00:00:00.000Z"}
        app.store.insert("tasks", props, "2026-11-02T09:00:00.000Z", "INTEGRATION")
    app.store.db.execute("COMMIT")
    last = payload(call(app, "POST", "/crm/v3/objects/tasks/search", {"limit": 200, "after": "9950"}))
    assert last["total"] == 10_050
    assert len(last["results"]) == 50
    assert last["paging"]["next"]["after"] == "10000"
    refused = call(app, "POST", "/crm/v3/objects/tasks/search", {"limit": 200, "after": "10000"})
    assert refused.status == 400
    assert payload(refused)["category"] == "VALIDATION_ERROR"


def test_contains_token_wildcard_and_free_text_query(app: HubSpotApp) -> None:
    email = app.get_record("contacts", "51000001")["email"]
    domain = email.split("@", 1)[1]
    with app.book.connect() as conn:
        expected = conn.execute(
            "SELECT count(*) FROM contacts WHERE is_deleted = 0 AND lower(email) LIKE ?", (f"%@{domain.lower()}",)
        ).fetchone()[0]
    by_token = {
        "filterGroups": [{"filters": [{"propertyName": "email", "operator": "CONTAINS_TOKEN", "value": f"*@{domain}"}]}]
    }
    assert payload(call(app, "POST", "/crm/v3/objects/contacts/search", by_token))["total"] == expected
    name = app.get_record("companies", "9000000001")["name"]
    found = payload(
        call(app, "POST", "/crm/v3/objects/companies/search", {"query": name.lower(), "properties": ["name"]})
    )
    assert "9000000001" in [r["id"] for r in found["results"]]
    assert all(name.lower() in r["properties"]["name"].lower() for r in found["results"])


def test_inactive_users_are_archived_owners() -> None:
    emulator = make_app(book_of(600))  # the 60-account book has no inactive user
    with emulator.book.connect() as conn:
        inactive = [n for (n,) in conn.execute("SELECT n FROM users WHERE is_active = 0 ORDER BY n")]
        active = conn.execute("SELECT count(*) FROM users WHERE is_active = 1").fetchone()[0]
    assert inactive
    archived = payload(call(emulator, "GET", "/crm/v3/owners/?archived=true&limit=500"))["results"]
    assert [int(o["id"]) - 40_000_000 for o in archived] == inactive
    assert all(o["archived"] for o in archived)
    assert len(payload(call(emulator, "GET", "/crm/v3/owners/?limit=500"))["results"]) == active
    emulator.close()
