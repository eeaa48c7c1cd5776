"""``health-agent calibrate``: fit scorecard weights from outcomes and propose (never apply) a new scorecard."""

from __future__ import annotations

from pathlib import Path

from rich.table import Table

from agent.context import CommandContext
from scoring.calibrate import run_calibration


def _fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:.3f}"


def run(ctx: CommandContext, output: Path | None = None, days_before: int = 90) -> int:
    reports = run_calibration(ctx.engine, ctx.config.scoring, days_before, output)
    if ctx.as_json:
        ctx.emit_json({"reports": [r.to_dict() for r in reports], "output": str(output) if output else None})
        return 0
    for r in reports:
        table = Table(title=f"Scorecard {r.scorecard}: {r.train_outcomes} training outcomes, "
                            f"{r.held_out_outcomes} held out ({r.held_out_churned} churned)")
        for col in ("measure", "current weight", "proposed weight", "log-odds per 100 points"):
            table.add_column(col, justify="left" if col == "measure" else "right")
        for w in r.weights:
            table.add_row(w.measure, f"{w.current_share:.1%}", f"{w.proposed_share:.1%}", f"{w.coefficient:+.2f}")
        ctx.console.print(table)
        ctx.console.print(
            f"held-out AUC: current {_fmt(r.auc_current)}, fitted model {_fmt(r.auc_fitted)}, "
            f"proposed scorecard {_fmt(r.auc_proposed)}" + ("" if r.improves else " (no improvement)"),
            markup=False,
        )
        if r.current_attributes:
            ctx.console.print(
                f"Note: {r.current_attributes} of {r.train_outcomes + r.held_out_outcomes} outcomes were scored with "
                "today's ARR, tier and renewal date (the store keeps them from its first sync on); weights fitted on "
                "them can lean on what the CRM changed after a churn.", markup=False)
    if output is not None:
        ctx.console.print(f"proposal written to {output}; nothing was applied.", markup=False)
    else:
        ctx.console.print("proposal (not applied; pass --output FILE to save it):", markup=False)
        ctx.console.print("\n".join(r.yaml_text for r in reports), markup=False, highlight=False)
    return 0
