"""Carry out a write plan through the CRM clients and record every outcome in the ledgers.

Order of work per CRM: read the current values of the records about to change (human-edit check),
write the fields batch by batch (each batch's ledger rows commit with its outcome), then the tasks:
check open ones, close cleared ones, and create new ones (looked up by dedupe key first, with a
``pending`` ledger row committed before the create so an interrupted create is found, not repeated).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import Engine

from connectors.hubspot.client import HubSpotClient
from connectors.salesforce.client import SalesforceClient
from core.config.writeback import WritebackConfig
from core.errors import ApiError
from core.records import now_utc
from writeback import ledger
from writeback.hubspot import HubSpotWriter
from writeback.ledger import FieldOutcome, TaskEntry
from writeback.plan import FieldChange, TaskAction, WritePlan, field_map, resolve_current_values
from writeback.salesforce import SalesforceWriter
from writeback.writer import CrmWriter, TaskCreate, chunks

log = logging.getLogger(__name__)
_LEDGER_CHUNK = 20_000  # ledger rows built and inserted at a time


@dataclass
class CrmReport:
    """What writeback did in one CRM."""

    fields_written: int = 0
    records_written: int = 0
    already_current: int = 0
    write_calls: int = 0  # composite / batch-update calls (and Bulk jobs), retries not counted
    bulk_jobs: int = 0
    api_calls: int = 0  # every call writeback made through the client (reads, retries included)
    failures: dict[str, str] = field(default_factory=dict)  # record id -> error
    human_edits: list[dict[str, Any]] = field(default_factory=list)  # field, record, current, last written, action
    tasks_created: int = 0
    tasks_found: int = 0  # created before (e.g. an interrupted run) and found by key: not created again
    tasks_closed: int = 0
    tasks_completed_by_user: int = 0
    tasks_failed: dict[str, str] = field(default_factory=dict)  # dedupe key -> error
    stopped: str | None = None  # why writing stopped early (credentials, API budget)


@dataclass
class WritebackReport:
    """The outcome of ``apply_plan``: per CRM, and the guard's verdict."""

    run_id: str
    dry_run: bool
    forced: bool
    guard_stopped: bool
    guard_reason: str | None
    crms: dict[str, CrmReport] = field(default_factory=dict)

    @property
    def fields_written(self) -> int:
        return sum(r.fields_written for r in self.crms.values())

    @property
    def records_written(self) -> int:
        return sum(r.records_written for r in self.crms.values())

    @property
    def failed_records(self) -> int:
        return sum(len(r.failures) for r in self.crms.values())

    @property
    def tasks_created(self) -> int:
        return sum(r.tasks_created for r in self.crms.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id, "dry_run": self.dry_run, "forced": self.forced,
            "guard_stopped": self.guard_stopped, "guard_reason": self.guard_reason,
            "fields_written": self.fields_written, "records_written": self.records_written,
            "failed_records": self.failed_records, "tasks_created": self.tasks_created,
            "crms": {name: asdict(r) for name, r in self.crms.items()},
        }


def make_writer(crm: str, client: Any, config: WritebackConfig) -> CrmWriter:
    """The writer for a connector client (a writer passed in is used as is)."""
    if isinstance(client, SalesforceClient):
        return SalesforceWriter(client, config.salesforce)
    if isinstance(client, HubSpotClient):
        return HubSpotWriter(client, config.hubspot)
    if hasattr(client, "write") and getattr(client, "crm", None) == crm:
        writer: CrmWriter = client
        return writer
    raise TypeError(f"no writeback writer for a {type(client).__name__} as the {crm} client")


