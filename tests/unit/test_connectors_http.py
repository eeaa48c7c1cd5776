"""The HTTP edge: error table, Retry-After, retry caps, paginator, endpoint labels (no real sleeping)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from connectors.base import ApiStats, Paginator
from connectors.http import Action, RetryPolicy, action_for, classify, endpoint_label, parse_retry_after
from core.config.runtime import HttpLimits
from core.errors import (
    AuthError,
    BudgetExhaustedError,
    FatalApiError,
    RateLimitedError,
    RetriableApiError,
)


@pytest.mark.parametrize(
    ("status", "code", "message", "expected"),
    [
        (429, None, "", Action.RATE_LIMITED),
        (403, "REQUEST_LIMIT_EXCEEDED", "ConcurrentPerOrgLongTxn Limit exceeded", Action.RATE_LIMITED),
        (403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.", Action.BUDGET),
        (403, "INSUFFICIENT_ACCESS", "no", Action.FAIL),
        (401, "INVALID_SESSION_ID", "Session expired or invalid", Action.REAUTH),
        (400, "INVALID_FIELD", "No such column 'Foo__c'", Action.FAIL),
        (400, "UNABLE_TO_LOCK_ROW", "", Action.RETRY),
        (404, "NOT_FOUND", "", Action.FAIL),
        (423, None, "", Action.RETRY),
        (500, None, "", Action.RETRY),
        (503, None, "", Action.RETRY),
        (599, None, "", Action.RETRY),
        (418, None, "", Action.FAIL),
    ],
)
def test_error_table_maps_status_and_code_to_an_action(status, code, message, expected):
    assert action_for(status, code, message) is expected


def test_salesforce_error_list_body_becomes_a_fatal_error_naming_the_code():
    error = classify("salesforce", 400, '[{"message":"No such column \'Foo__c\'","errorCode":"INVALID_FIELD"}]',
                     what="GET /query")
    assert type(error) is FatalApiError
    assert error.code == "INVALID_FIELD"
    assert str(error) == "salesforce answered 400 INVALID_FIELD on GET /query: No such column 'Foo__c'"


def test_hubspot_429_body_becomes_rate_limited_with_retry_after():
    body = '{"status":"error","message":"You have reached your ten_secondly_rolling limit.","errorType":"RATE_LIMIT"}'
    error = classify("hubspot", 429, body, {"Retry-After": "3"})
    assert isinstance(error, RateLimitedError)
    assert error.retry_after == 3.0


def test_daily_limit_is_budget_exhausted_and_expired_token_is_auth_error():
    daily = classify("salesforce", 403, '[{"errorCode":"REQUEST_LIMIT_EXCEEDED","message":"TotalRequests Limit"}]')
    assert isinstance(daily, BudgetExhaustedError)
    assert isinstance(classify("salesforce", 401, '[{"errorCode":"INVALID_SESSION_ID","message":"x"}]'), AuthError)


def test_error_messages_are_redacted():
    error = classify("nps", 500, '{"message": "bad Authorization: Bearer abcdefghijkl"}')
    assert "abcdefghijkl" not in str(error)


def test_retry_after_accepts_seconds_and_http_dates():
    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after("Thu, 01 Jan 2026 12:00:30 GMT", now=now) == 30.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


def _policy(sleeps: list[float], **limits: float) -> tuple[RetryPolicy, ApiStats]:
    stats = ApiStats()
    return RetryPolicy(HttpLimits(**limits), system="x", stats=stats, sleep=sleeps.append), stats


def test_retries_honour_retry_after_then_back_off_exponentially():
    sleeps: list[float] = []
    policy, stats = _policy(sleeps, backoff_base_seconds=0.5)
    outcomes = [RateLimitedError("slow", system="x", retry_after=4.0), RetriableApiError("5xx", system="x"),
                RetriableApiError("5xx", system="x")]

    def call() -> str:
        if outcomes:
            raise outcomes.pop(0)
        return "ok"

    assert policy.run(call, endpoint="GET /x") == "ok"
    assert sleeps == [4.0, 1.0, 2.0]  # Retry-After, then 0.5 * 2**1, 0.5 * 2**2
    assert stats.snapshot("x").retries == 3


def test_retries_stop_at_max_attempts_and_reraise_the_last_error():
    sleeps: list[float] = []
    policy, _ = _policy(sleeps, max_attempts=3, backoff_base_seconds=0)
    calls = []

    def call() -> None:
        calls.append(1)
        raise RetriableApiError(f"fail {len(calls)}", system="x")

    with pytest.raises(RetriableApiError, match="fail 3"):
        policy.run(call, endpoint="GET /x")
    assert len(calls) == 3
    assert sleeps == [0.0, 0.0]


def test_retries_stop_when_the_total_wait_would_pass_the_cap():
    sleeps: list[float] = []
    policy, _ = _policy(sleeps, max_attempts=10, max_retry_seconds=10)

    def call() -> None:
        raise RateLimitedError("slow", system="x", retry_after=6.0)

    with pytest.raises(RateLimitedError):
        policy.run(call, endpoint="GET /x")
    assert sleeps == [6.0]  # a second 6 s wait would pass the 10 s cap


def test_fatal_errors_are_not_retried():
    sleeps: list[float] = []
    policy, stats = _policy(sleeps)
    calls = []

    def call() -> None:
        calls.append(1)
        raise FatalApiError("bad query", system="x")

    with pytest.raises(FatalApiError):
        policy.run(call, endpoint="GET /x")
    assert (len(calls), sleeps, stats.snapshot("x").retries) == (1, [], 0)


def test_paginator_refuses_a_repeated_page_token():
    paginator = Paginator("hubspot", "companies")
    paginator.advance("100")
    paginator.advance("200")
    with pytest.raises(FatalApiError, match="returned the page token '100' twice"):
        paginator.advance("100")


def test_paginator_finishes_on_an_empty_token():
    paginator = Paginator("hubspot", "companies")
    paginator.advance("")
    assert paginator.finished
    assert paginator.pages == 1


@pytest.mark.parametrize(
    ("method", "path", "label"),
    [
        ("GET", "/services/data/v59.0/query/", "GET /query"),
        ("GET", "/services/data/v59.0/query/01gDg0000000001-2000", "GET /query"),
        ("PATCH", "/services/data/v59.0/composite/sobjects", "PATCH /composite/sobjects"),
        ("GET", "/services/data/v59.0/sobjects/Account/001Dg0000000001AAA", "GET /sobjects/Account"),
    ],
)
def test_endpoint_labels_drop_versions_and_ids(method, path, label):
    assert endpoint_label(method, path) == label
