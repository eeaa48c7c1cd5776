"""``health-agent run --once``: one full cycle now; exit 0 when it succeeded, 1 when it finished with errors.

It takes the same run lease as ``health-agent start``, so a manual run never overlaps a scheduled one.
"""

from __future__ import annotations

from agent.commands.output import print_report, progress_printer
from agent.context import CommandContext
from agent.lease import LeaseKeeper, RunLease
from agent.run import run_once


def run(ctx: CommandContext, dry_run: bool = False, force: bool = False) -> int:
    lease = RunLease(ctx.engine, ttl_seconds=ctx.config.schedule.lease_ttl_seconds)
    if not lease.try_acquire():
        held = lease.current_holder()
        who = f" ({held[0]}, until {held[1]:%H:%M:%S} UTC)" if held else ""
        ctx.err_console.print(f"health-agent: another run is in progress{who}; try again when it ends", markup=False)
        return 1
    try:
        with LeaseKeeper(lease) as keeper, progress_printer(ctx) as progress:
            report = run_once(
                ctx.config, ctx.settings, engine=ctx.engine, trigger="cli", dry_run=dry_run, force=force,
                progress=progress, should_stop=keeper.lost.is_set,
            )
    finally:
        lease.release()
    print_report(ctx, report)
    return 0 if report.status == "succeeded" else 1
