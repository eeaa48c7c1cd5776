"""An NPS/CSAT survey API modelled on Delighted's "list survey responses" endpoint, serving the book.

``GET /v1/survey_responses.json``

Auth: HTTP Basic with the API key as username and an empty password (Delighted's way), or
``Authorization: Bearer <key>``. A missing or wrong key gets ``401 {"status": 401, "message": ...}``.

Query parameters (all optional):

- ``per_page``: 1-100, default 20; ``page``: 1-based, default 1.
- ``since`` / ``until``: unix seconds; responses *created* at or after / at or before.
- ``updated_since`` / ``updated_until``: unix seconds; responses *updated* at or after / at or before.
- ``order``: ``asc`` (default) or ``desc`` by ``updated_at`` then id; ``asc:created_at`` / ``desc:created_at``.
- ``survey_type``: ``nps`` or ``csat``; ``person_email``: exact email.

Answer: ``200`` with a JSON list, each item
``{"id": "17", "person": {"id": "42"|null, "email": ..., "name": ...|null}, "survey_type": "nps"|"csat",
"score": 9, "comment": ...|null, "permalink": ..., "created_at": 1767225600, "updated_at": 1767225600,
"person_properties": {}, "notes": [], "tags": []}`` (times in unix seconds; ``person.id`` is the CRM
contact's book index when the email is known, null otherwise), and when the page is full a
``Link: <...page=N+1...>; rel="next"`` header. Bad parameters get ``400``; injected rate limits ``429``
with ``Retry-After: 0``; injected server errors ``503``.
"""

from __future__ import annotations

import base64
import binascii
import calendar
import time
from typing import Any
from urllib.parse import urlencode

from sandbox.http import ReadOnlyBookApp, SandboxRequest, SandboxResponse, key_matches

PATH = "/v1/survey_responses.json"
MAX_PER_PAGE = 100
DEFAULT_PER_PAGE = 20
_ORDERS = {
    "asc": "s.updated_at ASC, s.n ASC",
    "desc": "s.updated_at DESC, s.n DESC",
    "asc:updated_at": "s.updated_at ASC, s.n ASC",
    "desc:updated_at": "s.updated_at DESC, s.n DESC",
    "asc:created_at": "s.created_at ASC, s.n ASC",
    "desc:created_at": "s.created_at DESC, s.n DESC",
}


def unix_seconds(iso: str) -> int:
    """``2026-01-05T12:00:00Z`` -> unix seconds."""
    return calendar.timegm(time.strptime(iso, "%Y-%m-%dT%H:%M:%SZ"))


def iso_utc(seconds: int) -> str:
    """Unix seconds -> ``YYYY-MM-DDTHH:MM:SSZ``, the book's timestamp text."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


class NpsApp(ReadOnlyBookApp):
    """The Delighted-style survey responses API (read-only: ``reset()`` has nothing to undo)."""

    name = "nps"

    def error_response(self, kind: str) -> SandboxResponse:
        if kind == "rate_limited":
            return _error(429, "Too Many Requests", {"Retry-After": "0"})
        return _error(503, "Service Unavailable")

    def handle(self, request: SandboxRequest) -> SandboxResponse:
        if not key_matches(_api_key(request.headers.get("authorization", "")), self.tokens.nps_api_key):
            return _error(401, "Unauthorized: a valid API key is required", {"WWW-Authenticate": 'Basic realm="api"'})
        if request.path != PATH:
            return _error(404, f"Not found: {request.path}")
        if request.method != "GET":
            return _error(405, f"Method not allowed: {request.method}")
        try:
            return self._list(request)
        except ValueError as exc:
            return _error(400, str(exc))

    def _list(self, request: SandboxRequest) -> SandboxResponse:
        per_page = _int_param(request, "per_page", DEFAULT_PER_PAGE, 1, MAX_PER_PAGE)
        page = _int_param(request, "page", 1, 1, 10**9)
        order = request.param("order", "asc") or "asc"
        if order not in _ORDERS:
            raise ValueError(f"order must be one of {', '.join(_ORDERS)}")
        where: list[str] = []
        params: list[str | int] = []
        for name, column, op in (
            ("since", "s.created_at", ">="), ("until", "s.created_at", "<="),
            ("updated_since", "s.updated_at", ">="), ("updated_until", "s.updated_at", "<="),
        ):
            value = request.param(name)
            if value:
                where.append(f"{column} {op} ?")
                params.append(iso_utc(_int_value(name, value)))
        survey_type = request.param("survey_type")
        if survey_type:
            where.append("s.kind = ?")
            params.append(survey_type)
        email = request.param("person_email")
        if email:
            where.append("s.email = ?")
            params.append(email)
        # Page the ids first (the offset rows are skipped on the updated_at index alone), then read the page's
        # rows and look up their people.
        sql = (
            "SELECT s.n, s.kind, s.score, s.comment, s.email, s.created_at, s.updated_at, "
            "c.n AS person_n, c.first_name, c.last_name FROM (SELECT s.n FROM survey_responses s "
            f"{'WHERE ' + ' AND '.join(where) if where else ''} ORDER BY {_ORDERS[order]} LIMIT ? OFFSET ?) page "
            "JOIN survey_responses s ON s.n = page.n "
            "LEFT JOIN contacts c ON c.n = (SELECT MIN(n) FROM contacts WHERE email = s.email) "
            f"ORDER BY {_ORDERS[order]}"
        )
        rows = self.reader.query(sql, [*params, per_page, (page - 1) * per_page])
        headers: dict[str, str] = {}
        if len(rows) == per_page:
            query = {k: v[0] for k, v in request.query.items()}
            query.update(page=str(page + 1), per_page=str(per_page))
            headers["Link"] = f'<{self.base_url}{PATH}?{urlencode(query)}>; rel="next"'
        return SandboxResponse.of_json(200, [self._item(row) for row in rows], headers)

    def _item(self, row: Any) -> dict[str, Any]:
        name = " ".join(p for p in (row["first_name"], row["last_name"]) if p) or None
        return {
            "id": str(row["n"]),
            "person": {
                "id": str(row["person_n"]) if row["person_n"] is not None else None,
                "email": row["email"],
                "name": name,
            },
            "survey_type": row["kind"],
            "score": int(row["score"]),
            "comment": row["comment"],
            "permalink": f"{self.base_url}/r/{row['n']}",
            "created_at": unix_seconds(row["created_at"]),
            "updated_at": unix_seconds(row["updated_at"]),
            "person_properties": {},
            "notes": [],
            "tags": [],
        }


def _api_key(authorization: str) -> str | None:
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() == "bearer":
        return value.strip()
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None
        return decoded.partition(":")[0]
    return None


def _int_value(name: str, value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"{name} must be an integer, got {value!r}") from None


def _int_param(request: SandboxRequest, name: str, default: int, low: int, high: int) -> int:
    raw = request.param(name)
    value = default if raw is None or raw == "" else _int_value(name, raw)
    if not low <= value <= high:
        raise ValueError(f"{name} must be between {low} and {high}")
    return value


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> SandboxResponse:
    return SandboxResponse.of_json(status, {"status": status, "message": message}, headers)
