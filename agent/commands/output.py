"""Printing run reports and progress for the commands: rich on a terminal, plain lines otherwise, JSON on --json."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator

from agent.context import CommandContext
from agent.report import RunReport


@contextlib.contextmanager
def progress_printer(ctx: CommandContext) -> Iterator[Callable[[str], None] | None]:
    """A progress callback: a live status line on a terminal, nothing otherwise (the log has the detail)."""
    if not ctx.interactive:
        yield None
        return
    with ctx.console.status("starting", spinner="dots") as status:
        yield status.update


def print_report(ctx: CommandContext, report: RunReport) -> None:
    """The report as JSON (--json) or text."""
    if ctx.as_json:
        ctx.emit_json(report.to_dict())
        return
    text = report.render_text()
    if ctx.interactive:
        ctx.console.print(text, markup=False, highlight=False, end="")
    else:
        sys.stdout.write(text)
        sys.stdout.flush()
