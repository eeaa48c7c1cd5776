"""``health-agent validate``: check the configuration file (and, with --check-remote, the CRMs' fields)."""

from __future__ import annotations

from agent.context import CommandContext


def run(ctx: CommandContext, check_remote: bool = False) -> int:
    config = ctx.config  # raises ConfigError listing every problem (exit 2)
    problems: list[str] = []
    if check_remote:
        from agent.wiring import check_remote_fields

        problems = check_remote_fields(ctx.settings, config)
    if ctx.as_json:
        ctx.emit_json({"config": str(ctx.config_path), "valid": not problems, "problems": problems})
    elif problems:
        for problem in problems:
            ctx.err_console.print(problem, markup=False)
    else:
        sources = [name for name, src in config.sources if getattr(src, "enabled", False)]
        ctx.console.print(
            f"{ctx.config_path}: valid (sources on: {', '.join(sources) or 'none'})"
            + ("; every mapped field exists in the CRMs" if check_remote else ""),
            markup=False,
        )
    return 2 if problems else 0
