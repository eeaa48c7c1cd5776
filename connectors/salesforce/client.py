"""``SalesforceClient``: simple-salesforce behind the HTTP edge, with login flows and the daily-limit budget.

Reads (the connector) and writes (``writeback``) both go through one client so one retry policy and one
API budget cover them. Every request goes through ``connectors.http.EdgeAdapter``: connect/read
timeouts, tenacity retries of 5xx / connection errors / ``REQUEST_LIMIT_EXCEEDED`` (concurrency) with
Retry-After, and on 401 ``INVALID_SESSION_ID`` a new login (JWT bearer, client credentials or password
at the configured login URL) then the same call again. ``Sforce-Limit-Info`` updates ``api_usage`` on
every response; reads stop at ``limits.salesforce.pull_share_of_daily_limit`` of the org's daily
requests and writes at ``1 - reserve_share`` (``BudgetExhaustedError``).

Errors: every failed call raises an ``ApiError`` subclass from ``core.errors`` (never a simple-salesforce
exception): ``FatalApiError`` for bad queries and missing objects/fields, ``AuthError`` when the token
is refused and cannot be renewed, ``BudgetExhaustedError``, and ``RetriableApiError`` when retries ran out.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any, Literal

import requests
from simple_salesforce.api import Salesforce
from simple_salesforce.exceptions import SalesforceError

from connectors.base import ApiStats, Paginator
from connectors.credentials import Credentials
from connectors.http import RetryPolicy, TokenHolder, classify, edge_session
from core.config.runtime import LimitsConfig
from core.errors import ApiError, AuthError, BudgetExhaustedError, ConfigError, FatalApiError
from core.redaction import redact

log = logging.getLogger(__name__)
SYSTEM = "salesforce"

AuthFlow = Literal["auto", "token", "jwt", "client_credentials", "password"]
_LIMIT_INFO = re.compile(r"api-usage=(\d+)/(\d+)")
_BULK_DONE = ("JobComplete", "Failed", "Aborted")
COMPOSITE_MAX = 25  # subrequests in one Composite call


@dataclass(frozen=True)
class SaveError:
    status_code: str
    message: str
    fields: tuple[str, ...] = ()


@dataclass(frozen=True)
class SaveResult:
    """The outcome of one record of a composite create/update, in request order."""

    id: str | None
    success: bool
    errors: tuple[SaveError, ...] = ()


@dataclass
class Bulk2Result:
    """The outcome of a Bulk API 2.0 ingest job: rows that succeeded and rows that failed (with ``sf__Error``)."""

    job_ids: list[str] = field(default_factory=list)
    successful: list[dict[str, str]] = field(default_factory=list)
    failed: list[dict[str, str]] = field(default_factory=list)


@dataclass(frozen=True)
class ApiUsage:
    used: int
    max: int


class SalesforceLogin:
    """A login flow against ``{login_url}/services/oauth2/token``: returns (access token, instance URL)."""

    def __init__(self, flow: AuthFlow, credentials: Credentials, session: requests.Session) -> None:
        self.flow = flow
        self.credentials = credentials
        self.session = session
        self.instance_url: str | None = None

    def _form(self) -> dict[str, str]:
        c = self.credentials
        if self.flow == "jwt":
            import jwt

            key_file = c.salesforce_private_key_file
            assert key_file is not None
            try:
                key = Path(key_file).read_text()
            except OSError as exc:
                raise ConfigError(f"SALESFORCE_PRIVATE_KEY_FILE: cannot read {key_file} ({exc.strerror})") from None
            claims = {
                "iss": c.salesforce_consumer_key,
                "sub": c.salesforce_username,
                "aud": c.salesforce_login_url.rstrip("/"),
                "exp": int((datetime.now(UTC) + timedelta(minutes=3)).timestamp()),
            }
            assertion = jwt.encode(claims, key, algorithm="RS256")
            return {"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": assertion}
        if self.flow == "client_credentials":
            return {
                "grant_type": "client_credentials",
                "client_id": c.salesforce_consumer_key or "",
                "client_secret": c.secret("salesforce_client_secret") or "",
            }
        return {
            "grant_type": "password",
            "client_id": c.salesforce_consumer_key or "",
            "client_secret": c.secret("salesforce_client_secret") or "",
            "username": c.salesforce_username or "",
            "password": (c.secret("salesforce_password") or "") + (c.secret("salesforce_security_token") or ""),
        }

    def __call__(self) -> str:
        url = self.credentials.salesforce_login_url.rstrip("/") + "/services/oauth2/token"
        try:
            response = self.session.post(url, data=self._form())
        except ApiError as exc:
            raise AuthError(
                f"Salesforce login ({self.flow}) at {self.credentials.salesforce_login_url} failed: {exc}",
                system=SYSTEM,
                status=exc.status,
                code=exc.code,
            ) from None
        body = response.json()
        token = body.get("access_token")
        if not token:
            raise AuthError(f"Salesforce login ({self.flow}) answered without an access_token", system=SYSTEM)
        self.instance_url = body.get("instance_url") or self.instance_url
        return str(token)


def choose_flow(credentials: Credentials, flow: AuthFlow = "auto") -> AuthFlow:
    """The login flow the credentials support (``auto``: JWT, then client credentials, then password, then token)."""
    c = credentials
    if flow != "auto":
        return flow
    if c.salesforce_private_key_file and c.salesforce_consumer_key and c.salesforce_username:
        return "jwt"
    if c.salesforce_password and c.salesforce_username and c.salesforce_consumer_key:
        return "password"
    if c.salesforce_client_secret and c.salesforce_consumer_key:
        return "client_credentials"
    return "token"


_REQUIRED: dict[str, tuple[str, ...]] = {
    "token": ("salesforce_instance_url", "salesforce_access_token"),
    "jwt": ("salesforce_consumer_key", "salesforce_username", "salesforce_private_key_file"),
    "client_credentials": ("salesforce_consumer_key", "salesforce_client_secret"),
    "password": ("salesforce_consumer_key", "salesforce_client_secret", "salesforce_username", "salesforce_password"),
}


class SalesforceClient:
    """One Salesforce org. Thread-safe for counting; use one client per run, shared by reads and writes.

    Build it with ``SalesforceClient(credentials, limits=..., stats=...)``.
    """

    def __init__(
        self,
        credentials: Credentials,
        *,
        limits: LimitsConfig,
        stats: ApiStats | None = None,
        api_version: str = "59.0",
        flow: AuthFlow = "auto",
        sleep: Callable[[float], None] = time.sleep,
        bulk_poll_seconds: float = 1.0,
    ) -> None:
        self.limit_config = limits
        self.stats = stats or ApiStats()
        self.api_version = api_version
        self.sleep = sleep
        self.bulk_poll_seconds = bulk_poll_seconds
        self.flow = choose_flow(credentials, flow)
        credentials.require(*_REQUIRED[self.flow], why=f"Salesforce ({self.flow} auth)")
        self._usage_lock = threading.Lock()
        self._usage: ApiUsage | None = None
        policy = RetryPolicy(limits.http, system=SYSTEM, stats=self.stats, sleep=sleep)
        login: SalesforceLogin | None = None
        if self.flow != "token":
            login_session = edge_session(policy, ca_bundle=credentials.ca_path)
            login = SalesforceLogin(self.flow, credentials, login_session)
        self.token = TokenHolder(credentials.secret("salesforce_access_token"), login)
        self.session = edge_session(policy, ca_bundle=credentials.ca_path, token=self.token, on_response=self._observe)
        if login is not None and self.token.token is None:
            self.token.token = login()
        instance_url = (login.instance_url if login else None) or credentials.salesforce_instance_url
        if not instance_url:
            raise ConfigError("Salesforce needs SALESFORCE_INSTANCE_URL (the login answer named no instance_url)")
        self.instance_url = instance_url.rstrip("/")
        self.sf = Salesforce(
            instance_url=self.instance_url,
            session_id=self.token.token,
            session=self.session,
            version=api_version,
        )

    # --- budget -------------------------------------------------------------------------------------

    def _observe(self, response: requests.Response) -> None:
        info = response.headers.get("Sforce-Limit-Info")
        if info:
            match = _LIMIT_INFO.search(info)
            if match:
                with self._usage_lock:
                    self._usage = ApiUsage(int(match.group(1)), int(match.group(2)))

    @property
    def api_usage(self) -> ApiUsage | None:
        """The org's daily API requests (used, max) as last reported by Salesforce; None before any call."""
        with self._usage_lock:
            return self._usage

    def budget_left(self, *, write: bool = False) -> int | None:
        """Requests this agent may still make today: up to the pull share (reads) or to 1 - reserve (writes)."""
        usage = self.api_usage
        if usage is None or usage.max <= 0:
            return None
        sf = self.limit_config.salesforce
        share = (1 - sf.reserve_share) if write else min(sf.pull_share_of_daily_limit, 1 - sf.reserve_share)
        return int(usage.max * share) - usage.used

    def _guard(self, *, write: bool = False) -> None:
        left = self.budget_left(write=write)
        if left is not None and left <= 0:
            usage = self.api_usage
            assert usage is not None
            kind = "writes" if write else "pulls"
            raise BudgetExhaustedError(
                f"Salesforce daily API budget for {kind} is used up ({usage.used}/{usage.max} requests today); "
                "the rest waits for the next run",
                system=SYSTEM,
            )

    # --- generic calls ------------------------------------------------------------------------------

    def _wrap(self, fn: Callable[[], Any], what: str) -> Any:
        try:
            return fn()
        except ApiError:
            raise
        except SalesforceError as exc:
            raise FatalApiError(
                redact(f"Salesforce {what} failed: {exc}"), system=SYSTEM, status=getattr(exc, "status", None)
            ) from exc

    def limits(self) -> dict[str, Any]:
        """``/limits``: the org's limits; also refreshes ``api_usage`` from ``DailyApiRequests``."""
        body: dict[str, Any] = self._wrap(self.sf.limits, "limits")
        daily = body.get("DailyApiRequests") or {}
        if "Max" in daily and "Remaining" in daily:
            with self._usage_lock:
                self._usage = ApiUsage(int(daily["Max"]) - int(daily["Remaining"]), int(daily["Max"]))
        return body

    def restful(
        self,
        path: str,
        method: str = "GET",
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        write: bool | None = None,
    ) -> Any:
        """A REST call relative to ``/services/data/vXX.X/``; returns parsed JSON (None on 204)."""
        self._guard(write=method != "GET" if write is None else write)
        kwargs: dict[str, Any] = {}
        if json is not None:
            kwargs["json"] = json
        return self._wrap(lambda: self.sf.restful(path, params=dict(params or {}), method=method, **kwargs), path)

    def describe(self, sobject: str) -> dict[str, Any]:
        """The object's describe (fields with name, type, updateable...); FatalApiError when it does not exist."""
        result: dict[str, Any] = self.restful(f"sobjects/{sobject}/describe/")
        return result

    def describe_global(self) -> dict[str, Any]:
        result: dict[str, Any] = self.restful("sobjects/")
        return result

    def describe_many(self, sobjects: Sequence[str]) -> dict[str, dict[str, Any] | ApiError]:
        """Describes of several objects, ``COMPOSITE_MAX`` per Composite call (a Composite call counts once toward
        the daily limit, whatever its subrequests); keyed by the names asked for.

        A subrequest that failed is that object's classified error, so one object the user cannot see does not
        stop the others; a failed Composite call raises as any call does.
        """
        out: dict[str, dict[str, Any] | ApiError] = {}
        names = list(dict.fromkeys(sobjects))
        for start in range(0, len(names), COMPOSITE_MAX):
            chunk = names[start : start + COMPOSITE_MAX]
            subrequests = [
                {"method": "GET", "url": f"/services/data/v{self.api_version}/sobjects/{name}/describe",
                 "referenceId": name}
                for name in chunk
            ]
            body = self.restful("composite", "POST", json={"allOrNone": False, "compositeRequest": subrequests},
                                write=False)
            answers = {str(a.get("referenceId")): a for a in (body or {}).get("compositeResponse", [])}
            for name in chunk:
                out[name] = _subrequest_result(answers.get(name), f"describe of {name} (composite)")
        return out

    def record_counts(self, sobjects: Sequence[str]) -> dict[str, int]:
        """``limits/recordCount``: Salesforce's approximate record counts (deleted and archived rows left out, updated
        at no fixed interval), keyed by lower-case object name. Objects Salesforce does not list are absent."""
        body = self.restful("limits/recordCount", params={"sObjects": ",".join(dict.fromkeys(sobjects))})
        return {str(o["name"]).lower(): int(o["count"]) for o in (body or {}).get("sObjects", [])}

    # --- queries ------------------------------------------------------------------------------------

    def query_pages(self, soql: str, *, include_deleted: bool = False) -> Iterator[list[dict[str, Any]]]:
        """The result pages of a SOQL query (``queryAll`` with deleted rows when ``include_deleted``).

        Pages hold up to ``limits.salesforce.query_batch_size`` records; the ``attributes`` key is removed.
        """
        headers = {"Sforce-Query-Options": f"batchSize={self.limit_config.salesforce.query_batch_size}"}
        paginator = Paginator(SYSTEM, soql[:80])
        self._guard()
        result = self._wrap(lambda: self.sf.query(soql, include_deleted=include_deleted, headers=headers), "query")
        while True:
            self.stats.page(SYSTEM)
            records = [_strip_attributes(r) for r in result.get("records", [])]
            next_url = None if result.get("done", True) else result.get("nextRecordsUrl")
            paginator.advance(next_url)
            yield records
            if paginator.finished:
                return
            self._guard()
            result = self._query_more(paginator.token or "", headers)

    def _query_more(self, url: str, headers: dict[str, str]) -> Any:
        return self._wrap(lambda: self.sf.query_more(url, identifier_is_url=True, headers=headers), "query_more")

    def query_iter(self, soql: str, *, include_deleted: bool = False) -> Iterator[dict[str, Any]]:
        """Every record of a SOQL query, page after page (memory holds one page)."""
        for page in self.query_pages(soql, include_deleted=include_deleted):
            yield from page

    def count(self, sobject: str, where: str = "") -> int:
        """``SELECT COUNT() FROM sobject [WHERE ...]``: the number of matching records."""
        soql = f"SELECT COUNT() FROM {sobject}" + (f" WHERE {where}" if where else "")
        self._guard()
        result = self._wrap(lambda: self.sf.query(soql), "count")
        return int(result.get("totalSize", 0))

    # --- writes -------------------------------------------------------------------------------------

    def create(self, sobject: str, fields: Mapping[str, Any]) -> str:
        """Create one record; returns its Id."""
        result = self.restful(f"sobjects/{sobject}/", "POST", json=dict(fields))
        if not isinstance(result, dict) or not result.get("id"):
            raise FatalApiError(f"Salesforce create {sobject} returned no id: {result!r}", system=SYSTEM)
        return str(result["id"])

    def update(self, sobject: str, record_id: str, fields: Mapping[str, Any]) -> None:
        """Update one record's fields."""
        self.restful(f"sobjects/{sobject}/{record_id}", "PATCH", json=dict(fields))

    def get(self, sobject: str, record_id: str, fields: Sequence[str] | None = None) -> dict[str, Any]:
        params = {"fields": ",".join(fields)} if fields else None
        result: dict[str, Any] = self.restful(f"sobjects/{sobject}/{record_id}", params=params)
        return _strip_attributes(result)

    def _composite(
        self, method: str, records: Sequence[Mapping[str, Any]], all_or_none: bool, sobject: str | None
    ) -> list[SaveResult]:
        out: list[SaveResult] = []
        size = self.limit_config.salesforce.write_batch_size
        for start in range(0, len(records), size):
            chunk = []
            for record in records[start : start + size]:
                item = dict(record)
                if "attributes" not in item:
                    if sobject is None:
                        raise ValueError("each record needs attributes.type, or pass sobject=")
                    item["attributes"] = {"type": sobject}
                chunk.append(item)
            body = self.restful("composite/sobjects", method, json={"allOrNone": all_or_none, "records": chunk})
            out.extend(_save_result(r) for r in (body or []))
        return out

    def composite_update(
        self, records: Sequence[Mapping[str, Any]], all_or_none: bool = False, *, sobject: str | None = None
    ) -> list[SaveResult]:
        """PATCH ``composite/sobjects`` in chunks of ``write_batch_size`` (<= 200); one SaveResult per record.

        Each record has ``Id`` (or ``id``) and ``attributes: {"type": ...}`` (added from ``sobject`` when given).
        """
        return self._composite("PATCH", records, all_or_none, sobject)

    def composite_create(
        self, records: Sequence[Mapping[str, Any]], all_or_none: bool = False, *, sobject: str | None = None
    ) -> list[SaveResult]:
        """POST ``composite/sobjects`` in chunks; one SaveResult (with the new id) per record, in order."""
        return self._composite("POST", records, all_or_none, sobject)

    def tooling_create_custom_field(
        self,
        sobject: str,
        name: str,
        *,
        label: str,
        field_type: str = "Text",
        length: int | None = 255,
        precision: int | None = None,
        scale: int | None = None,
        picklist: Sequence[str] = (),
        description: str = "",
        default_value: str | None = None,
    ) -> str:
        """Create ``sobject.name`` (``name`` ends in ``__c``) through the Tooling API; returns the CustomField id.

        ``default_value`` is the metadata's ``defaultValue`` formula text; Checkbox fields need one (``"false"``).
        """
        metadata: dict[str, Any] = {"label": label, "type": field_type, "description": description}
        if default_value is not None:
            metadata["defaultValue"] = default_value
        if field_type in ("Text", "TextArea", "LongTextArea") and length:
            metadata["length"] = length
        if precision is not None:
            metadata["precision"] = precision
            metadata["scale"] = scale or 0
        if picklist:
            metadata["valueSet"] = {
                "valueSetDefinition": {"value": [{"fullName": v, "label": v, "default": False} for v in picklist]}
            }
        result = self.restful(
            "tooling/sobjects/CustomField/", "POST", json={"FullName": f"{sobject}.{name}", "Metadata": metadata}
        )
        return str((result or {}).get("id", ""))

    # --- Bulk API 2.0 -------------------------------------------------------------------------------

    def _bulk_url(self, path: str) -> str:
        return f"{self.instance_url}/services/data/v{self.api_version}/jobs/{path}"

    def _bulk_wait(self, kind: str, job_id: str) -> dict[str, Any]:
        delay = self.bulk_poll_seconds
        while True:
            self._guard()
            info: dict[str, Any] = self.session.get(self._bulk_url(f"{kind}/{job_id}"), headers=self.sf.headers).json()
            if info.get("state") in _BULK_DONE:
                if info["state"] != "JobComplete":
                    raise FatalApiError(
                        f"Salesforce Bulk 2.0 {kind} job {job_id} ended {info['state']}: "
                        f"{info.get('errorMessage', 'no message')}",
                        system=SYSTEM,
                    )
                return info
            self.sleep(delay)
            delay = min(10.0, max(delay * 1.5, 0.05))

    def bulk2_query(
        self, soql: str, *, include_deleted: bool = False, max_records: int = 10_000
    ) -> Iterator[list[dict[str, str]]]:
        """Run a Bulk API 2.0 query job and yield its CSV result pages as rows of strings ('' for null)."""
        self._guard()
        body = {"operation": "queryAll" if include_deleted else "query", "query": soql}
        job = self.session.post(self._bulk_url("query"), json=body, headers=self.sf.headers).json()
        job_id = str(job["id"])
        self._bulk_wait("query", job_id)
        paginator = Paginator(SYSTEM, f"bulk query job {job_id}")
        locator = ""
        while True:
            self._guard()
            params: dict[str, Any] = {"maxRecords": max_records}
            if locator:
                params["locator"] = locator
            response = self.session.get(
                self._bulk_url(f"query/{job_id}/results"),
                params=params,
                headers={**self.sf.headers, "Accept": "text/csv"},
            )
            self.stats.page(SYSTEM)
            rows = list(csv.DictReader(io.StringIO(response.content.decode("utf-8"))))
            next_locator = response.headers.get("Sforce-Locator", "")
            paginator.advance(None if next_locator in ("", "null") else next_locator)
            yield rows
            if paginator.finished:
                return
            locator = paginator.token or ""

    def bulk2_ingest(
        self,
        sobject: str,
        operation: Literal["insert", "update", "upsert", "delete"],
        records: Sequence[Mapping[str, Any]],
        *,
        external_id_field: str | None = None,
    ) -> Bulk2Result:
        """Load records through a Bulk API 2.0 ingest job; returns successful and failed rows (``sf__Error``)."""
        self._guard(write=True)
        handler = getattr(self.sf.bulk2, sobject)
        rows = [{k: ("" if v is None else v) for k, v in r.items()} for r in records]
        kwargs: dict[str, Any] = {"records": rows, "wait": self.bulk_poll_seconds}
        if operation == "upsert":
            kwargs["external_id_field"] = external_id_field or "Id"
        jobs = self._wrap(lambda: getattr(handler, operation)(**kwargs), f"bulk2 {operation} {sobject}")
        result = Bulk2Result()
        for job in jobs:
            job_id = str(job.get("job_id"))
            result.job_ids.append(job_id)
            ok = self._wrap(partial(handler.get_successful_records, job_id), "bulk2 results")
            bad = self._wrap(partial(handler.get_failed_records, job_id), "bulk2 results")
            result.successful.extend(csv.DictReader(io.StringIO(ok or "")))
            result.failed.extend(csv.DictReader(io.StringIO(bad or "")))
        return result


def _subrequest_result(answer: Mapping[str, Any] | None, what: str) -> dict[str, Any] | ApiError:
    """A Composite subrequest's body, or its failure classified by the same table as a whole call's."""
    if answer is None:
        return FatalApiError(f"Salesforce answered no subrequest for the {what}", system=SYSTEM)
    status = int(answer.get("httpStatusCode") or 0)
    if status >= 400 or not isinstance(answer.get("body"), dict):
        return classify(SYSTEM, status, json.dumps(answer.get("body")), what=what)
    body: dict[str, Any] = answer["body"]
    return body


def _strip_attributes(record: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for key, value in record.items():
        if key == "attributes":
            continue
        out[key] = _strip_attributes(value) if isinstance(value, dict) else value
    return out


def _save_result(raw: Mapping[str, Any]) -> SaveResult:
    errors = tuple(
        SaveError(str(e.get("statusCode", "")), str(e.get("message", "")), tuple(e.get("fields") or ()))
        for e in raw.get("errors") or ()
    )
    return SaveResult(id=raw.get("id"), success=bool(raw.get("success")), errors=errors)
