"""Printing run reports and progress for the commands: rich on a terminal, plain lines otherwise, JSON on --json."""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Iterator

from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from agent.context import CommandContext
from agent.report import RunReport


@contextlib.contextmanager
def progress_printer(ctx: CommandContext) -> Iterator[Callable[[str], None] | None]:
    """A progress callback: a rich progress display on a terminal, plain timestamped lines on stderr otherwise.

    With --json nothing is printed (stdout is for the JSON; the log has the detail).
    """
    if ctx.as_json:
        yield None
        return
    if not ctx.interactive:
        started = time.monotonic()

        def plain(step: str) -> None:
            sys.stderr.write(f"[{time.monotonic() - started:6.1f}s] {step}\n")
            sys.stderr.flush()

        yield plain
        return
    columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed} steps"),
               TimeElapsedColumn())
    with Progress(*columns, console=ctx.console, transient=True) as bar:
        task = bar.add_task("starting", total=None)

        def update(step: str) -> None:
            bar.update(task, description=step, advance=1)

        yield update


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
