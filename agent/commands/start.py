"""``health-agent start``: runs on the configured schedule until SIGTERM/SIGINT (exit 0 on a clean stop)."""

from __future__ import annotations

from agent.context import CommandContext
from agent.service import Service


def run(ctx: CommandContext) -> int:
    config = ctx.config
    from agent.logging import configure_logging

    fmt = ctx.settings.log_format or config.observability.log_format  # LOG_FORMAT wins over the YAML
    configure_logging(fmt, verbose=ctx.verbose, level=config.observability.log_level)
    service = Service(config, ctx.settings, ctx.engine)
    return service.exit_process(service.serve())
