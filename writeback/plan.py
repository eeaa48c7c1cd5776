"""The write plan: desired CRM values diffed against what the agent last wrote (and, when read, what the
CRM holds now), the task actions the rules call for, and the blast-radius guard's verdict.

``build_plan`` reads the store only; it never calls a CRM. ``writeback.apply.apply_plan`` carries it out.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import date, datetime
from typing import Any

from rich.table import Table
from sqlalchemy import Connection, Engine, and_, desc, func, select

from core.config import AgentConfig
from core.config.writeback import COMPANION_OUTPUTS, OUTPUTS, OutputKind, TaskRule, WritebackConfig
from core.records import now_utc
from store.models import Account, Activity, ActivityParticipant, Contact, ScoreHistory
from writeback import ledger
from writeback.guard import GuardOutcome, check_blast_radius
from writeback.tasks import (
    REVIEW_RULE,
    body_with_key,
    conditions_hold,
    decide,
    dedupe_key,
    due_date,
    render,
    template_context,
)
from writeback.values import Canonical, ScoreRow, canonical, differs, output_values

CRMS = ("salesforce", "hubspot")
_NEVER: Any = object()  # a field the agent never wrote
_ROW_CHUNK = 2_000


@dataclass(frozen=True, slots=True)
class FieldChange:
    """One field of one CRM record the plan wants to change."""

    crm: str
    object_type: str
    record_id: str
    account_id: int
    output: str
    field: str
    kind: OutputKind
    old: Canonical  # what the agent last wrote there (None: never written)
    new: Canonical  # what the agent wants there now
    current: Canonical = None  # what the CRM holds now, when read (see ``current_known``)
    current_known: bool = False
    action: str = "write"  # write | already_current | skip_human_edit | review_task
    human_edit: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class TaskAction:
    """Create, close or check one follow-up task."""

    kind: str  # create | close | check
    crm: str
    rule: str
    account_id: int
    record_id: str  # the account's (or company's) id in the CRM
    dedupe_key: str
    reason: str
    subject: str = ""
    body: str = ""  # as written, the dedupe key included
    owner_id: str | None = None
    due: date | None = None
    priority: str = "normal"  # high | normal | low
    task_id: str | None = None  # the CRM task, for close and check
    contact_id: str | None = None  # HubSpot: the champion contact to associate

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class AccountRef:
    account_id: int
    name: str
    owner_id: str | None


@dataclass
class WritePlan:
    """The changes and task actions of one run, and the guard's verdict; apply it with ``apply_plan``."""

    run_id: str
    crms: tuple[str, ...]
    config: WritebackConfig
    made_at: datetime
    accounts_scored: int
    changes: list[FieldChange]
    tasks: list[TaskAction]
    guard: GuardOutcome
    accounts: dict[tuple[str, str], AccountRef] = field(default_factory=dict)  # (crm, record id) -> account
    current_values_read: bool = False

    def object_type(self, crm: str) -> str:
        return self.config.salesforce.object if crm == "salesforce" else "companies"

    def writes(self, crm: str) -> dict[str, dict[str, FieldChange]]:
        """record id -> field -> change, for the changes that will be written to ``crm``."""
        out: dict[str, dict[str, FieldChange]] = {}
        for change in self.changes:
            if change.crm == crm and change.action == "write":
                out.setdefault(change.record_id, {})[change.field] = change
        return out

    def task_actions(self, crm: str, kind: str) -> list[TaskAction]:
        return [t for t in self.tasks if t.crm == crm and t.kind == kind]

    def summary(self) -> dict[str, Any]:
        records = {(c.crm, c.record_id) for c in self.changes if c.action == "write"}
        return {
            "run_id": self.run_id,
            "accounts_scored": self.accounts_scored,
            "fields_to_write": sum(1 for c in self.changes if c.action == "write"),
            "records_to_write": len(records),
            "human_edits": sum(1 for c in self.changes if c.human_edit),
            "tasks_to_create": sum(1 for t in self.tasks if t.kind == "create"),
            "tasks_to_close": sum(1 for t in self.tasks if t.kind == "close"),
            "guard": self.guard.to_dict(),
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.summary(),
            "crms": list(self.crms),
            "made_at": self.made_at.isoformat(),
            "current_values_read": self.current_values_read,
            "changes": [c.to_dict() for c in self.changes],
            "tasks": [t.to_dict() for t in self.tasks if t.kind != "check"],
        }

    def table(self, limit: int = 200) -> Table:
        """A rich table of the field changes and task actions (the first ``limit`` of each)."""
        table = Table(title=f"Write plan for run {self.run_id}", show_lines=False)
        for column in ("CRM", "Record", "Field", "Last written", "New", "Action"):
            table.add_column(column, overflow="fold")
        for change in self.changes[:limit]:
            table.add_row(
                change.crm, change.record_id, change.field, _show(change.old), _show(change.new),
                change.action + (" (human edit)" if change.human_edit else ""),
            )
        for task in [t for t in self.tasks if t.kind != "check"][:limit]:
            table.add_row(task.crm, task.record_id, f"task:{task.rule}", "", task.subject, task.kind)
        return table


