"""The Salesforce REST emulator as a sandbox ``App``: SOQL query/queryAll with cursors, sObject CRUD,
sObject Collections, Composite, describe, Tooling ``CustomField``, Bulk API 2.0, limits and record counts,
getUpdated/getDeleted and the OAuth token endpoint, over the org built from the book.

Every answer carries ``Sforce-Limit-Info``; error bodies are JSON lists, as Salesforce sends them.
"""

from __future__ import annotations

import json
import re
import threading
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from sandbox.faults import FaultState
from sandbox.http import SandboxRequest, SandboxResponse
from sandbox.salesforce.auth import OrgAuth, SalesforceCredentials
from sandbox.salesforce.bulk2 import Bulk2
from sandbox.salesforce.query import invalid_type
from sandbox.salesforce.responses import errors, not_found
from sandbox.salesforce.schema import Field, FieldType, SObject
from sandbox.salesforce.soql import Comparison, Query, SoqlError, Value, parse, parse_datetime
from sandbox.salesforce.soql import Path as FieldPath
from sandbox.salesforce.store import Cursor, OrgStore, WriteError
from sandbox.salesforce.values import coerce, format_datetime, full_id, make_id, to_json
from sandbox.salesforce.writes import RecordWriter

DEFAULT_BATCH = 2000
MAX_CURSORS = 64
MAX_COLLECTION = 200
MAX_SUBREQUESTS = 25  # per Composite call
MAX_QUERIES = 5  # query, queryAll and sObject Collections subrequests per Composite call
ROLLED_BACK = {
    "statusCode": "ALL_OR_NONE_OPERATION_ROLLED_BACK",
    "message": "Record rolled back because not all records were valid and the request was using AllOrNone header",
    "fields": [],
}
# Tooling API ``Metadata.type`` -> (describe type, default length).
CUSTOM_FIELD_TYPES: dict[str, tuple[FieldType, int]] = {
    "Number": ("double", 0), "Currency": ("currency", 0), "Percent": ("percent", 0), "Text": ("string", 255),
    "TextArea": ("textarea", 255), "LongTextArea": ("textarea", 32768), "Checkbox": ("boolean", 0),
    "Date": ("date", 0), "DateTime": ("datetime", 0), "Picklist": ("picklist", 255), "Url": ("url", 255),
    "Email": ("email", 80),
}  # fmt: skip
_REFERENCE_ID = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
_SUBREQUEST_URL = re.compile(r"^/services/data/v(\d+\.\d)/([^?]*)")
_FULL_NAME = re.compile(r"^([A-Za-z][A-Za-z0-9_]*)\.([A-Za-z][A-Za-z0-9]*(?:_[A-Za-z0-9]+)*__c)$")


class BookSource(Protocol):
    """What the emulator needs of ``sandbox.book.Book``: the path of its SQLite file."""

    @property
    def path(self) -> Path: ...


