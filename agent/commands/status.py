"""``health-agent status``: recent runs, cursors, API usage against limits and failing streams.

``--writes`` shows the write audit trail instead (before and after values, outcome).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from rich.table import Table
from sqlalchemy import Engine, select

from agent.context import CommandContext
from agent.scheduler import next_fire_times
from store.models import Run, SyncState


def recent_runs(engine: Engine, limit: int) -> list[dict[str, Any]]:
    """The newest ``limit`` runs with the headline figures of their reports."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(Run.id, Run.started_at, Run.status, Run.trigger, Run.dry_run, Run.report, Run.error)
            .order_by(Run.started_at.desc())
            .limit(limit)
        ).all()
    out = []
    for run in rows:
        report = run.report or {}
        streams = report.get("streams", [])
        out.append({
            "id": run.id,
            "started_at": run.started_at.isoformat(),
            "status": run.status,
            "trigger": run.trigger,
            "dry_run": run.dry_run,
            "seconds": report.get("duration_seconds"),
            "records": sum(int(s.get("records", 0)) for s in streams),
            "failing_streams": [f"{s['source']}/{s['stream']}" for s in streams if s.get("error")],
            "fields_written": (report.get("writeback") or {}).get("fields_written"),
            "tasks_created": (report.get("writeback") or {}).get("tasks_created"),
            "error": run.error,
        })
    return out


def cursors(engine: Engine) -> list[dict[str, Any]]:
    """Every stream's cursor and its last outcome."""
    with engine.connect() as conn:
        rows = conn.execute(select(*SyncState.__table__.c).order_by(SyncState.source, SyncState.stream)).all()
    return [
        {
            "source": s.source, "stream": s.stream, "cursor": s.cursor.isoformat() if s.cursor else s.cursor_token,
            "records_synced": s.records_synced, "backfill_done": s.backfill_done,
            "last_success_at": s.last_success_at.isoformat() if s.last_success_at else None,
            "last_error": s.last_error,
        }
        for s in rows
    ]


def api_usage(engine: Engine) -> list[dict[str, Any]]:
    """API calls of the newest finished run per system, against the daily limit and what was left."""
    with engine.connect() as conn:
        report = conn.execute(
            select(Run.report).where(Run.status != "running").order_by(Run.started_at.desc()).limit(1)
        ).scalar()
    return list((report or {}).get("api", []))


def run(ctx: CommandContext, writes: bool = False, limit: int = 10) -> int:
    engine = ctx.engine
    if writes:
        from writeback.ledger import recent_writes

        rows = recent_writes(engine, limit)
        if ctx.as_json:
            ctx.emit_json({"writes": rows})
            return 0
        table = Table("when", "run", "crm", "record", "field", "before", "after", "outcome", title="Write audit trail")
        for r in rows:
            table.add_row(
                str(r["attempted_at"])[:19], str(r["run_id"])[:8], r["crm"], r["record_id"], r["field"],
                _short(r["previous_value"]), _short(r["value"]),
                r["outcome"] + (f": {r['error']}" if r.get("error") else ""),
            )
        ctx.console.print(table)
        return 0
    payload = {
        "runs": recent_runs(engine, limit),
        "cursors": cursors(engine),
        "api_usage": api_usage(engine),
        "failing_streams": [c for c in cursors(engine) if c["last_error"]],
        "next_runs": [t.isoformat() for t in _next_runs(ctx)],
    }
    if ctx.as_json:
        ctx.emit_json(payload)
        return 0
    _print(ctx, payload)
    return 0


def _next_runs(ctx: CommandContext) -> list[datetime]:
    try:
        return next_fire_times(ctx.config.schedule, datetime.now(UTC), count=3)
    except Exception:  # status must work even when the configuration file is missing or broken
        return []


def _short(value: Any, width: int = 24) -> str:
    text = "" if value is None else str(value)
    return text if len(text) <= width else text[: width - 1] + "…"


def _print(ctx: CommandContext, payload: dict[str, Any]) -> None:
    console = ctx.console
    runs = Table(
        "started (UTC)", "run", "status", "trigger", "seconds", "records", "fields", "tasks", "failing streams",
        title="Recent runs",
    )
    for r in payload["runs"]:
        runs.add_row(
            r["started_at"][:19], r["id"][:8], r["status"] + (" (dry run)" if r["dry_run"] else ""), r["trigger"],
            f"{r['seconds']:.1f}" if r["seconds"] is not None else "-", str(r["records"]),
            str(r["fields_written"] if r["fields_written"] is not None else "-"),
            str(r["tasks_created"] if r["tasks_created"] is not None else "-"), ", ".join(r["failing_streams"]),
        )
    console.print(runs)
    cursor_table = Table("source", "stream", "cursor", "records", "last success", "last error", title="Cursors")
    for c in payload["cursors"]:
        cursor_table.add_row(
            c["source"], c["stream"], str(c["cursor"] or "-")[:19], str(c["records_synced"]),
            str(c["last_success_at"] or "-")[:19], _short(c["last_error"], 40),
        )
    console.print(cursor_table)
    usage = Table("system", "calls (last run)", "retries", "left today", "daily limit", "reserve", title="API usage")
    for a in payload["api_usage"]:
        usage.add_row(
            a["system"], str(a["calls"]), str(a["retries"]), _num(a.get("remaining")), _num(a.get("daily_limit")),
            _num(a.get("reserve")),
        )
    console.print(usage)
    if payload["failing_streams"]:
        failing = ", ".join(f"{c['source']}/{c['stream']}" for c in payload["failing_streams"])
        console.print(f"Failing streams: {failing}", markup=False)
    if payload["next_runs"]:
        console.print("Next scheduled runs: " + ", ".join(payload["next_runs"]), markup=False)


def _num(value: Any) -> str:
    return "-" if value is None else f"{int(value):,}"
