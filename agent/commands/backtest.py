"""``health-agent backtest``: score accounts N days before their renewal outcomes and report AUC, lift, calibration."""

from __future__ import annotations

from rich.table import Table

from agent.context import CommandContext
from scoring.backtest import SegmentReport, run_backtest


def _fmt(v: float | None, digits: int = 3) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def run(ctx: CommandContext, days_before: int = 90, segment: str | None = None) -> int:
    report = run_backtest(ctx.engine, ctx.config.scoring, days_before, segment)
    if ctx.as_json:
        ctx.emit_json(report.to_dict())
        return 0
    if report.overall.outcomes == 0:
        ctx.console.print("No renewal outcomes (closed renewals or churn dates) to backtest against.", markup=False)
        return 1
    summary = Table(title=f"Backtest: scores {days_before} days before each renewal outcome")
    for col in ("segment", "outcomes", "churned", "AUC", "riskiest-decile lift"):
        summary.add_column(col, justify="left" if col == "segment" else "right")
    rows: list[SegmentReport] = [report.overall, *report.by_segment, *report.by_scorecard]
    for s in rows:
        summary.add_row(s.name, str(s.outcomes), str(s.churned), _fmt(s.auc), _fmt(s.lift, 2))
    ctx.console.print(summary)
    calibration = Table(title="Calibration (all outcomes, assigned scorecard)")
    for col in ("scores", "accounts", "mean score", "churn rate"):
        calibration.add_column(col, justify="right")
    for c in report.overall.calibration:
        calibration.add_row(f"{c.low:.0f}-{c.high:.0f}", str(c.accounts), f"{c.mean_score:.1f}", f"{c.churn_rate:.1%}")
    ctx.console.print(calibration)
    if report.undated:
        ctx.console.print(
            f"Note: {report.undated} of {report.overall.outcomes} outcomes were scored with today's ARR, tier and "
            "renewal date: the store has no record of them from before the scoring moment (it keeps them from the "
            "first sync on). The AUC can be optimistic if the CRM changes these after a churn.", markup=False)
    return 0