class SalesforceApp:
    """An emulated Salesforce org serving the book; see the module docstring for the surface."""

    name = "salesforce"

    def __init__(
        self,
        book: BookSource,
        faults: FaultState,
        tokens: SalesforceCredentials,
        *,
        clock: Callable[[], datetime] | None = None,
        jwt_public_key: str | None = None,
    ) -> None:
        self.faults = faults
        self.base_url = ""
        self._lock = threading.RLock()
        self.store = OrgStore(book.path, clock or (lambda: datetime.now(UTC)))
        self.auth = OrgAuth(tokens, faults, jwt_public_key)
        self.writer = RecordWriter(self.store, faults)
        self.bulk2 = Bulk2(self.store, self.writer)
        self._cursors: OrderedDict[str, Cursor] = OrderedDict()
        self._cursor_count = 0

    def set_base_url(self, url: str) -> None:
        """The server's ``https://127.0.0.1:PORT``: the ``instance_url`` in token answers."""
        self.base_url = url.rstrip("/")

    def close(self) -> None:
        self.store.close()

    def reset(self) -> None:
        """Back to the book as generated: undo writes and custom fields, forget cursors, jobs, tokens, counts."""
        with self._lock:
            self.store.reset()
            self.auth.reset()
            self.bulk2.reset()
            self._cursors.clear()
            self._cursor_count = 0

    def error_response(self, kind: str) -> SandboxResponse:
        if kind == "rate_limited":
            response = errors(403, "REQUEST_LIMIT_EXCEEDED", "ConcurrentPerOrgLongTxn Limit exceeded.")
        else:
            response = errors(503, "SERVER_UNAVAILABLE", "Server temporarily unavailable, please try again later.")
        response.headers.update(self.auth.limit_header())
        return response

    # -- dispatch ------------------------------------------------------------------------------------------

    def handle(self, request: SandboxRequest) -> SandboxResponse:
        with self._lock:
            response = self._dispatch(request)
            response.headers.update(self.auth.limit_header())
            return response

    def _dispatch(self, request: SandboxRequest) -> SandboxResponse:
        path = request.path
        if path.rstrip("/").endswith("/services/oauth2/token"):
            if request.method != "POST":
                return errors(405, "METHOD_NOT_ALLOWED", "HTTP Method not allowed")
            return self.auth.token(request, self.base_url)
        parts = [p for p in path.split("/") if p]
        if parts[:2] != ["services", "data"]:
            return not_found()
        if len(parts) == 2:
            return SandboxResponse.of_json(
                200, [{"label": "Winter '24", "url": "/services/data/v59.0", "version": "59.0"}]
            )
        match = re.fullmatch(r"v(\d+\.\d)", parts[2])
        if match is None:
            return not_found()
        refused = self.auth.check(request)
        if refused.response is not None:
            return refused.response
        return self._answer(request, match.group(1), parts[3:])

    def _answer(self, request: SandboxRequest, version: str, rest: list[str]) -> SandboxResponse:
        """The answer to an authenticated call (or a Composite subrequest) on ``/services/data/v{version}/{rest}``."""
        try:
            return self._route(request, rest, f"/services/data/v{version}", float(version))
        except SoqlError as exc:
            return errors(400, exc.code, exc.message)
        except WriteError as exc:
            return errors(400, exc.code, exc.message, exc.fields)
        except ValueError as exc:
            return errors(400, "JSON_PARSER_ERROR", f"The request body could not be read: {exc}")

    def _route(self, request: SandboxRequest, rest: list[str], base: str, version: float) -> SandboxResponse:
        method = request.method
        head = rest[0] if rest else ""
        if not rest:
            return SandboxResponse.of_json(
                200, {n: f"{base}/{n}" for n in ("sobjects", "query", "queryAll", "limits", "composite")}
            )
        if head in ("query", "queryAll") and method == "GET":
            if len(rest) == 1:
                return self._query(request, base, include_deleted=head == "queryAll", tooling=False)
            return self._query_more(request, rest[1], base)
        if head == "limits" and method == "GET":
            if rest[1:] == ["recordCount"] and version >= 40:
                return SandboxResponse.of_json(200, self._record_counts(request.param("sObjects")))
            return SandboxResponse.of_json(200, self._limits()) if len(rest) == 1 else not_found()
        if head == "sobjects":
            return self._sobjects(request, rest[1:], base)
        if head == "composite" and len(rest) == 1:
            return self._composite(request)
        if head == "composite" and rest[1:2] == ["sobjects"]:
            return self._collections(request, rest[2:], base)
        if head == "tooling":
            return self._tooling(request, rest[1:], base)
        if head == "jobs" and len(rest) > 1:
            return self.bulk2.handle(request, rest[1:], version)
        return not_found()

    # -- query ---------------------------------------------------------------------------------------------

    def _batch_size(self, request: SandboxRequest, default: int = DEFAULT_BATCH) -> int:
        options = request.headers.get("sforce-query-options", "")
        match = re.search(r"batchSize\s*=\s*(\d+)", options)
        return min(2000, max(200, int(match.group(1)))) if match else default

    def _query(self, request: SandboxRequest, base: str, include_deleted: bool, tooling: bool) -> SandboxResponse:
        text = request.param("q")
        if not text:
            return errors(400, "MALFORMED_QUERY", "A query string has to be specified")
        query = parse(text)
        plan = self.store.compile(query, include_deleted, tooling=tooling)
        if plan.count:
            return SandboxResponse.of_json(200, {"totalSize": self.store.count(plan), "done": True, "records": []})
        cursor = Cursor(plan, self.store.snapshot(plan), self._batch_size(request), tooling)
        locator = ""
        if len(cursor.rowids) > cursor.batch_size:
            self._cursor_count += 1
            locator = make_id("01g", self._cursor_count)
            self._cursors[locator] = cursor
            while len(self._cursors) > MAX_CURSORS:
                self._cursors.popitem(last=False)
        return self._page(cursor, locator, 0, cursor.batch_size, base)

    def _query_more(self, request: SandboxRequest, token: str, base: str) -> SandboxResponse:
        locator, _, offset_text = token.partition("-")
        cursor = self._cursors.get(locator)
        if cursor is None or not offset_text.isdigit() or int(offset_text) > len(cursor.rowids):
            return errors(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
        return self._page(cursor, locator, int(offset_text), self._batch_size(request, cursor.batch_size), base)

    def _page(self, cursor: Cursor, locator: str, offset: int, size: int, base: str) -> SandboxResponse:
        page = cursor.rowids[offset : offset + size]
        records = self.store.records(cursor.plan, page, base, tooling=cursor.tooling)
        end = offset + len(page)
        body: dict[str, Any] = {"totalSize": len(cursor.rowids), "done": end >= len(cursor.rowids)}
        if not body["done"]:
            body["nextRecordsUrl"] = f"{base}/query/{locator}-{end}"
        body["records"] = records
        return SandboxResponse.of_json(200, body)

    def _limits(self) -> dict[str, Any]:
        used = self.auth.api_used
        jobs = self.bulk2.query_jobs_created
        limit = self.auth.daily_limit
        return {
            "DailyApiRequests": {"Max": limit, "Remaining": max(0, limit - used)},
            "DailyAsyncApexExecutions": {"Max": 250000, "Remaining": 250000},
            "DailyBulkApiBatches": {"Max": 15000, "Remaining": 15000 - (self.bulk2.jobs_created - jobs)},
            "DailyBulkV2QueryFileStorageMB": {"Max": 976562, "Remaining": 976562},
            "DailyBulkV2QueryJobs": {"Max": 10000, "Remaining": 10000 - jobs},
            "DataStorageMB": {"Max": 5, "Remaining": 5},
            "FileStorageMB": {"Max": 20, "Remaining": 20},
        }

    def _record_counts(self, wanted: str | None) -> dict[str, Any]:
        """``limits/recordCount``: live records per object, exact here (Salesforce's are a cached snapshot).

        Without ``sObjects`` every object; names the org does not have are left out of the answer, as Salesforce
        does. The counts are taken to be org-wide storage figures (the resource needs View Setup and
        Configuration, not read access), so an object the API user cannot read (``revoke_access``) is still listed.
        """
        names = [n.strip() for n in wanted.split(",") if n.strip()] if wanted is not None else None
        objects = list(self.store.schema.objects.values())
        if names is not None:
            lowered = {n.lower() for n in names}
            objects = [o for o in objects if o.name.lower() in lowered]
        return {"sObjects": [{"count": self.store.live_count(o), "name": o.name} for o in objects]}

    # -- Composite -----------------------------------------------------------------------------------------

    def _composite(self, request: SandboxRequest) -> SandboxResponse:
        """``POST composite``: up to 25 subrequests answered in order, counted as one call toward the daily limit.

        Subrequests may be sObject, query/queryAll and sObject Collections calls (5 of the latter two at most).
        With ``allOrNone`` a failed subrequest rolls back the others' writes and every other one answers 400
        ``PROCESSING_HALTED``. References between subrequests (``@{ref.field}``) are not emulated: such a
        subrequest answers 400.
        """
        if request.method != "POST":
            return errors(405, "METHOD_NOT_ALLOWED", f"HTTP Method '{request.method}' not allowed. Allowed are POST")
        body = request.json() or {}
        subrequests = body.get("compositeRequest") if isinstance(body, dict) else None
        if not isinstance(subrequests, list) or not subrequests:
            return errors(400, "JSON_PARSER_ERROR", "compositeRequest is required")
        if len(subrequests) > MAX_SUBREQUESTS:
            return errors(400, "LIMIT_EXCEEDED", f"Composite request cannot have more than {MAX_SUBREQUESTS} "
                                                 "subrequests")
        parsed = [_subrequest(item) for item in subrequests]
        problem = next((p for p in parsed if isinstance(p, str)), None)
        references = [p[2] for p in parsed if not isinstance(p, str)]
        if problem is None and len(set(references)) != len(references):
            problem = "Duplicate referenceId provided in the request"
        if problem is not None:
            return errors(400, "INVALID_INPUT", problem)
        planned = [p for p in parsed if not isinstance(p, str)]
        if sum(1 for _, rest, _ in planned if rest[:1] in (["query"], ["queryAll"], ["composite"])) > MAX_QUERIES:
            return errors(400, "LIMIT_EXCEEDED", f"Composite request cannot have more than {MAX_QUERIES} query or "
                                                 "sObject Collections subrequests")
        with self.store.savepoint() as rollback:
            answers = [self._subanswer(request, item, planned_item)
                       for item, planned_item in zip(subrequests, planned, strict=True)]
            if body.get("allOrNone") and any(a["httpStatusCode"] >= 400 for a in answers):
                rollback()
                halted = errors(400, "PROCESSING_HALTED", "The transaction was rolled back since another "
                                                          "operation in the same transaction failed.")
                answers = [a if a["httpStatusCode"] >= 400 else
                           {**a, "body": json.loads(halted.body), "httpStatusCode": 400} for a in answers]
        return SandboxResponse.of_json(200, {"compositeResponse": answers})

    def _subanswer(
        self, request: SandboxRequest, item: dict[str, Any], planned: tuple[str, list[str], str]
    ) -> dict[str, Any]:
        version, rest, reference = planned
        sub_body = item.get("body")
        url = str(item["url"])
        if "@{" in url or "@{" in json.dumps(sub_body):
            response = errors(400, "INVALID_INPUT", "references between subrequests are not emulated")
        elif rest[:1] not in (["sobjects"], ["query"], ["queryAll"]) and rest[:2] != ["composite", "sobjects"]:
            response = errors(400, "INVALID_INPUT", f"{url} is not supported in a Composite request")
        else:
            own = item.get("httpHeaders") or {}
            headers = {**request.headers, **{str(k).lower(): str(v) for k, v in own.items()}}
            sub = SandboxRequest(
                method=str(item["method"]),
                target=url,
                headers=headers,
                body=json.dumps(sub_body).encode() if sub_body is not None else b"",
            )
            response = self._answer(sub, version, rest)
        return {
            "body": json.loads(response.body) if response.body else None,
            "httpHeaders": {},
            "httpStatusCode": response.status,
            "referenceId": reference,
        }

    # -- sObjects ------------------------------------------------------------------------------------------

    def _object(self, name: str) -> SObject:
        obj = self.store.schema.get(name)
        if obj is None:
            raise invalid_type(name)
        return obj

    def _sobjects(self, request: SandboxRequest, rest: list[str], base: str) -> SandboxResponse:
        method = request.method
        if not rest:
            return SandboxResponse.of_json(200, self.store.schema.describe_global(base))
        obj = self.store.schema.get(rest[0])
        if obj is None:
            return errors(404, "NOT_FOUND", f"The requested resource does not exist: sObject type '{rest[0]}'")
        if len(rest) == 1:
            if method == "POST":
                record_id = self.writer.create(obj, request.json() or {})
                return SandboxResponse.of_json(201, {"id": record_id, "success": True, "errors": []})
            return SandboxResponse.of_json(200, {"objectDescribe": obj.summary(base), "recentItems": []})
        action = rest[1]
        if action == "describe":
            return SandboxResponse.of_json(200, obj.describe(base))
        if action in ("updated", "deleted") and method == "GET":
            return self._replication(request, obj, action)
        record_id = full_id(action)
        if method == "GET":
            wanted = request.param("fields")
            names = [n.strip() for n in wanted.split(",") if n.strip()] if wanted else list(obj.fields)
            found = self._get_records(obj, [record_id], names, base)
            return SandboxResponse.of_json(200, found[0]) if found[0] is not None else not_found()
        if method == "PATCH":
            try:
                self.writer.update(obj, record_id, request.json() or {})
            except WriteError as exc:
                if exc.code in ("INVALID_CROSS_REFERENCE_KEY", "MALFORMED_ID", "ENTITY_IS_DELETED"):
                    return not_found()
                raise
            return SandboxResponse(204)
        if method == "DELETE":
            try:
                self.writer.delete(obj, record_id)
            except WriteError as exc:
                if exc.code == "ENTITY_IS_DELETED":
                    return errors(404, "ENTITY_IS_DELETED", "entity is deleted")
                if exc.code in ("INVALID_CROSS_REFERENCE_KEY", "MALFORMED_ID"):
                    return not_found()
                raise
            return SandboxResponse(204)
        return errors(405, "METHOD_NOT_ALLOWED", f"HTTP Method '{method}' not allowed. Allowed are GET,PATCH,DELETE")

    def _get_records(
        self, obj: SObject, ids: list[str], names: list[str], base: str
    ) -> list[dict[str, Any] | None]:
        """Live records by Id, in the order asked; None where there is none (or it is in the recycle bin)."""
        query = Query(
            obj.name,
            tuple(FieldPath(tuple(n.split("."))) for n in names),
            where=Comparison(FieldPath(("Id",)), "IN", tuple(Value("string", i) for i in ids)),
        )
        plan = self.store.compile(query, include_deleted=False)
        rows = self.store.records(plan, self.store.snapshot(plan), base)
        by_id = {r["attributes"]["url"].rsplit("/", 1)[1]: r for r in rows}
        return [by_id.get(full_id(i)) for i in ids]

    def _replication(self, request: SandboxRequest, obj: SObject, action: str) -> SandboxResponse:
        """getUpdated (30 days back at most) and getDeleted (15 days); seconds are truncated."""
        try:
            start = parse_datetime(request.param("start") or "").replace(second=0, microsecond=0)
            end = parse_datetime(request.param("end") or "").replace(second=0, microsecond=0)
        except ValueError:
            return errors(400, "INVALID_REPLICATION_DATE", "start and end must be ISO-8601 datetimes")
        now = self.store.clock()
        window = timedelta(days=30 if action == "updated" else 15)
        if start < now - window:
            return errors(400, "INVALID_REPLICATION_DATE", f"startDate cannot be more than {window.days} days ago")
        if end <= start:
            return errors(400, "INVALID_REPLICATION_DATE", "endDate must chronologically follow the startDate")
        deleted = 1 if action == "deleted" else 0
        cur = self.store.conn.execute(
            f"SELECT Id, SystemModstamp FROM {obj.table} WHERE SystemModstamp >= ? AND SystemModstamp < ? "
            "AND IsDeleted = ? ORDER BY SystemModstamp, rowid LIMIT 600001",
            (format_datetime(start), format_datetime(end), deleted),
        )
        rows = cur.fetchall()
        if len(rows) > 600_000:
            return errors(400, "EXCEEDED_ID_LIMIT", "too many ids: more than 600,000 records")
        if action == "updated":
            ids = [r[0] for r in rows]
            return SandboxResponse.of_json(200, {"ids": ids, "latestDateCovered": format_datetime(end)})
        return SandboxResponse.of_json(
            200,
            {
                "deletedRecords": [{"id": r[0], "deletedDate": r[1]} for r in rows],
                "earliestDateAvailable": format_datetime(now - window),
                "latestDateCovered": format_datetime(end),
            },
        )

    # -- sObject Collections -------------------------------------------------------------------------------

    def _collections(self, request: SandboxRequest, rest: list[str], base: str) -> SandboxResponse:
        method = request.method
        if rest and method in ("GET", "POST"):
            obj = self._object(rest[0])
            if method == "POST":
                body = request.json() or {}
                ids, names = list(body.get("ids", [])), list(body.get("fields", []))
            else:
                ids = [i for i in (request.param("ids") or "").split(",") if i]
                names = [n for n in (request.param("fields") or "").split(",") if n]
            if len(ids) > 2000:
                return errors(400, "EXCEEDED_ID_LIMIT", "more than 2000 ids")
            return SandboxResponse.of_json(200, self._get_records(obj, ids, names or ["Id"], base))
        if method == "DELETE":
            ids = [i for i in (request.param("ids") or "").split(",") if i]
            all_or_none = (request.param("allOrNone") or "false").lower() == "true"
            return self._save_all(ids, all_or_none, self._delete_one)
        if method not in ("POST", "PATCH"):
            return errors(405, "METHOD_NOT_ALLOWED", f"HTTP Method '{method}' not allowed")
        body = request.json() or {}
        records = body.get("records")
        if not isinstance(records, list) or not records:
            return errors(400, "INVALID_FIELD", "records is required", ["records"])
        if len(records) > MAX_COLLECTION:
            return errors(
                400, "EXCEEDED_ID_LIMIT", "record limit reached. cannot submit more than 200 records into this call"
            )
        save = self._create_one if method == "POST" else self._update_one
        return self._save_all(records, bool(body.get("allOrNone", False)), save)

    def _save_all(
        self, items: list[Any], all_or_none: bool, save: Callable[[Any], dict[str, Any]]
    ) -> SandboxResponse:
        with self.store.savepoint() as rollback:
            results = [save(item) for item in items]
            if all_or_none and not all(r["success"] for r in results):
                rollback()
                results = [
                    r if not r["success"] else {"id": r.get("id"), "success": False, "errors": [ROLLED_BACK]}
                    for r in results
                ]
                for r in results:
                    if r.get("id") is None:
                        r.pop("id", None)
        return SandboxResponse.of_json(200, results)

    def _record_object(self, record: Any) -> SObject:
        if not isinstance(record, dict):
            raise WriteError("JSON_PARSER_ERROR", "each record must be an object")
        attributes = record.get("attributes") or {}
        name = attributes.get("type") if isinstance(attributes, dict) else None
        if not name:
            raise WriteError("INVALID_TYPE", "Must send a concrete entity type.", ["attributes"])
        obj = self.store.schema.get(str(name))
        if obj is None:
            raise WriteError("INVALID_TYPE", f"sObject type '{name}' is not supported.")
        return obj

    def _create_one(self, record: Any) -> dict[str, Any]:
        try:
            record_id = self.writer.create(self._record_object(record), record)
        except WriteError as exc:
            return {"success": False, "errors": [exc.as_error()]}
        return {"id": record_id, "success": True, "errors": []}

    def _update_one(self, record: Any) -> dict[str, Any]:
        record_id = str(record.get("id") or record.get("Id") or "") if isinstance(record, dict) else ""
        try:
            if not record_id:
                raise WriteError("MISSING_ARGUMENT", "Id not specified in an update call", ["Id"])
            self.writer.update(self._record_object(record), record_id, record)
        except WriteError as exc:
            return {"id": record_id or None, "success": False, "errors": [exc.as_error()]}
        return {"id": full_id(record_id), "success": True, "errors": []}

    def _delete_one(self, record_id: Any) -> dict[str, Any]:
        obj = self.store.schema.by_prefix(str(record_id))
        try:
            if obj is None:
                raise WriteError("MALFORMED_ID", f"malformed id {record_id}")
            self.writer.delete(obj, str(record_id))
        except WriteError as exc:
            return {"id": str(record_id), "success": False, "errors": [exc.as_error()]}
        return {"id": full_id(str(record_id)), "success": True, "errors": []}

    # -- Tooling API ---------------------------------------------------------------------------------------

    def _tooling(self, request: SandboxRequest, rest: list[str], base: str) -> SandboxResponse:
        if rest and rest[0] == "query" and request.method == "GET":
            return self._query(request, f"{base}/tooling", include_deleted=False, tooling=True)
        if rest[:2] == ["sobjects", "CustomField"] and len(rest) == 2 and request.method == "POST":
            return self._create_custom_field(request.json() or {})
        return not_found()

    def _create_custom_field(self, body: dict[str, Any]) -> SandboxResponse:
        """Tooling ``CustomField`` create: ``{"FullName": "Account.X__c", "Metadata": {"type", "label", ...}}``."""
        full_name = str(body.get("FullName") or "")
        metadata = body.get("Metadata") or {}
        match = _FULL_NAME.match(full_name)
        if match is None or not isinstance(metadata, dict):
            return errors(400, "INVALID_INPUT", f"Invalid FullName for a custom field: {full_name!r}")
        obj = self.store.schema.get(match.group(1))
        if obj is None:
            return errors(400, "INVALID_TYPE", f"Cannot find an object named {match.group(1)}")
        field_name = match.group(2)
        if obj.field(field_name) is not None:
            developer_name = field_name[:-3]
            return errors(
                400, "DUPLICATE_DEVELOPER_NAME", f"There's already a field named {developer_name} on {obj.name}."
            )
        kind = str(metadata.get("type") or "")
        if kind not in CUSTOM_FIELD_TYPES:
            return errors(400, "FIELD_INTEGRITY_EXCEPTION", f"Unsupported custom field type: {kind!r}")
        field_type, default_length = CUSTOM_FIELD_TYPES[kind]
        values = ((metadata.get("valueSet") or {}).get("valueSetDefinition") or {}).get("value") or []
        new = Field(
            name=field_name,
            type=field_type,
            label=str(metadata.get("label") or field_name[:-3]),
            custom=True,
            nillable=field_type != "boolean",
            length=int(metadata.get("length") or default_length) if field_type not in ("double", "currency") else 0,
            precision=int(metadata.get("precision") or (18 if field_type in ("double", "currency", "percent") else 0)),
            scale=int(metadata.get("scale") or 0),
            picklist=tuple(str(v.get("fullName") or v.get("label")) for v in values if isinstance(v, dict)),
        )
        self.store.add_column(obj, new)
        tooling = self.store.tooling.get("CustomField")
        assert tooling is not None
        record_id = self.store.insert(
            tooling,
            {
                "DeveloperName": field_name[:-3],
                "FullName": full_name,
                "TableEnumOrId": obj.name,
                "DataType": kind,
                "Label": new.label,
            },
        )
        saved = {"id": record_id, "success": True, "errors": [], "warnings": [], "infos": []}
        return SandboxResponse.of_json(201, saved)

    # -- hooks for tests and benchmarks --------------------------------------------------------------------

    def get_record(self, sobject: str, record_id: str) -> dict[str, Any] | None:
        """A record as the REST API returns it (all visible fields, deleted ones too), or None."""
        with self._lock:
            obj = self._object(sobject)
            row = self.store.row(obj, full_id(record_id))
            if row is None:
                return None
            return {name: to_json(obj.fields[name], value) for name, value in row.items()}

    def set_field(self, sobject: str, record_id: str, field: str, value: Any) -> None:
        """A human edit in the CRM: writes the field and bumps LastModifiedDate and SystemModstamp."""
        with self._lock:
            obj = self._object(sobject)
            f = obj.field(field)
            if f is None:
                raise SoqlError("INVALID_FIELD", f"No such column '{field}' on sobject of type {obj.name}")
            if not self.store.update(obj, full_id(record_id), {f.name: self._coerce(f, value)}):
                raise KeyError(record_id)

    def touch(self, sobject: str, ids: list[str], **changes: Any) -> None:
        """An automated process: bumps SystemModstamp only (LastModifiedDate stays), optionally changing fields."""
        with self._lock:
            obj = self._object(sobject)
            for record_id in ids:
                values = {obj.fields[k].name: self._coerce(obj.fields[k], v) for k, v in changes.items()}
                values["SystemModstamp"] = self.store.now()
                if not self.store.update(obj, full_id(record_id), values, stamp=False):
                    raise KeyError(record_id)

    def revoke_access(self, sobject: str) -> None:
        """The API user loses read access to an object (a permission set removed): its describe and records
        answer 404 and SOQL on it INVALID_TYPE, while the org-wide ``limits/recordCount`` still lists it.
        ``reset`` gives access back."""
        with self._lock:
            self.store.schema.revoke(self._object(sobject).name)

    def delete(self, sobject: str, record_id: str) -> None:
        """Delete a record as a user would (IsDeleted; visible to queryAll and getDeleted)."""
        with self._lock:
            if not self.store.soft_delete(self._object(sobject), full_id(record_id)):
                raise KeyError(record_id)

    def count_tasks(self, what_id: str | None = None, subject: str | None = None, created_by_api: bool = False) -> int:
        """Live Tasks, optionally only on one record (``WhatId``), with one subject, or written through the API."""
        with self._lock:
            sql = "SELECT COUNT(*) FROM sf_Task WHERE IsDeleted = 0"
            params: list[Any] = []
            if what_id is not None:
                sql += " AND WhatId = ?"
                params.append(full_id(what_id))
            if subject is not None:
                sql += " AND Subject = ?"
                params.append(subject)
            if created_by_api:
                sql += " AND rowid > ?"
                params.append(self.store.book_rows["Task"])
            return int(self.store.conn.execute(sql, params).fetchone()[0])

    @property
    def api_calls(self) -> int:
        """Authenticated calls counted against the daily limit since the last reset."""
        return self.auth.api_used

    @staticmethod
    def _coerce(f: Field, value: Any) -> Any:
        return coerce(f, value)


def _subrequest(item: Any) -> tuple[str, list[str], str] | str:
    """A Composite subrequest's (API version, path parts after it, referenceId), or why the request is refused."""
    if not isinstance(item, dict):
        return "each subrequest must be an object"
    method, url, reference = item.get("method"), item.get("url"), item.get("referenceId")
    if method not in ("GET", "POST", "PUT", "PATCH", "DELETE"):
        return f"Invalid method {method!r}: use GET, POST, PUT, PATCH or DELETE"
    match = _SUBREQUEST_URL.match(url) if isinstance(url, str) else None
    if match is None:
        return f"Invalid url {url!r}: it must start with /services/data/vXX.X/"
    if not isinstance(reference, str) or not _REFERENCE_ID.match(reference):
        return f"Invalid referenceId {reference!r}: letters, digits and underscores, starting with a letter"
    return match.group(1), [p for p in match.group(2).split("/") if p], reference
