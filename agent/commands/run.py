"""``health-agent run --once``: one full cycle now; exit 0 when it succeeded, 1 when it finished with errors."""

from __future__ import annotations

from agent.commands.output import print_report, progress_printer
from agent.context import CommandContext
from agent.run import run_once


def run(ctx: CommandContext, dry_run: bool = False, force: bool = False) -> int:
    with progress_printer(ctx) as progress:
        report = run_once(
            ctx.config, ctx.settings, engine=ctx.engine, trigger="cli", dry_run=dry_run, force=force, progress=progress
        )
    print_report(ctx, report)
    return 0 if report.status == "succeeded" else 1
