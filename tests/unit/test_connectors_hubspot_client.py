"""HubSpotClient with urllib3 faked: POST search retried on 429, 207 per-record errors, the rate limiters."""

from __future__ import annotations

import json
from typing import Any
from unittest import mock

import pytest
import urllib3
from pydantic import SecretStr

from connectors.base import ApiStats
from connectors.credentials import Credentials
from connectors.hubspot.client import HubSpotClient, SlidingWindowLimiter
from core.config.runtime import LimitsConfig
from core.errors import FatalApiError

CREDS = Credentials(hubspot_access_token=SecretStr("pat-na1-secret"), hubspot_base_url="http://127.0.0.1:9")
RATE_LIMITED = {"status": "error", "message": "You have reached your secondly limit.", "errorType": "RATE_LIMIT",
                "policyName": "SECONDLY"}


def _response(status: int, body: Any, headers: dict[str, str] | None = None) -> urllib3.HTTPResponse:
    return urllib3.HTTPResponse(body=json.dumps(body).encode(), status=status, preload_content=True,
                                headers={"Content-Type": "application/json", **(headers or {})})


class FakeHubSpot:
    """Answers queued per (method, path suffix); fails on a request it did not expect."""

    def __init__(self, answers: list[tuple[str, str, urllib3.HTTPResponse]]) -> None:
        self.answers = answers
        self.requests: list[tuple[str, str, Any]] = []

    def __call__(self, _pool: Any, method: str, url: str, **kw: Any) -> urllib3.HTTPResponse:
        body = json.loads(kw["body"]) if kw.get("body") else dict(kw.get("fields") or [])
        self.requests.append((method, url, body))
        expected_method, suffix, answer = self.answers.pop(0)
        assert (method, url.split("?", maxsplit=1)[0].endswith(suffix)) == (expected_method, True), (method, url)
        assert kw.get("timeout") is not None
        return answer


def patched(fake: FakeHubSpot) -> Any:
    """Patch PoolManager.request with a function, so the fake receives the pool as its first argument."""

    def request(pool: Any, method: str, url: str, **kw: Any) -> urllib3.HTTPResponse:
        return fake(pool, method, url, **kw)

    return mock.patch.object(urllib3.PoolManager, "request", request)


def _client(fake: FakeHubSpot, **limits: Any) -> tuple[HubSpotClient, list[float], ApiStats]:
    sleeps: list[float] = []
    stats = ApiStats()
    client = HubSpotClient(CREDS, limits=LimitsConfig(**limits), stats=stats, sleep=sleeps.append,
                           clock=lambda: 0.0 + len(sleeps))
    return client, sleeps, stats


SEARCH_PAGE = {"total": 1, "results": [{"id": "7", "properties": {"name": "Acme"}, "createdAt": "2026-01-01T00:00:00Z",
                                        "updatedAt": "2026-01-02T00:00:00Z", "archived": False}]}


def test_a_rate_limited_search_post_is_retried_after_retry_after():
    fake = FakeHubSpot([
        ("POST", "/crm/v3/objects/companies/search", _response(429, RATE_LIMITED, {"Retry-After": "1"})),
        ("POST", "/crm/v3/objects/companies/search", _response(200, SEARCH_PAGE)),
    ])
    with patched(fake):
        client, sleeps, stats = _client(fake)
        page = client.search("companies", [{"filters": []}], [], ["name"])
    assert [r["id"] for r in page["results"]] == ["7"]
    assert sleeps == [1.0]
    assert fake.requests[0][2] == fake.requests[1][2]  # the same body sent again
    snap = stats.snapshot("hubspot")
    assert (snap.calls, snap.retries, snap.rate_limited, snap.pages) == (2, 1, 1, 1)


def test_batch_update_returns_per_record_errors_from_a_207():
    multi = {"status": "COMPLETE", "startedAt": "2026-01-01T00:00:00Z", "completedAt": "2026-01-01T00:00:01Z",
             "results": [{"id": "1", "properties": {"health": "80"}, "createdAt": "2026-01-01T00:00:00Z",
                          "updatedAt": "2026-01-01T00:00:00Z", "archived": False}],
             "numErrors": 1,
             "errors": [{"status": "error", "category": "OBJECT_NOT_FOUND", "message": "Object not found",
                         "context": {"ids": ["2"]}}]}
    fake = FakeHubSpot([("POST", "/crm/v3/objects/companies/batch/update", _response(207, multi))])
    with patched(fake):
        client, _, _ = _client(fake)
        outcome = client.batch_update("companies", [{"id": "1", "properties": {"health": 80}},
                                                    {"id": "2", "properties": {"health": None, "flag": True}}])
    assert [r["id"] for r in outcome.results] == ["1"]
    assert [(e.ids, e.category) for e in outcome.errors] == [(("2",), "OBJECT_NOT_FOUND")]
    assert fake.requests[0][2]["inputs"][1]["properties"] == {"health": "", "flag": "true"}


