"""The HTTP edge every connector goes through: the error table, tenacity retries with Retry-After, timeouts.

Errors are classified here once (``classify``): an HTTP status plus the API's error code map to an
``Action`` and then to an error of ``core.errors``. ``RetryPolicy`` retries only ``RetriableApiError``
(429, 5xx, timeouts, resets, locked rows), honours ``Retry-After``, caps attempts and total waiting,
logs every sleep and counts it in ``ApiStats``. ``EdgeAdapter`` puts all of that under a requests
Session (timeouts, call counting, re-authentication on 401) so simple-salesforce, NPS, intent and
generic sources share it; the HubSpot client calls ``RetryPolicy.run`` around its urllib3 calls.
"""

from __future__ import annotations

import email.utils
import enum
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from tenacity import RetryCallState, Retrying, retry_if_exception_type

from connectors.base import ApiStats
from core.config.runtime import HttpLimits
from core.errors import (
    ApiError,
    AuthError,
    BudgetExhaustedError,
    FatalApiError,
    RateLimitedError,
    RetriableApiError,
)
from core.redaction import redact
from core.tls import make_session

log = logging.getLogger(__name__)
T = TypeVar("T")

MAX_BACKOFF_SECONDS = 60.0


class Action(enum.StrEnum):
    """What to do about a failed call."""

    RETRY = "retry"  # transient: try again after a backoff
    RATE_LIMITED = "rate_limited"  # slow down: wait Retry-After (or a backoff), then try again
    REAUTH = "reauth"  # the token expired: log in again, then try again
    BUDGET = "budget"  # the daily API budget is used up: stop for this run
    SKIP_RECORD = "skip_record"  # one record is bad: skip it, keep going
    FAIL = "fail"  # retrying will not help


# (status, error code) -> action. ``None`` matches any status or any code. Looked up most specific first.
ERROR_TABLE: dict[tuple[int | None, str | None], Action] = {
    (401, None): Action.REAUTH,
    (401, "INVALID_SESSION_ID"): Action.REAUTH,
    (403, "REQUEST_LIMIT_EXCEEDED"): Action.RATE_LIMITED,  # concurrency limits; daily limit: see classify()
    (403, None): Action.FAIL,  # permission refused
    (404, None): Action.FAIL,
    (400, None): Action.FAIL,  # malformed query, invalid field, validation error
    (400, "UNABLE_TO_LOCK_ROW"): Action.RETRY,
    (400, "QUERY_TIMEOUT"): Action.RETRY,
    (400, "SERVER_UNAVAILABLE"): Action.RETRY,
    (None, "UNABLE_TO_LOCK_ROW"): Action.RETRY,
    (None, "RATE_LIMIT"): Action.RATE_LIMITED,
    (408, None): Action.RETRY,
    (409, None): Action.FAIL,
    (412, "JOB_NOT_COMPLETE"): Action.RETRY,
    (423, None): Action.RETRY,  # HubSpot: record locked, wait at least 2 s
    (429, None): Action.RATE_LIMITED,
    (500, None): Action.RETRY,
    (502, None): Action.RETRY,
    (503, None): Action.RETRY,
    (504, None): Action.RETRY,
    (521, None): Action.RETRY,
}

# Salesforce's daily-limit variant of REQUEST_LIMIT_EXCEEDED; the concurrency variant is worth a retry.
_DAILY_LIMIT_MARKERS = ("TotalRequests", "daily", "Daily")


def action_for(status: int | None, code: str | None, message: str = "") -> Action:
    """The action for an HTTP status and API error code (see ``ERROR_TABLE``)."""
    if code == "REQUEST_LIMIT_EXCEEDED" and any(m in message for m in _DAILY_LIMIT_MARKERS):
        return Action.BUDGET
    for key in ((status, code), (None, code), (status, None)):
        if key in ERROR_TABLE:
            return ERROR_TABLE[key]
    if status is not None and status >= 500:
        return Action.RETRY
    return Action.FAIL


@dataclass(frozen=True)
class ErrorBody:
    """The code and message an API put in an error response, whatever its shape."""

    code: str | None
    message: str


def parse_error_body(text: str) -> ErrorBody:
    """Salesforce ``[{"errorCode","message"}]``, HubSpot ``{"category","message","policyName"}`` or plain text."""
    try:
        body = json.loads(text) if text else None
    except ValueError:
        return ErrorBody(None, text[:500])
    if isinstance(body, list) and body and isinstance(body[0], dict):
        first = body[0]
        return ErrorBody(_str_or_none(first.get("errorCode")), str(first.get("message", ""))[:500])
    if isinstance(body, dict):
        code = body.get("errorCode") or body.get("errorType") or body.get("category") or body.get("error")
        message = body.get("message") or body.get("error_description") or body.get("error") or ""
        return ErrorBody(_str_or_none(code), str(message)[:500])
    return ErrorBody(None, text[:500])


