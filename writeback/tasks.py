"""Task rules: when a follow-up task is due for an account, its text, owner and dedupe key.

One open task per (rule, account): the dedupe key is derived from both, kept in ``task_ledger`` and
written into the task's body, so the agent can find a task it created even if it crashed before
recording it. After a task is completed the rule waits ``cooldown_days``; with ``auto_close`` an
open task is completed when its conditions stop holding.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from jinja2 import StrictUndefined, TemplateError
from jinja2.sandbox import SandboxedEnvironment

from core.config.writeback import TaskConditions, TaskRule
from writeback.ledger import TaskEntry
from writeback.values import ScoreRow

log = logging.getLogger(__name__)
_ENV = SandboxedEnvironment(autoescape=False, undefined=StrictUndefined, trim_blocks=True)
KEY_LABEL = "health-agent key:"
REVIEW_RULE = "human_edit_review"


def dedupe_key(rule: str, crm: str, record_id: str, extra: str = "") -> str:
    """A stable, search-friendly key for (rule, account): letters and digits only, so CRM search treats it
    as one token (HubSpot CONTAINS_TOKEN, Salesforce LIKE)."""
    digest = hashlib.sha256(f"{rule}|{crm}|{record_id}|{extra}".encode()).hexdigest()[:24]
    return f"HA{digest}"


def body_with_key(body: str, key: str) -> str:
    """The task body as written: the rendered text, then the dedupe key on its own line."""
    return f"{body.rstrip()}\n\n{KEY_LABEL} {key}"


def conditions_hold(when: TaskConditions, row: ScoreRow, today: date) -> bool:
    """True when every condition given in ``when`` holds for this score (an absent value fails a condition)."""
    checks: list[bool] = []
    if when.band_in is not None:
        checks.append(row.band in when.band_in)
    if when.band_became is not None:
        checks.append(row.band_changed and row.band == when.band_became)
    if when.band_changed is not None:
        checks.append(row.band_changed == when.band_changed)
    if when.score_below is not None:
        checks.append(row.score < when.score_below)
    if when.score_at_least is not None:
        checks.append(row.score >= when.score_at_least)
    if when.score_fell_by is not None:
        checks.append(row.trend_delta is not None and row.trend_delta <= -when.score_fell_by)
    if when.trend_in is not None:
        checks.append(row.direction in when.trend_in)
    checks.extend(bool(row.flags.get(flag)) for flag in when.flags_on)
    checks.extend(not row.flags.get(flag) for flag in when.flags_off)
    if when.renewal_within_days is not None:
        days = row.days_to_renewal(today)
        checks.append(days is not None and 0 <= days <= when.renewal_within_days)
    if when.coverage_below is not None:
        checks.append(row.coverage < when.coverage_below)
    return all(checks)


def template_context(row: ScoreRow, today: date, **more: Any) -> dict[str, Any]:
    """The variables subject and body templates can use."""
    return {
        "account_name": row.account_name,
        "score": round(row.score, 1),
        "band": row.band,
        "previous_band": row.previous_band,
        "trend": row.direction,
        "delta": None if row.trend_delta is None else round(row.trend_delta, 1),
        "trend_days": row.trend_days,
        "drivers": row.drivers,
        "flags": dict(row.flags),
        "flags_on": sorted(name for name, on in row.flags.items() if on),
        "coverage": round(row.coverage * 100),
        "low_confidence": row.low_confidence,
        "relationship_capital": row.relationship_capital,
        "thread_count": row.thread_count,
        "renewal_date": row.renewal_date,
        "days_to_renewal": row.days_to_renewal(today),
        **more,
    }


def render(template: str, context: dict[str, Any], fallback: str) -> str:
    """Render a subject or body template; on an error (e.g. arithmetic on a missing value) log it and use
    ``fallback``, so one account's odd data never stops the plan."""
    try:
        return _ENV.from_string(template).render(context).strip()
    except (TemplateError, TypeError, ValueError, ArithmeticError) as exc:
        log.warning("task template %r failed (%s); using %r", template[:60], exc, fallback)
        return fallback


@dataclass(frozen=True)
class TaskDecision:
    """What a rule wants for one account, given its ledger entry."""

    action: str  # create | close | check | none
    reason: str


def decide(rule: TaskRule, holds: bool, entry: TaskEntry | None, now: datetime) -> TaskDecision:
    """Create when due and no task is open (or cooling down); close or check an open task."""
    if holds:
        if entry is None:
            return TaskDecision("create", "conditions hold")
        if entry.status == "pending":
            return TaskDecision("create", "an earlier create was interrupted; look it up first")
        if entry.status == "open":
            return TaskDecision("check", "a task is open; check it is still open")
        done_at = entry.completed_at or entry.created_at
        if now - done_at >= timedelta(days=rule.cooldown_days):
            return TaskDecision("create", f"conditions hold again after the {rule.cooldown_days}-day cooldown")
        return TaskDecision("none", "cooling down after the last task")
    if entry is not None and entry.status == "open" and rule.auto_close:
        return TaskDecision("close", "conditions no longer hold")
    return TaskDecision("none", "conditions do not hold")


def salesforce_priority(priority: str) -> str:
    return {"high": "High", "normal": "Normal", "low": "Low"}[priority]


def hubspot_priority(priority: str) -> str:
    return {"high": "HIGH", "normal": "MEDIUM", "low": "LOW"}[priority]


def due_date(today: date, days: int) -> date:
    return today + timedelta(days=days)