def _show(value: Canonical) -> str:
    text = "" if value is None else str(value)
    return text if len(text) <= 60 else text[:57] + "..."


def build_plan(
    engine: Engine,
    config: AgentConfig,
    *,
    run_id: str,
    crms: Sequence[str],
    current_values: Mapping[tuple[str, str], Mapping[str, Any]] | None = None,
    now: datetime | None = None,
) -> WritePlan:
    """The plan for the scores of ``run_id`` on the accounts of ``crms`` (``accounts.source``).

    ``current_values`` ((crm, record id) -> field -> the CRM's value as read) turns on human-edit
    detection here; without it ``apply_plan`` reads the values of the records it is about to write.
    """
    wb = config.writeback
    now = now or now_utc()
    today = now.date()
    crms = tuple(c for c in crms if c in CRMS)
    changes: list[FieldChange] = []
    tasks: list[TaskAction] = []
    accounts: dict[tuple[str, str], AccountRef] = {}
    scored = band_changes = 0
    with engine.connect() as conn:
        for rows in _score_rows(conn, run_id, crms):
            scored += len(rows)
            band_changes += sum(1 for r in rows if r.band_changed)
            for crm in crms:
                crm_rows = [r for r in rows if r.crm == crm]
                if not crm_rows:
                    continue
                new_changes = _field_changes(conn, wb, crm, crm_rows)
                new_tasks = _task_actions(conn, wb, crm, crm_rows, now, today) if wb.tasks.enabled else []
                changes.extend(new_changes)
                tasks.extend(new_tasks)
                touched = {c.record_id for c in new_changes} | {t.record_id for t in new_tasks}
                accounts.update(
                    {(crm, r.record_id): AccountRef(r.account_id, r.account_name, r.owner_id)
                     for r in crm_rows if r.record_id in touched}
                )
        tasks = _with_champions(conn, wb, tasks)
    records = len({(c.crm, c.record_id) for c in changes})
    guard = check_blast_radius(wb.guard, accounts_scored=scored, band_changes=band_changes, records_to_write=records)
    plan = WritePlan(
        run_id=run_id, crms=crms, config=wb, made_at=now, accounts_scored=scored, changes=changes, tasks=tasks,
        guard=guard, accounts=accounts,
    )
    if current_values is not None:
        with engine.connect() as conn:
            resolve_current_values(conn, plan, current_values)
    return plan


def field_map(config: WritebackConfig, crm: str) -> dict[str, str]:
    """output name -> CRM field for ``crm``."""
    return dict(config.salesforce.fields if crm == "salesforce" else config.hubspot.fields)


def _field_changes(conn: Connection, wb: WritebackConfig, crm: str, rows: list[ScoreRow]) -> list[FieldChange]:
    mapping = field_map(wb, crm)
    if not mapping:
        return []
    object_type = wb.salesforce.object if crm == "salesforce" else "companies"
    record_ids = [r.record_id for r in rows]
    written = ledger.written_values(conn, crm, object_type, record_ids)
    unsure = ledger.unconfirmed(conn, crm, object_type, record_ids)
    specs = [(output, crm_field, OUTPUTS[output][0], wb.min_delta.get(output, 0.0))
             for output, crm_field in mapping.items()]
    out: list[FieldChange] = []
    for row in rows:
        values = output_values(row)
        last = written.get(row.record_id, {})
        record_changes: list[FieldChange] = []
        for output, crm_field, kind, min_delta in specs:
            new = values[output]
            old = last.get(crm_field, _NEVER)
            if old == new and not unsure:
                continue  # the common case: unchanged, and no unconfirmed attempt anywhere in this chunk
            if old is _NEVER:
                if new is None:
                    continue  # nothing to write into a field the agent never wrote
                old = None
            if (row.record_id, crm_field) in unsure or differs(kind, old, new, min_delta):
                record_changes.append(
                    FieldChange(crm, object_type, row.record_id, row.account_id, output, crm_field, kind, old, new)
                )
        if any(c.output not in COMPANION_OUTPUTS or (c.record_id, c.field) in unsure for c in record_changes):
            out.extend(record_changes)
    return out


