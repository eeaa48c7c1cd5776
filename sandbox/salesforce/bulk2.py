"""Bulk API 2.0: ingest jobs (insert, update, upsert, delete from CSV) and query jobs (CSV result pages).

Processing is synchronous: an ingest job is processed when its upload is marked complete, a query job
is evaluated (snapshotted) when it is created; clients still see the states they poll for.
"""

from __future__ import annotations

import base64
import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sandbox.http import SandboxRequest, SandboxResponse
from sandbox.salesforce.query import Plan
from sandbox.salesforce.responses import errors, not_found
from sandbox.salesforce.schema import SObject
from sandbox.salesforce.soql import SoqlError, parse
from sandbox.salesforce.store import OrgStore, WriteError
from sandbox.salesforce.values import make_id, to_csv
from sandbox.salesforce.writes import RecordWriter

DELIMITERS = {"COMMA": ",", "TAB": "\t", "PIPE": "|", "SEMICOLON": ";", "CARET": "^", "BACKQUOTE": "`"}
INGEST_OPERATIONS = ("insert", "update", "upsert", "delete", "hardDelete")
DEFAULT_MAX_RECORDS = 50_000


@dataclass
class Job:
    id: str
    kind: str  # ingest | query
    operation: str
    object: str
    created: str
    api_version: float
    line_ending: str = "LF"
    delimiter: str = "COMMA"
    external_id: str | None = None
    state: str = "Open"
    upload: list[str] = field(default_factory=list)
    successes: list[list[str]] = field(default_factory=list)
    failures: list[list[str]] = field(default_factory=list)
    unprocessed: list[list[str]] = field(default_factory=list)
    header: list[str] = field(default_factory=list)
    plan: Plan | None = None
    rowids: Sequence[int] = ()
    error_message: str = ""

    def info(self, store: OrgStore) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "operation": self.operation,
            "object": self.object,
            "createdById": store.api_user_id,
            "createdDate": self.created,
            "systemModstamp": self.created,
            "state": self.state,
            "concurrencyMode": "Parallel",
            "contentType": "CSV",
            "apiVersion": self.api_version,
            "jobType": "V2Query" if self.kind == "query" else "V2Ingest",
            "lineEnding": self.line_ending,
            "columnDelimiter": self.delimiter,
            "retries": 0,
            "totalProcessingTime": 0,
        }
        if self.kind == "ingest":
            out["contentUrl"] = f"services/data/v{self.api_version:.1f}/jobs/ingest/{self.id}/batches"
            out["numberRecordsProcessed"] = len(self.successes) + len(self.failures)
            out["numberRecordsFailed"] = len(self.failures)
            out["apiActiveProcessingTime"] = 0
            out["apexProcessingTime"] = 0
            if self.external_id:
                out["externalIdFieldName"] = self.external_id
        elif self.state == "JobComplete":
            out["numberRecordsProcessed"] = len(self.rowids)
        if self.error_message:
            out["errorMessage"] = self.error_message
        return out


