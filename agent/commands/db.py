"""``health-agent db upgrade``: create or upgrade the store's schema."""

from __future__ import annotations

from agent.context import CommandContext
from store.db import make_engine
from store.migrate import upgrade


def run(ctx: CommandContext) -> int:
    engine = make_engine(ctx.database_url)
    try:
        before, after = upgrade(engine)
    finally:
        engine.dispose()
    url = engine.url.render_as_string(hide_password=True)
    if ctx.as_json:
        ctx.emit_json({"database": url, "from": before, "to": after, "changed": before != after})
    elif before == after:
        ctx.console.print(f"{url}: already at schema {after}; nothing to do", markup=False)
    else:
        ctx.console.print(f"{url}: schema upgraded from {before or 'empty'} to {after}", markup=False)
    return 0
