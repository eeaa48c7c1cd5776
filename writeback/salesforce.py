"""Salesforce writer: field updates through ``composite/sobjects`` (200 per call, ``allOrNone=false``) or a
Bulk API 2.0 ingest job above ``limits.salesforce.bulk_write_threshold``, current values by SOQL (one query
per 200 ids), and follow-up ``Task`` records found again by the dedupe key in their Description.

Every call goes through ``connectors.salesforce.client.SalesforceClient`` (its retries and API budget).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from connectors.salesforce.client import SalesforceClient
from connectors.salesforce.soql import identifier, literal_list
from core.config.writeback import SalesforceWritebackConfig
from core.errors import ApiError
from writeback.tasks import salesforce_priority
from writeback.values import Canonical, to_csv_cell
from writeback.writer import BatchResult, TaskCreate, TaskCreated, chunks, stops_run

_READ_IDS_PER_QUERY = 200
_CLOSED_STATUSES = ("Completed", "Deferred")


class SalesforceWriter:
    """Writes one org's Account fields and Tasks through a ``SalesforceClient``."""

    crm = "salesforce"

    def __init__(self, client: SalesforceClient, config: SalesforceWritebackConfig) -> None:
        self.client = client
        self.config = config
        self.object_type: str = config.object
        limits = client.limit_config.salesforce
        self.batch_size = limits.write_batch_size
        self.bulk_threshold = limits.bulk_write_threshold

    def api_calls(self) -> int:
        return self.client.stats.snapshot("salesforce").calls

    def read_current(self, record_ids: Sequence[str], fields: Sequence[str]) -> dict[str, dict[str, Any]]:
        """record id -> field -> value as Salesforce holds it (records not found are absent)."""
        columns = ", ".join(["Id", *(identifier(f) for f in fields)])
        out: dict[str, dict[str, Any]] = {}
        for chunk in chunks(list(record_ids), _READ_IDS_PER_QUERY):
            soql = f"SELECT {columns} FROM {self._object()} WHERE Id IN {literal_list(chunk)}"
            for record in self.client.query_iter(soql):
                out[str(record["Id"])] = {f: record.get(f) for f in fields}
        return out

    def _object(self) -> str:
        return identifier(self.object_type, what="object")

    def write(self, records: Mapping[str, Mapping[str, Canonical]]) -> Iterator[BatchResult]:
        """Write record id -> field -> value; yields one result per composite call (or one for a Bulk job)."""
        ids = list(records)
        if len(ids) > self.bulk_threshold:
            yield self._bulk(records)
            return
        for chunk in chunks(ids, self.batch_size):
            body = [{"attributes": {"type": self.object_type}, "id": rid, **records[rid]} for rid in chunk]
            try:
                results = self.client.composite_update(body, all_or_none=False)
            except ApiError as exc:
                yield BatchResult(chunk, {rid: str(exc) for rid in chunk}, fatal=stops_run(exc))
                if stops_run(exc):
                    return
                continue
            failed = {
                rid: "; ".join(f"{e.status_code}: {e.message}" for e in result.errors) or "not saved"
                for rid, result in zip(chunk, results, strict=False)
                if not result.success
            }
            failed.update(dict.fromkeys(chunk[len(results):], "no result returned"))
            yield BatchResult(chunk, failed)

    def _bulk(self, records: Mapping[str, Mapping[str, Canonical]]) -> BatchResult:
        ids = list(records)
        fields = sorted({f for values in records.values() for f in values})
        rows = [{"Id": rid, **{f: to_csv_cell(records[rid].get(f)) for f in fields}} for rid in ids]
        try:
            result = self.client.bulk2_ingest(self.object_type, "update", rows)
        except ApiError as exc:
            return BatchResult(ids, {rid: str(exc) for rid in ids}, fatal=stops_run(exc), bulk_jobs=1)
        ok = {_id15(row.get("sf__Id", "")) for row in result.successful}
        failed = {
            _id15(row.get("sf__Id") or row.get("Id", "")): row.get("sf__Error", "failed") for row in result.failed
        }
        outcome = {
            rid: failed.get(_id15(rid), "not processed by the Bulk job")
            for rid in ids
            if _id15(rid) not in ok
        }
        return BatchResult(ids, outcome, bulk_jobs=len(result.job_ids))

    # --- tasks ---------------------------------------------------------------------------------------

    def find_open_tasks(self, keys: Mapping[str, str]) -> dict[str, str]:
        """dedupe key -> Id of an open Task on the key's account (key -> account Id) whose Description carries it.

        Salesforce cannot filter on Description (a long text area), so the open Tasks of the accounts are read
        (one SOQL per 200 accounts) and their Descriptions searched here.
        """
        by_account: dict[str, list[str]] = {}
        for key, account_id in keys.items():
            by_account.setdefault(account_id, []).append(key)
        out: dict[str, str] = {}
        closed = literal_list(self._closed())
        for chunk in chunks(list(by_account), _READ_IDS_PER_QUERY):
            soql = (
                f"SELECT Id, WhatId, Description FROM Task WHERE WhatId IN {literal_list(chunk)} "
                f"AND Status NOT IN {closed}"
            )
            for record in self.client.query_iter(soql):
                description = str(record.get("Description") or "")
                for key in by_account.get(str(record.get("WhatId")), []):
                    if key in description:
                        out.setdefault(key, str(record["Id"]))
        return out

    def open_task_ids(self, task_ids: Sequence[str]) -> set[str]:
        """The Tasks among ``task_ids`` that exist and are not completed."""
        out: set[str] = set()
        for chunk in chunks(list(task_ids), _READ_IDS_PER_QUERY):
            soql = f"SELECT Id, Status FROM Task WHERE Id IN {literal_list(chunk)}"
            out.update(str(r["Id"]) for r in self.client.query_iter(soql) if r.get("Status") not in self._closed())
        return {tid for tid in task_ids if tid in out}

    def _closed(self) -> tuple[str, ...]:
        return (*_CLOSED_STATUSES, self.config.task_status_closed)

    def create_tasks(self, tasks: Sequence[TaskCreate]) -> list[TaskCreated]:
        """Create Tasks, 200 per call; one outcome per task, in order."""
        out: list[TaskCreated] = []
        for chunk in chunks(list(tasks), self.batch_size):
            body = [self._task_fields(t) for t in chunk]
            try:
                results = self.client.composite_create(body, all_or_none=False, sobject="Task")
            except ApiError as exc:
                out.extend(TaskCreated(t.dedupe_key, None, str(exc)) for t in chunk)
                continue
            for task, result in zip(chunk, results, strict=False):
                error = None if result.success else "; ".join(f"{e.status_code}: {e.message}" for e in result.errors)
                out.append(TaskCreated(task.dedupe_key, result.id if result.success else None, error))
            out.extend(TaskCreated(t.dedupe_key, None, "no result returned") for t in chunk[len(results):])
        return out

    def _task_fields(self, task: TaskCreate) -> dict[str, Any]:
        fields: dict[str, Any] = {
            "attributes": {"type": "Task"},
            "WhatId": task.record_id,
            "Subject": task.subject[:255],
            "Description": task.body,
            "ActivityDate": task.due.isoformat(),
            "Priority": salesforce_priority(task.priority),
            "Status": self.config.task_status_open,
        }
        if task.owner_id:
            fields["OwnerId"] = task.owner_id
        return fields

    def close_tasks(self, task_ids: Sequence[str]) -> dict[str, str | None]:
        """Complete open Tasks; task id -> error (None when closed)."""
        out: dict[str, str | None] = {}
        for chunk in chunks(list(task_ids), self.batch_size):
            closed = self.config.task_status_closed
            body = [{"attributes": {"type": "Task"}, "id": tid, "Status": closed} for tid in chunk]
            try:
                results = self.client.composite_update(body, all_or_none=False)
            except ApiError as exc:
                out.update({tid: str(exc) for tid in chunk})
                continue
            for tid, result in zip(chunk, results, strict=False):
                out[tid] = None if result.success else "; ".join(e.message for e in result.errors)
        return out


def _id15(record_id: str) -> str:
    """Salesforce ids compare on their first 15 characters (the 18-character form adds a checksum)."""
    return record_id[:15]