def apply_plan(
    engine: Engine,
    plan: WritePlan,
    *,
    clients: Mapping[str, Any],
    run_id: str,
    dry_run: bool = False,
    force: bool = False,
) -> WritebackReport:
    """Apply ``plan`` through ``clients`` (crm -> SalesforceClient / HubSpotClient).

    The blast-radius guard stops everything unless ``force``. ``dry_run`` reads (current values, task
    states) but writes nothing to the CRM or the ledgers; the report then says what would happen.
    """
    report = WritebackReport(run_id, dry_run, force, plan.guard.stopped and not force, plan.guard.reason)
    if report.guard_stopped:
        log.warning("writeback stopped by the blast-radius guard: %s", plan.guard.reason, extra={"run_id": run_id})
        return report
    writers = {crm: make_writer(crm, clients[crm], plan.config) for crm in plan.crms if crm in clients}
    calls_before = {crm: w.api_calls() for crm, w in writers.items()}
    unreadable: dict[str, str] = {}  # crm -> why its current values could not be read
    if plan.config.read_current_values and not plan.current_values_read:
        current: dict[tuple[str, str], dict[str, Any]] = {}
        for crm, writer in writers.items():
            ids = list(plan.writes(crm))
            try:
                values = writer.read_current(ids, list(field_map(plan.config, crm).values())) if ids else {}
            except ApiError as exc:
                unreadable[crm] = f"current values could not be read, so nothing was written: {exc.user_message}"
                continue
            current.update({(crm, rid): v for rid, v in values.items()})
        with engine.connect() as conn:
            resolve_current_values(conn, plan, current)
    for crm, writer in writers.items():
        crm_report = report.crms[crm] = CrmReport(stopped=unreadable.get(crm))
        _record_human_edits(plan, crm, crm_report)
        if dry_run:
            _dry_run_counts(plan, crm, crm_report)
        elif crm not in unreadable:
            try:  # a CRM that fails does not stop the other; each batch's outcome is already committed
                _record_unwritten(engine, plan, crm, run_id)
                _write_fields(engine, plan, crm, writer, crm_report, run_id)
                _apply_tasks(engine, plan, crm, writer, crm_report, run_id)
            except ApiError as exc:
                crm_report.stopped = exc.user_message
        crm_report.api_calls = writer.api_calls() - calls_before[crm]
        log.info(
            "writeback %s: %d fields on %d records in %d write calls (%d API calls), %d failed records, "
            "%d tasks created, %d closed", crm, crm_report.fields_written, crm_report.records_written,
            crm_report.write_calls, crm_report.api_calls, len(crm_report.failures), crm_report.tasks_created,
            crm_report.tasks_closed, extra={"run_id": run_id, "source": crm},
        )
    return report


def _record_human_edits(plan: WritePlan, crm: str, report: CrmReport) -> None:
    for change in plan.changes:
        if change.crm == crm and change.human_edit:
            report.human_edits.append({
                "record_id": change.record_id, "field": change.field, "current": change.current,
                "last_written": change.old, "computed": change.new, "action": change.action,
            })
        elif change.crm == crm and change.action == "already_current":
            report.already_current += 1


def _dry_run_counts(plan: WritePlan, crm: str, report: CrmReport) -> None:
    writes = plan.writes(crm)
    report.records_written = len(writes)
    report.fields_written = sum(len(f) for f in writes.values())
    report.tasks_created = len(plan.task_actions(crm, "create"))
    report.tasks_closed = len(plan.task_actions(crm, "close"))


def _record_unwritten(engine: Engine, plan: WritePlan, crm: str, run_id: str) -> None:
    """Ledger rows of the changes that need no write: already current, or a human edit left alone."""
    outcome_of = {"already_current": "already_current", "skip_human_edit": "skipped_human_edit",
                  "review_task": "review_task"}
    unwritten = [c for c in plan.changes if c.crm == crm and c.action in outcome_of]
    if unwritten:
        with engine.begin() as conn:
            for chunk in chunks(unwritten, _LEDGER_CHUNK):  # bounded memory; one transaction
                ledger.record_outcomes(conn, run_id, [_outcome(c, outcome_of[c.action]) for c in chunk], now_utc())


def _outcome(change: FieldChange, outcome: str, error: str | None = None) -> FieldOutcome:
    previous = change.current if change.current_known else change.old
    return FieldOutcome(change.crm, change.object_type, change.record_id, change.field, change.new, previous,
                        outcome, error)


