"""The NPS (Delighted-style) and intent (6sense-style) APIs on the session sandbox, through real HTTP."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from sandbox.book import build_book
from sandbox.faults import FaultProfile, FaultState
from sandbox.http import SandboxRequest, SandboxTokens
from sandbox.intent import IntentApp
from sandbox.nps import NpsApp, iso_utc, unix_seconds
from sandbox.runtime import Sandbox
from sandbox.testing import SANDBOX_TEST_ANCHOR

NPS = "/v1/survey_responses.json"
INTENT = "/v1/intent/companies"


@pytest.fixture
def http() -> Iterator[requests.Session]:
    s = requests.Session()
    s.trust_env = False
    yield s
    s.close()


@pytest.fixture
def book_db(sandbox: Sandbox) -> Iterator[sqlite3.Connection]:
    conn = sandbox.book.connect()
    yield conn
    conn.close()


def _nps_get(sandbox: Sandbox, http: requests.Session, **params: Any) -> requests.Response:
    return http.get(f"{sandbox.nps_url}{NPS}", params=params, auth=(sandbox.tokens.nps_api_key, ""))


def _intent_get(sandbox: Sandbox, http: requests.Session, **params: Any) -> requests.Response:
    return http.get(
        f"{sandbox.intent_url}{INTENT}", params=params, headers={"X-API-Key": sandbox.tokens.intent_api_key}
    )


def _all_nps(sandbox: Sandbox, http: requests.Session, **params: Any) -> tuple[list[dict[str, Any]], int]:
    items: list[dict[str, Any]] = []
    response = _nps_get(sandbox, http, per_page=100, **params)
    pages = 1
    while True:
        assert response.status_code == 200
        items.extend(response.json())
        if "next" not in response.links:
            return items, pages
        response = http.get(response.links["next"]["url"], auth=(sandbox.tokens.nps_api_key, ""))
        pages += 1


def test_nps_refuses_a_missing_or_wrong_key(sandbox: Sandbox, http: requests.Session) -> None:
    url = f"{sandbox.nps_url}{NPS}"
    assert http.get(url).status_code == 401
    wrong = http.get(url, auth=("not-the-key", ""))
    assert (wrong.status_code, wrong.json()["status"]) == (401, 401)
    assert http.get(url, headers={"Authorization": "Basic !!!"}).status_code == 401


def test_nps_accepts_basic_and_bearer_keys(sandbox: Sandbox, http: requests.Session) -> None:
    basic = _nps_get(sandbox, http, per_page=5)
    bearer = http.get(
        f"{sandbox.nps_url}{NPS}",
        params={"per_page": 5},
        headers={"Authorization": f"Bearer {sandbox.tokens.nps_api_key}"},
    )
    assert basic.status_code == bearer.status_code == 200
    assert basic.json() == bearer.json()
    assert len(basic.json()) == 5


def test_nps_pages_through_every_response_once_in_update_order(
    sandbox: Sandbox, http: requests.Session, book_db: sqlite3.Connection
) -> None:
    total = book_db.execute("SELECT COUNT(*) FROM survey_responses").fetchone()[0]
    items, pages = _all_nps(sandbox, http)
    assert len(items) == total
    assert len({i["id"] for i in items}) == total
    assert pages == total // 100 + 1
    keys = [(i["updated_at"], int(i["id"])) for i in items]
    assert keys == sorted(keys)
    assert sandbox.ledger("nps").count(method="GET", path_prefix=NPS, status=200) == pages


def test_nps_item_has_the_delighted_shape(
    sandbox: Sandbox, http: requests.Session, book_db: sqlite3.Connection
) -> None:
    row = book_db.execute(
        "SELECT s.n, s.email, s.score, s.kind, s.created_at, c.n, c.first_name, c.last_name FROM survey_responses s "
        "JOIN contacts c ON c.email = s.email WHERE s.kind = 'nps' ORDER BY s.n LIMIT 1"
    ).fetchone()
    items = _nps_get(sandbox, http, person_email=row[1], per_page=100).json()
    item = next(i for i in items if i["id"] == str(row[0]))
    assert item["person"] == {"id": str(row[5]), "email": row[1], "name": f"{row[6]} {row[7]}"}
    assert (item["score"], item["survey_type"]) == (int(row[2]), row[3])
    assert item["created_at"] == unix_seconds(row[4])
    assert set(item) >= {"id", "person", "survey_type", "score", "comment", "created_at", "updated_at"}


def test_nps_unknown_respondent_has_no_person_id(
    sandbox: Sandbox, http: requests.Session, book_db: sqlite3.Connection
) -> None:
    email = book_db.execute(
        "SELECT email FROM survey_responses s WHERE NOT EXISTS "
        "(SELECT 1 FROM contacts c WHERE c.email = s.email) LIMIT 1"
    ).fetchone()[0]
    items = _nps_get(sandbox, http, person_email=email).json()
    assert items
    assert items[0]["person"] == {"id": None, "email": email, "name": None}


def test_nps_since_and_until_filter_on_creation_time(
    sandbox: Sandbox, http: requests.Session, book_db: sqlite3.Connection
) -> None:
    since = unix_seconds("2026-03-01T00:00:00Z")
    until = unix_seconds("2026-06-30T23:59:59Z")
    expected = book_db.execute(
        "SELECT COUNT(*) FROM survey_responses WHERE created_at >= ? AND created_at <= ?",
        (iso_utc(since), iso_utc(until)),
    ).fetchone()[0]
    items, _ = _all_nps(sandbox, http, since=since, until=until)
    assert len(items) == expected > 0
    assert all(since <= i["created_at"] <= until for i in items)


def test_nps_updated_since_returns_only_later_updates(
    sandbox: Sandbox, http: requests.Session, book_db: sqlite3.Connection
) -> None:
    since = unix_seconds("2026-09-15T00:00:00Z")
    expected = book_db.execute(
        "SELECT COUNT(*) FROM survey_responses WHERE updated_at >= ?", (iso_utc(since),)
    ).fetchone()[0]
    items, _ = _all_nps(sandbox, http, updated_since=since)
    assert len(items) == expected > 0
    assert min(i["updated_at"] for i in items) >= since


def test_nps_rejects_bad_parameters(sandbox: Sandbox, http: requests.Session) -> None:
    assert _nps_get(sandbox, http, per_page=101).status_code == 400
    assert _nps_get(sandbox, http, page=0).status_code == 400
    assert _nps_get(sandbox, http, since="yesterday").status_code == 400
    assert _nps_get(sandbox, http, order="sideways").status_code == 400


def test_nps_descending_order_reverses_the_list(sandbox: Sandbox, http: requests.Session) -> None:
    ascending, _ = _all_nps(sandbox, http)
    descending, _ = _all_nps(sandbox, http, order="desc")
    assert [i["id"] for i in descending] == [i["id"] for i in reversed(ascending)]


def test_intent_refuses_a_missing_or_wrong_key(sandbox: Sandbox, http: requests.Session) -> None:
    assert http.get(f"{sandbox.intent_url}{INTENT}").status_code == 401
    wrong = http.get(f"{sandbox.intent_url}{INTENT}", headers={"X-API-Key": "nope"})
    assert wrong.status_code == 401
    assert wrong.json()["error"]["code"] == "unauthorized"


def test_intent_cursor_pages_through_every_signal_once(
    sandbox: Sandbox, http: requests.Session, book_db: sqlite3.Connection
) -> None:
    total = book_db.execute("SELECT COUNT(*) FROM intent_signals").fetchone()[0]
    seen: list[dict[str, Any]] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 50}
        if cursor:
            params["cursor"] = cursor
        body = _intent_get(sandbox, http, **params).json()
        pages += 1
        seen.extend(body["data"])
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == total
    assert len({s["id"] for s in seen}) == total
    assert pages == -(-total // 50)
    keys = [(s["updated_at"], int(s["id"])) for s in seen]
    assert keys == sorted(keys)
    assert all(0 <= s["score"] <= 100 for s in seen)


def test_intent_since_is_inclusive_on_update_time(
    sandbox: Sandbox, http: requests.Session, book_db: sqlite3.Connection
) -> None:
    pivot = book_db.execute("SELECT updated_at FROM intent_signals ORDER BY updated_at LIMIT 1 OFFSET 200").fetchone()[
        0
    ]
    expected = book_db.execute("SELECT COUNT(*) FROM intent_signals WHERE updated_at >= ?", (pivot,)).fetchone()[0]
    body = _intent_get(sandbox, http, since=pivot, limit=1000).json()
    assert len(body["data"]) == expected
    assert body["data"][0]["updated_at"] == pivot
    offset = pivot.replace("Z", "+02:00")  # the same wall time two hours east is two hours earlier in UTC
    assert len(_intent_get(sandbox, http, since=offset, limit=1000).json()["data"]) >= expected


def test_intent_rejects_bad_parameters(sandbox: Sandbox, http: requests.Session) -> None:
    assert _intent_get(sandbox, http, limit=0).status_code == 400
    assert _intent_get(sandbox, http, limit=1001).status_code == 400
    assert _intent_get(sandbox, http, since="last week").status_code == 400
    bad = _intent_get(sandbox, http, cursor="bm90LWEtY3Vyc29y")
    assert (bad.status_code, bad.json()["error"]["code"]) == (400, "invalid_request")


def test_injected_faults_use_each_apis_error_shape(sandbox: Sandbox, http: requests.Session) -> None:
    sandbox.set_faults("nps", FaultProfile(rate_429=1.0))
    limited = _nps_get(sandbox, http)
    assert (limited.status_code, limited.json(), limited.headers["Retry-After"]) == (
        429,
        {"status": 429, "message": "Too Many Requests"},
        "0",
    )
    sandbox.set_faults("intent", FaultProfile(rate_5xx=1.0))
    failed = _intent_get(sandbox, http)
    assert (failed.status_code, failed.json()["error"]["code"]) == (503, "unavailable")
    assert _nps_get(sandbox, http, per_page=1).status_code == 429  # faults are per app
    sandbox.reset()
    assert _nps_get(sandbox, http, per_page=1).status_code == 200


def test_same_seed_gives_byte_identical_nps_and_intent_answers(tmp_path: Path) -> None:
    tokens = SandboxTokens()

    def answers(directory: Path) -> list[bytes]:
        book = build_book(40, 9, SANDBOX_TEST_ANCHOR, directory)
        nps, intent = NpsApp(book, FaultState(), tokens), IntentApp(book, FaultState(), tokens)
        nps_auth = {"authorization": f"Bearer {tokens.nps_api_key}"}
        intent_auth = {"x-api-key": tokens.intent_api_key}
        return [
            nps.handle(SandboxRequest("GET", f"{NPS}?per_page=100&page={page}", nps_auth)).body for page in (1, 2)
        ] + [intent.handle(SandboxRequest("GET", f"{INTENT}?limit=1000", intent_auth)).body]

    first, second = answers(tmp_path / "a"), answers(tmp_path / "b")
    assert first == second
    assert all(len(body) > 100 for body in first)
