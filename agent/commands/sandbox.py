"""``health-agent sandbox serve``: the emulated APIs on 127.0.0.1, and the environment that points the agent at them.

It prints the base URLs, the CA file and ``export VAR=...`` lines (so a plain ``health-agent run --once``
in another shell talks to the sandbox), then blocks until Ctrl-C. ``--describe`` prints the book's figures.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

from agent.context import CommandContext

SANDBOX_DIR = Path("data/sandbox")  # config/sandbox.yaml's default warehouse URL points inside it


def run(
    ctx: CommandContext, accounts: int = 300, seed: int = 7, port: int | None = None, faults: str = "none",
    describe: bool = False,
) -> int:
    from sandbox.faults import PROFILES

    if faults not in PROFILES:
        ctx.err_console.print(f"unknown fault profile {faults!r}; one of: {', '.join(PROFILES)}", markup=False)
        return 2
    if describe:
        from sandbox.book import build_book
        from sandbox.book import describe as describe_book

        figures = describe_book(build_book(accounts, seed, cache_dir=SANDBOX_DIR / "book"))
        if ctx.as_json:
            ctx.emit_json(figures)
        else:
            for key, value in figures.items():
                sys.stdout.write(f"{key}: {value}\n")
        return 0
    from sandbox.runtime import serve_forever, start_sandbox

    sandbox = start_sandbox(accounts, seed, faults=faults, port_base=port, workdir=SANDBOX_DIR.resolve())
    env = {**sandbox.env(), "SANDBOX_WAREHOUSE_URL": sandbox.warehouse.sqlite_url}
    if ctx.as_json:
        urls = {name: server.url for name, server in sandbox.servers.items()}
        ctx.emit_json({"urls": urls, "ca_file": str(sandbox.ca_path), "env": env})
    else:
        lines = [f"# sandbox: {accounts} accounts, seed {seed}, faults {faults}"]
        lines += [f"#   {name:<10} {server.url}" for name, server in sandbox.servers.items()]
        lines += [f"#   CA file    {sandbox.ca_path}"]
        lines += [f"export {name}={shlex.quote(value)}" for name, value in env.items()]
        lines += ["# then, in that shell: health-agent run --once --config config/sandbox.yaml", "# Ctrl-C stops."]
        sys.stdout.write("\n".join(lines) + "\n")
    sys.stdout.flush()
    serve_forever(sandbox)
    return 0
