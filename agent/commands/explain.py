"""``health-agent explain ACCOUNT``: the whole breakdown of one account's score, band and flags."""

from __future__ import annotations

from agent.context import CommandContext
from scoring.explain import explain_account


def run(ctx: CommandContext, account: str) -> int:
    explanation = explain_account(ctx.engine, ctx.config.scoring, account)
    if ctx.as_json:
        ctx.emit_json(explanation.to_dict())
    else:
        explanation.print(ctx.console)
    return 0