def _task_actions(
    conn: Connection, wb: WritebackConfig, crm: str, rows: list[ScoreRow], now: datetime, today: date
) -> list[TaskAction]:
    rules = [r for r in wb.tasks.rules if crm in r.crms]
    if not rules:
        return []
    keyed = [(rule, row, dedupe_key(rule.name, crm, row.record_id)) for row in rows for rule in rules]
    entries = ledger.task_entries(conn, [key for _, _, key in keyed])
    out: list[TaskAction] = []
    for rule, row, key in keyed:
        entry = entries.get(key)
        decision = decide(rule, conditions_hold(rule.when, row, today), entry, now)
        if decision.action == "none":
            continue
        if decision.action == "create":
            out.append(_create_action(wb, crm, rule, row, key, today, decision.reason))
        else:
            assert entry is not None
            out.append(TaskAction(decision.action, crm, rule.name, row.account_id, row.record_id, key,
                                  decision.reason, subject=entry.subject, task_id=entry.task_id))
    return out


def _create_action(
    wb: WritebackConfig, crm: str, rule: TaskRule, row: ScoreRow, key: str, today: date, reason: str
) -> TaskAction:
    context = template_context(row, today, rule=rule.name)
    fallback = wb.salesforce.fallback_owner_id if crm == "salesforce" else wb.hubspot.fallback_owner_id
    owner = (row.owner_id or fallback) if rule.owner == "account_owner" else fallback
    return TaskAction(
        "create", crm, rule.name, row.account_id, row.record_id, key, reason,
        subject=render(rule.subject, context, f"{rule.name}: {row.account_name}")[:255],
        body=body_with_key(render(rule.body, context, row.drivers), key),
        owner_id=owner, due=due_date(today, rule.due_in_days), priority=rule.priority,
        contact_id="?" if (rule.associate_champion and crm == "hubspot") else None,
    )


def _with_champions(conn: Connection, wb: WritebackConfig, tasks: list[TaskAction]) -> list[TaskAction]:
    """Fill the champion contact (the account's most-engaged contact) of the HubSpot creates that want one."""
    wanted = [t.record_id for t in tasks if t.contact_id == "?"]
    if not wanted:
        return tasks
    champions = champion_contacts(conn, "hubspot", wanted)
    return [replace(t, contact_id=champions.get(t.record_id)) if t.contact_id == "?" else t for t in tasks]


def champion_contacts(conn: Connection, crm: str, record_ids: Sequence[str]) -> dict[str, str]:
    """account record id -> the contact (still there) who took part in the most activities."""
    ap, act, ct = ActivityParticipant.__table__, Activity.__table__, Contact.__table__
    touches = func.count().label("touches")
    query = (
        select(act.c.account_external_id, ap.c.contact_external_id, touches)
        .join(act, and_(act.c.source == ap.c.source, act.c.external_id == ap.c.activity_external_id))
        .join(ct, and_(ct.c.source == ap.c.source, ct.c.external_id == ap.c.contact_external_id))
        .where(ap.c.source == crm, act.c.account_external_id.in_(list(record_ids)), ~act.c.is_deleted,
               ~ct.c.is_deleted, ~ct.c.has_left)
        .group_by(act.c.account_external_id, ap.c.contact_external_id)
        .order_by(act.c.account_external_id, desc(touches), ap.c.contact_external_id)
    )
    out: dict[str, str] = {}
    for account, contact, _ in conn.execute(query):
        out.setdefault(account, contact)
    return out


def resolve_current_values(
    conn: Connection, plan: WritePlan, current: Mapping[tuple[str, str], Mapping[str, Any]]
) -> None:
    """Compare each change with the CRM's current value and apply the human-edit policy, in place.

    A value already equal to the desired one needs no write (e.g. a write that landed just before a crash).
    A value the agent itself sent in an attempt it never confirmed (a crash or time-out mid-call) is not an
    edit either. Any other value than the one the agent last wrote is a human edit: overwrite, skip it, or
    skip it and open a review task, per ``writeback.human_edits``.
    """
    policy = plan.config.human_edits
    reviews: list[FieldChange] = []
    changes = plan.changes
    for index, change in enumerate(changes):  # replaced in place: one copy of a large plan in memory
        values = current.get((change.crm, change.record_id))
        if values is None or change.field not in values:
            continue  # not readable (e.g. deleted): the write reports the error
        now_there = canonical(change.kind, values[change.field])
        if not differs(change.kind, now_there, change.new):
            changes[index] = replace(change, current=now_there, current_known=True, action="already_current")
        elif (
            change.old is not None
            and differs(change.kind, change.old, now_there)
            and not ledger.agent_attempted(conn, change.crm, change.object_type, change.record_id, change.field,
                                           now_there)
        ):
            action = {"overwrite": "write", "skip_and_report": "skip_human_edit",
                      "keep_and_review_task": "review_task"}[policy]
            changes[index] = replace(change, current=now_there, current_known=True, action=action, human_edit=True)
            if action == "review_task":
                reviews.append(changes[index])
        else:
            changes[index] = replace(change, current=now_there, current_known=True)
    plan.current_values_read = True
    plan.tasks.extend(_review_tasks(conn, plan, reviews))


