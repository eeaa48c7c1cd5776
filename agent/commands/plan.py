"""``health-agent plan``: the writes and tasks the next writeback would make from the latest scores, unwritten."""

from __future__ import annotations

from sqlalchemy import select

from agent.context import CommandContext
from store.models import ScoreHistory
from writeback.plan import CRMS, build_plan


def run(ctx: CommandContext, force: bool = False) -> int:
    """Exit 0 with the plan printed; 1 when there are no scores yet or the blast-radius guard stops the plan."""
    config = ctx.config
    engine = ctx.engine
    with engine.connect() as conn:
        run_id = conn.execute(
            # The row stored last (its primary key): ordering by scored_at read the whole history, which grows by
            # one row per account per run.
            select(ScoreHistory.run_id).order_by(ScoreHistory.id.desc()).limit(1)
        ).scalar()
    if run_id is None:
        ctx.err_console.print("No scores yet: run `health-agent run --once` first.", markup=False)
        return 1
    crms = [crm for crm in CRMS if getattr(config.sources, crm).enabled]
    plan = build_plan(engine, config, run_id=run_id, crms=crms)
    stopped = plan.guard.stopped and not force
    if ctx.as_json:
        payload = plan.to_dict() if not stopped else {**plan.summary(), "changes": [], "tasks": []}
        ctx.emit_json(payload)
        return 1 if stopped else 0
    summary = plan.summary()
    ctx.console.print(
        f"Plan for scoring run {run_id}: {summary['fields_to_write']} fields on {summary['records_to_write']} "
        f"records, {summary['tasks_to_create']} tasks to create, {summary['tasks_to_close']} to close "
        f"({summary['accounts_scored']} accounts scored; {', '.join(crms) or 'no CRM enabled'}).",
        markup=False,
    )
    if stopped:
        ctx.err_console.print(f"The blast-radius guard stops this plan: {plan.guard.reason}", markup=False)
        return 1
    if plan.changes or plan.tasks:
        ctx.console.print(plan.table())
    return 0
