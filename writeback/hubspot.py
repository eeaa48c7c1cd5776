"""HubSpot writer: company property updates through batch update (100 per call; a 207's per-record errors
are failures of those records only), current values by batch read (100 per call), and tasks associated
with the company (type 192) and optionally the champion contact (type 204), found again by the dedupe key
in ``hs_task_body`` (search, ``CONTAINS_TOKEN``).

Every call goes through ``connectors.hubspot.client.HubSpotClient`` (its rate limiters and retries).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime, time
from typing import Any

from connectors.hubspot.client import BatchOutcome, HubSpotClient
from core.config.writeback import HubSpotWritebackConfig
from core.errors import ApiError
from writeback.tasks import hubspot_priority
from writeback.values import Canonical
from writeback.writer import BatchResult, TaskCreate, TaskCreated, chunks, stops_run

TASK_TO_COMPANY = 192
TASK_TO_CONTACT = 204
_KEYS_PER_SEARCH = 5  # HubSpot allows 5 filter groups per search (OR between groups)
_BATCH = 100


class HubSpotWriter:
    """Writes one HubSpot account's company properties and tasks through a ``HubSpotClient``."""

    crm = "hubspot"
    object_type = "companies"

    def __init__(self, client: HubSpotClient, config: HubSpotWritebackConfig) -> None:
        self.client = client
        self.config = config
        self.batch_size = min(_BATCH, client.limit_config.hubspot.write_batch_size)

    def api_calls(self) -> int:
        return self.client.stats.snapshot("hubspot").calls

    def read_current(self, record_ids: Sequence[str], fields: Sequence[str]) -> dict[str, dict[str, Any]]:
        """company id -> property -> value as HubSpot holds it (a string or None); missing companies absent."""
        out: dict[str, dict[str, Any]] = {}
        for chunk in chunks(list(record_ids), _BATCH):
            try:
                outcome = self.client.batch_read(self.object_type, list(chunk), list(fields))
            except ApiError:
                continue  # unreadable now: the write reports the record's own error
            for record in outcome.results:
                props = record.get("properties") or {}
                out[str(record["id"])] = {f: props.get(f) for f in fields}
        return out

    def write(self, records: Mapping[str, Mapping[str, Canonical]]) -> Iterator[BatchResult]:
        """Write company id -> property -> value, 100 companies per call; one result per call."""
        for chunk in chunks(list(records), self.batch_size):
            # the client sends values as HubSpot wants them: strings, booleans lowercase, None as ''
            inputs = [{"id": rid, "properties": dict(records[rid])} for rid in chunk]
            try:
                outcome = self.client.batch_update(self.object_type, inputs)
            except ApiError as exc:
                yield BatchResult(chunk, {rid: str(exc) for rid in chunk}, fatal=stops_run(exc))
                if stops_run(exc):
                    return
                continue
            yield BatchResult(chunk, _failures(chunk, outcome))

    # --- tasks ---------------------------------------------------------------------------------------

    def find_open_tasks(self, keys: Mapping[str, str]) -> dict[str, str]:
        """dedupe key -> id of a task not completed whose body carries the key (key -> company id)."""
        out: dict[str, str] = {}
        for chunk in chunks(list(keys), _KEYS_PER_SEARCH):
            groups = [
                {"filters": [
                    {"propertyName": "hs_task_body", "operator": "CONTAINS_TOKEN", "value": key},
                    {"propertyName": "hs_task_status", "operator": "NEQ", "value": "COMPLETED"},
                ]}
                for key in chunk
            ]
            after: str | None = None
            while True:
                page = self.client.search("tasks", groups, [], ["hs_task_body", "hs_task_status"], after=after)
                for task in page.get("results") or []:
                    body = str((task.get("properties") or {}).get("hs_task_body") or "")
                    for key in chunk:
                        if key in body:
                            out.setdefault(key, str(task["id"]))
                after = ((page.get("paging") or {}).get("next") or {}).get("after")
                if not after:
                    break
        return out

    def open_task_ids(self, task_ids: Sequence[str]) -> set[str]:
        """The tasks among ``task_ids`` that exist and are not completed."""
        out: set[str] = set()
        for chunk in chunks(list(task_ids), _BATCH):
            outcome = self.client.batch_read("tasks", list(chunk), ["hs_task_status"])
            out.update(
                str(r["id"]) for r in outcome.results
                if (r.get("properties") or {}).get("hs_task_status") != "COMPLETED" and not r.get("archived")
            )
        return out

    def create_tasks(self, tasks: Sequence[TaskCreate]) -> list[TaskCreated]:
        """Create tasks one call each (with their associations); one outcome per task, in order."""
        out: list[TaskCreated] = []
        for task in tasks:
            associations = [_association(task.record_id, TASK_TO_COMPANY)]
            if task.contact_id:
                associations.append(_association(task.contact_id, TASK_TO_CONTACT))
            properties: dict[str, Any] = {
                "hs_task_subject": task.subject[:255],
                "hs_task_body": task.body,
                "hs_timestamp": datetime.combine(task.due, time(0), UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
                "hs_task_status": "NOT_STARTED",
                "hs_task_priority": hubspot_priority(task.priority),
                "hs_task_type": "TODO",
            }
            if task.owner_id:
                properties["hubspot_owner_id"] = task.owner_id
            try:
                out.append(TaskCreated(task.dedupe_key, self.client.create("tasks", properties, associations)))
            except ApiError as exc:
                out.append(TaskCreated(task.dedupe_key, None, str(exc)))
                if stops_run(exc):
                    out.extend(TaskCreated(t.dedupe_key, None, str(exc)) for t in tasks[len(out):])
                    break
        return out

    def close_tasks(self, task_ids: Sequence[str]) -> dict[str, str | None]:
        """Complete open tasks, 100 per call; task id -> error (None when closed)."""
        out: dict[str, str | None] = {}
        for chunk in chunks(list(task_ids), self.batch_size):
            inputs = [{"id": tid, "properties": {"hs_task_status": "COMPLETED"}} for tid in chunk]
            try:
                outcome = self.client.batch_update("tasks", inputs)
            except ApiError as exc:
                out.update({tid: str(exc) for tid in chunk})
                continue
            failed = _failures(chunk, outcome)
            out.update({tid: failed.get(tid) for tid in chunk})
        return out


def _association(to_id: str, type_id: int) -> dict[str, Any]:
    return {"to": {"id": to_id}, "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": type_id}]}


def _failures(ids: Sequence[str], outcome: BatchOutcome) -> dict[str, str]:
    """Per-record errors of a batch call: ids named by an error, and ids with no result at all."""
    landed = {str(r.get("id")) for r in outcome.results}
    named: dict[str, str] = {}
    for error in outcome.errors:
        for rid in error.ids:
            named[rid] = f"{error.category}: {error.message}"
    unnamed = "; ".join(f"{e.category}: {e.message}" for e in outcome.errors if not e.ids) or "no result returned"
    return {rid: named.get(rid, unnamed) for rid in ids if rid in named or rid not in landed}