def _write_fields(
    engine: Engine, plan: WritePlan, crm: str, writer: CrmWriter, report: CrmReport, run_id: str
) -> None:
    writes = plan.writes(crm)
    if not writes:
        return
    values = {rid: {f: c.new for f, c in fields.items()} for rid, fields in writes.items()}
    with engine.begin() as conn:
        ledger.record_attempts(conn, run_id, crm, plan.object_type(crm), values, now_utc())
    for batch in writer.write(values):
        report.write_calls += batch.bulk_jobs or 1
        report.bulk_jobs += batch.bulk_jobs
        with engine.begin() as conn:  # the batch's outcomes commit together (a Bulk job's in bounded chunks)
            for chunk in chunks(batch.record_ids, _LEDGER_CHUNK // 16):
                outcomes: list[FieldOutcome] = []
                for rid in chunk:
                    error = batch.failed.get(rid)
                    if error is None:
                        report.records_written += 1
                        report.fields_written += len(writes[rid])
                    else:
                        report.failures[rid] = error
                    outcomes.extend(
                        _outcome(c, "failed", error) if error is not None
                        else _outcome(c, "overwrote_human_edit" if c.human_edit else "written")
                        for c in writes[rid].values()
                    )
                ledger.record_outcomes(conn, run_id, outcomes, now_utc())
        if batch.fatal:
            report.stopped = next(iter(batch.failed.values()), "stopped")
            return


def _apply_tasks(engine: Engine, plan: WritePlan, crm: str, writer: CrmWriter, report: CrmReport, run_id: str) -> None:
    if report.stopped:
        return
    now = plan.made_at  # task times are the run's clock, so cooldowns compare like with like
    checks = [t for t in plan.task_actions(crm, "check") if t.task_id]
    if checks:
        still_open = writer.open_task_ids([t.task_id for t in checks if t.task_id])
        done = [t.dedupe_key for t in checks if t.task_id not in still_open]
        if done:
            with engine.begin() as conn:
                ledger.set_task_status(conn, done, "completed", now)
            report.tasks_completed_by_user += len(done)
    closes = [t for t in plan.task_actions(crm, "close") if t.task_id]
    if closes:
        results = writer.close_tasks([t.task_id for t in closes if t.task_id])
        closed = [t.dedupe_key for t in closes if t.task_id in results and results[t.task_id] is None]
        with engine.begin() as conn:
            ledger.set_task_status(conn, closed, "closed", now)
        report.tasks_closed += len(closed)
        report.tasks_failed.update({t.dedupe_key: str(results.get(t.task_id or "")) for t in closes
                                    if t.dedupe_key not in closed})
    creates = plan.task_actions(crm, "create")
    if creates:
        _create_tasks(engine, plan, creates, writer, report, run_id)


def _create_tasks(
    engine: Engine, plan: WritePlan, creates: list[TaskAction], writer: CrmWriter, report: CrmReport, run_id: str
) -> None:
    config, now = plan.config, plan.made_at
    with engine.connect() as conn:
        entries = ledger.task_entries(conn, [t.dedupe_key for t in creates])
    lookup = {
        t.dedupe_key: t.record_id for t in creates
        if config.tasks.lookup_before_create == "always"
        or (t.dedupe_key in entries and entries[t.dedupe_key].status == "pending")
    }
    found = writer.find_open_tasks(lookup) if lookup else {}
    to_create = [t for t in creates if t.dedupe_key not in found]
    with engine.begin() as conn:
        for task in creates:
            entry = _entry(task, found.get(task.dedupe_key), "open" if task.dedupe_key in found else "pending", now)
            ledger.save_task(conn, entry, run_id, now)
    report.tasks_found += len(found)
    if not to_create:
        return
    results = writer.create_tasks([
        TaskCreate(t.dedupe_key, t.record_id, t.subject, t.body, t.due or now.date(), t.priority, t.owner_id,
                   t.contact_id)
        for t in to_create
    ])
    by_key = {t.dedupe_key: t for t in to_create}
    with engine.begin() as conn:
        for result in results:
            if result.task_id is None:
                report.tasks_failed[result.dedupe_key] = result.error or "not created"
                continue  # stays pending: the next run looks it up, then creates it
            ledger.save_task(conn, _entry(by_key[result.dedupe_key], result.task_id, "open", now), run_id, now)
            report.tasks_created += 1


def _entry(task: TaskAction, task_id: str | None, status: str, at: Any) -> TaskEntry:
    return TaskEntry(task.dedupe_key, task.crm, task.rule, task.account_id, task_id, status, task.subject, at, None)