def _review_tasks(conn: Connection, plan: WritePlan, edits: list[FieldChange]) -> list[TaskAction]:
    if not edits:
        return []
    tasks_config = plan.config.tasks
    keys = [dedupe_key(REVIEW_RULE, e.crm, e.record_id, e.field) for e in edits]
    entries = ledger.task_entries(conn, keys)
    planned = {t.dedupe_key for t in plan.tasks}
    out: list[TaskAction] = []
    for edit, key in zip(edits, keys, strict=True):
        entry = entries.get(key)
        if key in planned or (entry is not None and entry.status in ("open", "completed")):
            continue  # one review per edited field; a completed review means: keep the human's value
        planned.add(key)
        account = plan.accounts.get((edit.crm, edit.record_id), AccountRef(edit.account_id, edit.record_id, None))
        fallback = (plan.config.salesforce if edit.crm == "salesforce" else plan.config.hubspot).fallback_owner_id
        context = {"field": edit.field, "account_name": account.name, "current": edit.current,
                   "last_written": edit.old, "computed": edit.new}
        body = (
            f"{edit.field} holds {edit.current!r}, which someone changed from the {edit.old!r} the health agent "
            f"wrote. The agent now computes {edit.new!r} and leaves the field alone until this is reviewed."
        )
        out.append(TaskAction(
            "create", edit.crm, REVIEW_RULE, edit.account_id, edit.record_id, key, "human edit to review",
            subject=render(tasks_config.review_subject, context, f"Review {edit.field}")[:255],
            body=body_with_key(body, key),
            owner_id=account.owner_id or fallback, due=due_date(plan.made_at.date(), tasks_config.review_due_in_days),
            priority="normal",
        ))
    return out


def _score_rows(conn: Connection, run_id: str, crms: Sequence[str]) -> Iterator[list[ScoreRow]]:
    """This run's scores joined to their accounts, with each account's previous band, in chunks."""
    sh, acc = ScoreHistory.__table__, Account.__table__
    prev = ScoreHistory.__table__.alias("prev")
    previous_band = (
        select(prev.c.band)
        .where(prev.c.account_id == sh.c.account_id, prev.c.run_id != sh.c.run_id, prev.c.scored_at <= sh.c.scored_at)
        .order_by(prev.c.scored_at.desc(), prev.c.id.desc())
        .limit(1)
        .scalar_subquery()
    )
    query = (
        select(
            sh.c.account_id, acc.c.source, acc.c.external_id, acc.c.name, acc.c.owner_external_id, acc.c.renewal_date,
            sh.c.scored_at, sh.c.score, sh.c.band, previous_band.label("previous_band"), sh.c.coverage,
            sh.c.low_confidence, sh.c.trend_delta, sh.c.trend_days, sh.c.direction, sh.c.relationship_capital,
            sh.c.thread_count, sh.c.flags, sh.c.drivers,
        )
        .join(acc, acc.c.id == sh.c.account_id)
        .where(sh.c.run_id == run_id, acc.c.source.in_(list(crms)), ~acc.c.is_deleted)
        .order_by(sh.c.account_id)
    )
    result = conn.execute(query.execution_options(yield_per=_ROW_CHUNK))
    for chunk in result.partitions(_ROW_CHUNK):
        yield [
            ScoreRow(
                account_id=r.account_id, crm=r.source, record_id=r.external_id, account_name=r.name or r.external_id,
                owner_id=r.owner_external_id, renewal_date=r.renewal_date, scored_at=r.scored_at, score=r.score,
                band=r.band, previous_band=r.previous_band, coverage=r.coverage, low_confidence=bool(r.low_confidence),
                trend_delta=r.trend_delta, trend_days=r.trend_days, direction=r.direction,
                relationship_capital=r.relationship_capital, thread_count=r.thread_count,
                flags=_flags(r.flags), drivers=r.drivers or "",
            )
            for r in chunk
        ]


def _flags(raw: Any) -> dict[str, bool]:
    """score_history.flags is name -> {on, reason} (or name -> bool); keep name -> on."""
    out: dict[str, bool] = {}
    for name, value in (raw or {}).items():
        out[name] = bool(value.get("on")) if isinstance(value, dict) else bool(value)
    return out