class Bulk2:
    """The ``/jobs/ingest`` and ``/jobs/query`` resources of one emulated org."""

    def __init__(self, store: OrgStore, writer: RecordWriter) -> None:
        self.store = store
        self.writer = writer
        self.reset()

    def reset(self) -> None:
        self.jobs: dict[str, Job] = {}
        self.jobs_created = 0
        self.query_jobs_created = 0

    def handle(self, request: SandboxRequest, parts: list[str], version: float) -> SandboxResponse:
        """``parts`` follow ``jobs/``: ``[kind]``, ``[kind, id]`` or ``[kind, id, resource]``."""
        kind = parts[0]
        if kind not in ("ingest", "query"):
            return not_found()
        if len(parts) == 1:
            if request.method == "POST":
                return self._create(request, kind, version)
            records = [j.info(self.store) for j in self.jobs.values() if j.kind == kind]
            return SandboxResponse.of_json(200, {"done": True, "records": records, "nextRecordsUrl": None})
        job = self.jobs.get(parts[1])
        if job is None or job.kind != kind:
            return not_found()
        resource = parts[2].lower() if len(parts) > 2 else ""  # unprocessedrecords / unprocessedRecords
        if not resource:
            if request.method == "GET":
                if job.kind == "query" and job.state == "UploadComplete":
                    job.state = "JobComplete"  # evaluated at creation; the first poll finds it done
                return SandboxResponse.of_json(200, job.info(self.store))
            if request.method == "PATCH":
                return self._set_state(job, request)
            if request.method == "DELETE":
                del self.jobs[job.id]
                return SandboxResponse(204)
        if kind == "ingest" and resource == "batches" and request.method == "PUT":
            if job.state != "Open":
                return errors(409, "INVALIDJOBSTATE", f"Job is not open for uploads, state: {job.state}")
            job.upload.append(request.body.decode("utf-8-sig"))
            return SandboxResponse(201)
        if kind == "ingest" and request.method == "GET" and resource in (
            "successfulresults", "failedresults", "unprocessedrecords",
        ):  # fmt: skip
            return self._ingest_results(job, resource)
        if kind == "query" and resource == "results" and request.method == "GET":
            return self._query_results(job, request)
        return errors(405, "METHOD_NOT_ALLOWED", f"HTTP Method '{request.method}' not allowed")

    def _create(self, request: SandboxRequest, kind: str, version: float) -> SandboxResponse:
        try:
            body = request.json() or {}
        except ValueError:
            return errors(400, "JSON_PARSER_ERROR", "The request body is not valid JSON")
        job = Job(
            id=make_id("750", self.jobs_created + 1),
            kind=kind,
            operation=str(body.get("operation", "")),
            object=str(body.get("object", "")),
            created=self.store.now(),
            api_version=version,
            line_ending=str(body.get("lineEnding", "LF")),
            delimiter=str(body.get("columnDelimiter", "COMMA")),
            external_id=body.get("externalIdFieldName"),
        )
        if job.delimiter not in DELIMITERS or job.line_ending not in ("LF", "CRLF"):
            return errors(400, "INVALIDJOB", "Invalid columnDelimiter or lineEnding")
        if kind == "query":
            if job.operation not in ("query", "queryAll"):
                return errors(400, "INVALIDJOB", f"Invalid operation for a query job: {job.operation}")
            try:
                query = parse(str(body.get("query", "")))
                if query.count:
                    raise SoqlError("INVALIDJOB", "COUNT() is not supported by Bulk API 2.0 query jobs")
                job.plan = self.store.compile(query, include_deleted=job.operation == "queryAll")
            except SoqlError as exc:
                return errors(400, exc.code, exc.message)
            job.object = job.plan.sobject.name
            job.rowids = self.store.snapshot(job.plan)
            job.state = "UploadComplete"
            self.query_jobs_created += 1
        else:
            obj = self.store.schema.get(job.object)
            if obj is None:
                return errors(400, "INVALIDJOB", f"Unable to find object: {job.object}")
            if job.operation not in INGEST_OPERATIONS:
                return errors(400, "INVALIDJOB", f"Invalid operation: {job.operation}")
            if job.operation == "upsert" and (not job.external_id or obj.field(job.external_id) is None):
                return errors(
                    400, "INVALIDJOB", f"Field name provided, {job.external_id} does not match an External ID field"
                )
            job.object = obj.name
        self.jobs[job.id] = job
        self.jobs_created += 1
        return SandboxResponse.of_json(200, job.info(self.store))

    def _set_state(self, job: Job, request: SandboxRequest) -> SandboxResponse:
        state = (request.json() or {}).get("state")
        if state == "Aborted" and job.state not in ("JobComplete", "Failed", "Aborted"):
            job.state = "Aborted"
            if job.kind == "ingest":
                self._abort_upload(job)
        elif state == "UploadComplete" and job.kind == "ingest" and job.state == "Open":
            job.state = "UploadComplete"
            response = SandboxResponse.of_json(200, job.info(self.store))
            self._process(job)
            return response
        else:
            return errors(400, "INVALIDJOBSTATE", f"Cannot move a {job.state} job to {state}")
        return SandboxResponse.of_json(200, job.info(self.store))

    def _rows(self, job: Job) -> tuple[list[str], list[list[str]]]:
        delimiter = DELIMITERS[job.delimiter]
        header: list[str] = []
        rows: list[list[str]] = []
        for chunk in job.upload:
            reader = csv.reader(io.StringIO(chunk, newline=""), delimiter=delimiter)
            chunk_header = next(reader, [])
            if header and chunk_header != header:
                raise WriteError("InvalidBatch", "all uploads must share one header")
            header = chunk_header
            rows.extend(r for r in reader if r)
        return header, rows

    def _abort_upload(self, job: Job) -> None:
        try:
            job.header, job.unprocessed = self._rows(job)
        except WriteError:
            job.unprocessed = []

    def _process(self, job: Job) -> None:
        obj = self.store.schema.get(job.object)
        assert obj is not None
        try:
            header, rows = self._rows(job)
        except WriteError as exc:
            job.state, job.error_message = "Failed", f"InvalidBatch : {exc.message}"
            return
        unknown = [h for h in header if obj.field(h) is None]
        if unknown:
            job.state, job.error_message = "Failed", f"InvalidBatch : Field name not found : {unknown[0]}"
            return
        job.header = header
        for row in rows:
            record = dict(zip(header, row, strict=False))
            try:
                record_id, created = self._write(job, obj, record)
            except WriteError as exc:
                failed_id = record.get("Id", "") if job.operation != "insert" else ""
                fields = ";".join(exc.fields) or "--"
                job.failures.append([failed_id, f"{exc.code}:{exc.message}:{fields}", *row])
                continue
            job.successes.append([record_id, "true" if created else "false", *row])
        job.state = "JobComplete"

    def _write(self, job: Job, obj: SObject, record: dict[str, str]) -> tuple[str, bool]:
        values: dict[str, Any] = {k: (None if v == "#N/A" else v) for k, v in record.items() if v != ""}
        record_id = values.pop("Id", None) or values.pop("id", None)
        if job.operation == "insert":
            return self.writer.create(obj, values), True
        if job.operation in ("delete", "hardDelete"):
            return self.writer.delete(obj, str(record_id or "")), False
        if job.operation == "update":
            if not record_id:
                raise WriteError("MISSING_ARGUMENT", "Id not specified in an update call", ["Id"])
            return self.writer.update(obj, str(record_id), values), False
        key = obj.field(job.external_id or "Id")
        assert key is not None
        if key.name == "Id":
            if record_id:
                return self.writer.update(obj, str(record_id), values), False
            return self.writer.create(obj, values), True
        key_value = values.get(key.name)
        matches = self._match(obj, key.name, key_value) if key_value is not None else []
        if len(matches) > 1:
            raise WriteError("DUPLICATE_EXTERNAL_ID", f"{key.name}: more than one record found for external id field")
        if matches:
            values.pop(key.name)
            return self.writer.update(obj, matches[0], values), False
        return self.writer.create(obj, values), True

    def _match(self, obj: SObject, field_name: str, value: Any) -> list[str]:
        deleted = " AND IsDeleted = 0" if "IsDeleted" in obj.fields else ""
        cur = self.store.conn.execute(f"SELECT Id FROM {obj.table} WHERE {field_name} = ?{deleted} LIMIT 2", (value,))
        return [r[0] for r in cur]

    def _csv(self, job: Job, header: list[str], rows: list[list[str]]) -> SandboxResponse:
        buffer = io.StringIO()
        writer = csv.writer(
            buffer,
            delimiter=DELIMITERS[job.delimiter],
            lineterminator="\r\n" if job.line_ending == "CRLF" else "\n",
            quoting=csv.QUOTE_ALL,
        )
        writer.writerow(header)
        writer.writerows(rows)
        return SandboxResponse(200, buffer.getvalue().encode(), {"Content-Type": "text/csv"})

    def _ingest_results(self, job: Job, resource: str) -> SandboxResponse:
        if resource == "successfulresults":
            return self._csv(job, ["sf__Id", "sf__Created", *job.header], job.successes)
        if resource == "failedresults":
            return self._csv(job, ["sf__Id", "sf__Error", *job.header], job.failures)
        return self._csv(job, job.header, job.unprocessed)

    def _query_results(self, job: Job, request: SandboxRequest) -> SandboxResponse:
        if job.state not in ("JobComplete", "UploadComplete", "InProgress") or job.plan is None:
            return errors(400, "INVALIDJOBSTATE", f"Job is in state {job.state}")
        try:
            offset = _decode_locator(request.param("locator") or "")
            max_records = int(request.param("maxRecords") or DEFAULT_MAX_RECORDS)
        except ValueError:
            return errors(400, "INVALID_LOCATOR", "Invalid locator or maxRecords")
        job.state = "JobComplete"
        page = job.rowids[offset : offset + max(1, max_records)]
        rows = self.store.fetch(job.plan, page)
        header = [".".join(column.path) for column, _ in job.plan.columns]
        cells = [[to_csv(column.field, row[index]) for column, index in job.plan.columns] for row in rows]
        response = self._csv(job, header, cells)
        end = offset + len(page)
        response.headers["Sforce-NumberOfRecords"] = str(len(rows))
        response.headers["Sforce-Locator"] = _encode_locator(end) if end < len(job.rowids) else "null"
        return response


def _encode_locator(offset: int) -> str:
    return base64.urlsafe_b64encode(str(offset).encode()).decode().rstrip("=")


def _decode_locator(locator: str) -> int:
    if not locator or locator == "null":
        return 0
    return int(base64.urlsafe_b64decode(locator + "=" * (-len(locator) % 4)).decode())