def _str_or_none(value: Any) -> str | None:
    return str(value) if value not in (None, "") else None


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (seconds, or an HTTP date); None when absent or unusable."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def classify(
    system: str,
    status: int,
    body_text: str,
    headers: Mapping[str, str] | None = None,
    *,
    what: str = "",
) -> ApiError:
    """The error for a failed response, by the error table; the message names the system, call and code."""
    headers = headers or {}
    body = parse_error_body(body_text)
    action = action_for(status, body.code, body.message)
    code_text = f" {body.code}" if body.code else ""
    where = f" on {what}" if what else ""
    message = redact(f"{system} answered {status}{code_text}{where}: {body.message or 'no message'}")
    kw: dict[str, Any] = {"system": system, "status": status, "code": body.code, "headers": dict(headers)}
    if action is Action.RATE_LIMITED:
        return RateLimitedError(message, retry_after=parse_retry_after(headers.get("Retry-After")), **kw)
    if action is Action.RETRY:
        return RetriableApiError(message, **kw)
    if action is Action.REAUTH:
        return AuthError(message, **kw)
    if action is Action.BUDGET:
        return BudgetExhaustedError(message, **kw)
    return FatalApiError(message, **kw)


class RetryPolicy:
    """Tenacity retries for one system: ``RetriableApiError`` only, Retry-After honoured, attempts and waits capped.

    ``sleep`` is injectable so tests never wait for real. Every retry is logged and counted in ``stats``.
    """

    def __init__(
        self,
        limits: HttpLimits,
        *,
        system: str,
        stats: ApiStats,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.limits = limits
        self.system = system
        self.stats = stats
        self.sleep = sleep

    def wait_seconds(self, attempt: int, error: BaseException | None) -> float:
        """Seconds before try ``attempt + 1``: Retry-After when the API said, else exponential backoff."""
        if isinstance(error, RateLimitedError) and error.retry_after is not None:
            return min(error.retry_after, self.limits.max_retry_seconds)
        if isinstance(error, ApiError) and error.status == 401:
            return 0.0  # a new token was just fetched: try again at once
        if isinstance(error, ApiError) and error.status == 423:
            return max(2.0, self.limits.backoff_base_seconds)
        return float(min(MAX_BACKOFF_SECONDS, self.limits.backoff_base_seconds * (2 ** (attempt - 1))))

    def _wait(self, state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome is not None else None
        return self.wait_seconds(state.attempt_number, error)

    def _stop(self, state: RetryCallState) -> bool:
        if state.attempt_number >= self.limits.max_attempts:
            return True
        return state.idle_for + state.upcoming_sleep > self.limits.max_retry_seconds

    def _before_sleep(self, state: RetryCallState, endpoint: str) -> None:
        error = state.outcome.exception() if state.outcome is not None else None
        self.stats.retry(self.system)
        log.warning(
            "%s %s failed (attempt %d): %s; retrying in %.2f s",
            self.system,
            endpoint,
            state.attempt_number,
            redact(str(error)),
            state.upcoming_sleep,
            extra={"source": self.system},
        )

    def run(self, fn: Callable[[], T], *, endpoint: str) -> T:
        """Call ``fn`` until it succeeds, raises a non-retriable error, or the attempts/wait caps are reached."""
        retrying = Retrying(
            retry=retry_if_exception_type(RetriableApiError),
            wait=self._wait,
            stop=self._stop,
            sleep=self.sleep,
            reraise=True,
            before_sleep=lambda state: self._before_sleep(state, endpoint),
        )
        return retrying(fn)


class TokenHolder:
    """The current access token of a session, renewed by ``renew`` (a login flow) when one is configured."""

    def __init__(self, token: str | None, renew: Callable[[], str] | None = None) -> None:
        self._lock = threading.Lock()
        self.token = token
        self.renew_fn = renew
        self.renewals = 0

    def renew(self, stale: str | None) -> str | None:
        """A fresh token (logging in again unless another thread already did); None without a login flow."""
        if self.renew_fn is None:
            return None
        with self._lock:
            if self.token is not None and self.token != stale:
                return self.token
            self.token = self.renew_fn()
            self.renewals += 1
            return self.token


def endpoint_label(method: str, path: str) -> str:
    """A short label of a call for the per-endpoint counters: the method and the path without ids or versions.

    ``GET /services/data/v59.0/query/01gXX-2000`` -> ``GET /query``.
    """
    parts = [p for p in path.split("?", 1)[0].split("/") if p]
    kept = [
        p
        for p in parts
        if p not in ("services", "data") and not any(c.isdigit() for c in p)
    ]
    return f"{method} /{'/'.join(kept)}"


class EdgeAdapter(HTTPAdapter):
    """A requests transport adapter: default timeouts, retries by ``RetryPolicy``, 401 re-login, call counting.

    Every response of 400 or more becomes the classified ``ApiError`` (after retries), so the libraries
    above never see an error response. ``on_response`` sees every response (e.g. ``Sforce-Limit-Info``).
    """

    def __init__(
        self,
        policy: RetryPolicy,
        *,
        token: TokenHolder | None = None,
        on_response: Callable[[requests.Response], None] | None = None,
        label: Callable[[str, str], str] = endpoint_label,
    ) -> None:
        super().__init__(pool_connections=4, pool_maxsize=8, max_retries=0)
        self.policy = policy
        self.token = token
        self.on_response = on_response
        self.label = label
        self.timeout = (policy.limits.connect_timeout_seconds, policy.limits.read_timeout_seconds)

    def send(  # type: ignore[override]
        self, request: requests.PreparedRequest, **kwargs: Any
    ) -> requests.Response:
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self.timeout
        method = request.method or "GET"
        path = urlsplit(request.url or "").path
        endpoint = self.label(method, path)
        system = self.policy.system
        reauthed = False

        def attempt() -> requests.Response:
            nonlocal reauthed
            if self.token is not None and self.token.token and "Authorization" in request.headers:
                request.headers["Authorization"] = f"Bearer {self.token.token}"
            self.policy.stats.call(system, endpoint)
            try:
                response = super(EdgeAdapter, self).send(request, **kwargs)
            except (requests.ConnectionError, requests.Timeout) as exc:
                raise RetriableApiError(
                    f"{system}: {type(exc).__name__} on {endpoint}", system=system, detail=redact(str(exc))
                ) from exc
            if self.on_response is not None:
                self.on_response(response)
            if response.status_code < 400:
                return response
            error = classify(system, response.status_code, response.text, response.headers, what=endpoint)
            if isinstance(error, RateLimitedError):
                self.policy.stats.rate_limited(system)
            if response.status_code == 401 and isinstance(error, AuthError) and not reauthed and self.token:
                stale = self.token.token
                if self.token.renew(stale) is not None:
                    reauthed = True
                    log.info("%s: access token expired; logged in again", system, extra={"source": system})
                    raise RetriableApiError(error.user_message, system=system, status=401, code=error.code)
            if isinstance(error, AuthError):
                error = AuthError(
                    f"{error.user_message} (the access token was refused"
                    f"{' again after logging in' if reauthed else ' and no login flow is configured to renew it'})",
                    system=system,
                    status=error.status,
                    code=error.code,
                )
            raise error

        return self.policy.run(attempt, endpoint=endpoint)


def edge_session(
    policy: RetryPolicy,
    *,
    ca_bundle: str | None,
    token: TokenHolder | None = None,
    on_response: Callable[[requests.Response], None] | None = None,
) -> requests.Session:
    """A requests Session (from ``core.tls.make_session``) with an ``EdgeAdapter`` on http and https."""
    session = make_session(ca_bundle)
    adapter = EdgeAdapter(policy, token=token, on_response=on_response)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


class JsonHttpClient:
    """A JSON-over-HTTP API (NPS, intent, generic sources) behind the edge: auth header, timeouts, retries."""

    def __init__(
        self,
        *,
        system: str,
        base_url: str,
        limits: HttpLimits,
        stats: ApiStats,
        headers: Mapping[str, str] | None = None,
        ca_bundle: str | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.system = system
        self.base_url = base_url.rstrip("/")
        self.stats = stats
        self.policy = RetryPolicy(limits, system=system, stats=stats, sleep=sleep)
        self.session = edge_session(self.policy, ca_bundle=ca_bundle)
        self.session.headers.update({"Accept": "application/json", **dict(headers or {})})

    def url(self, path_or_url: str) -> str:
        if path_or_url.startswith(("http://", "https://")):
            return path_or_url
        return f"{self.base_url}/{path_or_url.lstrip('/')}"

    def get_json(self, path_or_url: str, params: Mapping[str, Any] | None = None) -> tuple[Any, requests.Response]:
        """GET a JSON document; returns it with the response (for Link headers). Raises a classified ApiError."""
        response = self.session.get(self.url(path_or_url), params=dict(params or {}))
        try:
            return response.json(), response
        except ValueError as exc:
            raise FatalApiError(
                f"{self.system}: {response.request.path_url if response.request else path_or_url} "
                f"did not answer JSON ({response.headers.get('Content-Type', 'no content type')})",
                system=self.system,
                status=response.status_code,
            ) from exc