def test_batch_updates_are_chunked_at_the_write_batch_size():
    ok = {"status": "COMPLETE", "startedAt": "2026-01-01T00:00:00Z", "completedAt": "2026-01-01T00:00:01Z",
          "results": []}
    fake = FakeHubSpot([("POST", "/batch/update", _response(200, ok)) for _ in range(3)])
    with patched(fake):
        client, _, _ = _client(fake, hubspot={"write_batch_size": 2})
        client.batch_update("companies", [{"id": str(i), "properties": {"x": i}} for i in range(5)])
    assert [len(r[2]["inputs"]) for r in fake.requests] == [2, 2, 1]


def test_a_bad_request_is_not_retried():
    bad = {"status": "error", "message": "Property values were not valid", "category": "VALIDATION_ERROR"}
    fake = FakeHubSpot([("PATCH", "/crm/v3/objects/companies/5", _response(400, bad))])
    with patched(fake):
        client, sleeps, _ = _client(fake)
        with pytest.raises(FatalApiError, match="VALIDATION_ERROR"):
            client.update("companies", "5", {"health": "x"})
    assert sleeps == []


def test_list_pages_follow_after_and_refuse_a_repeated_token():
    page = {"results": [], "paging": {"next": {"after": "100"}}}
    fake = FakeHubSpot([("GET", "/crm/v3/objects/companies", _response(200, page)) for _ in range(2)])
    with patched(fake):
        client, _, _ = _client(fake)
        with pytest.raises(FatalApiError, match="twice"):
            list(client.list_pages("companies", ["name"]))
    assert fake.requests[1][2]["after"] == "100"


def test_the_ten_second_bucket_waits_instead_of_exceeding_the_limit():
    now = [0.0]
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        now[0] += seconds

    limiter = SlidingWindowLimiter(3, 10.0, clock=lambda: now[0], sleep=sleep)
    for _ in range(7):
        limiter.acquire()
        now[0] += 1.0
    assert sleeps == [7.0, 7.0]  # calls 4 and 7 wait for the oldest call to leave the window
    assert limiter.waited_seconds == 14.0


def test_the_limiter_capacity_keeps_the_configured_headroom():
    fake = FakeHubSpot([])
    with patched(fake):
        client, _, _ = _client(fake, hubspot={"ten_second_limit": 100, "headroom_share": 0.2, "search_per_second": 4})
    assert (client.limiter.capacity, client.limiter.window) == (80, 10.0)
    assert (client.search_limiter.capacity, client.search_limiter.window) == (4, 1.0)


def test_property_groups_lists_the_groups_of_an_object_type_as_json():
    groups = {"results": [{"name": "companyinformation", "label": "Company information", "displayOrder": -1,
                           "archived": False},
                          {"name": "customer_health", "label": "Customer health", "displayOrder": 3,
                           "archived": False}]}
    fake = FakeHubSpot([("GET", "/crm/v3/properties/companies/groups", _response(200, groups))])
    with patched(fake):
        client, _, stats = _client(fake)
        listed = client.property_groups("companies")
    assert [g["name"] for g in listed] == ["companyinformation", "customer_health"]
    assert listed[1]["displayOrder"] == 3
    assert stats.snapshot("hubspot").calls == 1


def test_owners_are_listed_at_the_largest_page_hubspot_serves():
    first = {"results": [{"id": str(n)} for n in range(500)], "paging": {"next": {"after": "500"}}}
    last = {"results": [{"id": "500"}]}
    fake = FakeHubSpot([("GET", "/crm/v3/owners/", _response(200, first)),
                        ("GET", "/crm/v3/owners/", _response(200, last))])
    with patched(fake):
        client, _, stats = _client(fake)
        pages = list(client.owners())
    assert [len(p) for p in pages] == [500, 1]
    assert [(int(r[2]["limit"]), r[2].get("after")) for r in fake.requests] == [(500, None), (500, "500")]
    assert (stats.snapshot("hubspot").calls, stats.snapshot("hubspot").pages) == (2, 2)


def test_associations_of_a_search_page_are_read_in_one_batch_of_up_to_1000_ids():
    def answer(ids: range) -> urllib3.HTTPResponse:
        results = [{"from": {"id": str(i)}, "to": [{"toObjectId": 9000 + i}]} for i in ids]
        return _response(200, {"status": "COMPLETE", "results": results, "startedAt": "2026-01-01T00:00:00Z",
                               "completedAt": "2026-01-01T00:00:01Z"})

    fake = FakeHubSpot([("POST", "/crm/v4/associations/calls/companies/batch/read", answer(range(1000))),
                        ("POST", "/crm/v4/associations/calls/companies/batch/read", answer(range(1000, 1500)))])
    with patched(fake):
        client, _, _ = _client(fake)
        found = client.associations("calls", [str(i) for i in range(1500)], "companies")
    assert [len(r[2]["inputs"]) for r in fake.requests] == [1000, 500]
    assert (len(found), found["1499"]) == (1500, ["10499"])
