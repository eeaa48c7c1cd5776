"""The ``health-agent`` command line. Each command's work lives in ``agent/commands/<name>.py``.

Exit codes: 0 success; 1 the run finished with errors; 2 bad usage or bad configuration.
Shared flags (``--config``, ``--database-url``, ``--json``, ``-v``) are accepted before or after the command.
"""

from __future__ import annotations

import importlib
import json as json_module
import logging
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from agent.context import CommandContext
from agent.logging import configure_logging
from agent.settings import Settings
from core.errors import ConfigError, HealthAgentError
from core.redaction import redact, register_secrets

log = logging.getLogger("agent.cli")

ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config", "-c", help="YAML configuration file [env: HEALTH_AGENT_CONFIG; default config/agent.yaml]."
    ),
]
DatabaseOpt = Annotated[
    str | None, typer.Option("--database-url", help="SQLAlchemy URL of the store [env: HEALTH_DATABASE_URL].")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable JSON output.")]
VerboseOpt = Annotated[bool, typer.Option("--verbose", "-v", help="More detail in logs.")]

app = typer.Typer(
    name="health-agent",
    help="Keeps explainable customer-health scores, flags and follow-up tasks inside Salesforce and HubSpot.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
db_app = typer.Typer(help="The store's schema.", no_args_is_help=True)
config_app = typer.Typer(help="The configuration file.", no_args_is_help=True)
sandbox_app = typer.Typer(
    help="The embedded emulator of Salesforce, HubSpot, NPS and intent APIs.", no_args_is_help=True
)
app.add_typer(db_app, name="db")
app.add_typer(config_app, name="config")
app.add_typer(sandbox_app, name="sandbox")

_globals: dict[str, Any] = {}


class CrmChoice(StrEnum):
    salesforce = "salesforce"
    hubspot = "hubspot"
    both = "both"


@app.callback()
def _root(
    config: ConfigOpt = None, database_url: DatabaseOpt = None, json: JsonOpt = False, verbose: VerboseOpt = False
) -> None:
    _globals.update(config=config, database_url=database_url, json=json, verbose=verbose)


def _context(config: Path | None, database_url: str | None, as_json: bool, verbose: bool) -> CommandContext:
    settings = Settings()
    register_secrets(settings.secret_values())
    as_json = as_json or bool(_globals.get("json"))
    verbose = verbose or bool(_globals.get("verbose"))
    configure_logging(fmt=settings.log_format, verbose=verbose)
    return CommandContext(
        settings=settings,
        config_path=config or _globals.get("config") or settings.config_path,
        database_url=database_url or _globals.get("database_url") or settings.database_url,
        as_json=as_json,
        verbose=verbose,
    )


def _dispatch(module: str, ctx: CommandContext, **params: Any) -> None:
    """Run ``agent.commands.<module>.run(ctx, **params)`` and turn errors into exit codes."""
    try:
        command = importlib.import_module(f"agent.commands.{module}")
    except ModuleNotFoundError as exc:
        if exc.name != f"agent.commands.{module}":
            raise
        ctx.err_console.print(f"health-agent: '{module}' is not built yet.")
        raise typer.Exit(1) from None
    try:
        code = int(command.run(ctx, **params))
    except ConfigError as exc:
        for problem in exc.problems:
            sys.stderr.write(redact(str(problem)) + "\n")
        code = 2
    except HealthAgentError as exc:
        log.debug("command failed", exc_info=True)
        sys.stderr.write(f"health-agent: {redact(exc.user_message)}\n")
        code = 1
    except KeyboardInterrupt:
        sys.stderr.write("health-agent: interrupted\n")
        code = 130
    except Exception as exc:  # the last line of defence: a clean, redacted message instead of a raw traceback
        log.error("unexpected error in '%s'", module, exc_info=True)
        sys.stderr.write(
            f"health-agent: unexpected error: {redact(f'{type(exc).__name__}: {exc}')} (run with -v for details)\n"
        )
        code = 1
    raise typer.Exit(code)


@app.command()
def demo(
    crm: Annotated[CrmChoice, typer.Option(help="Which emulated CRM to run against.")] = CrmChoice.both,
    accounts: Annotated[int, typer.Option(min=10, help="Accounts in the synthetic book.")] = 300,
    seed: Annotated[int, typer.Option(help="Seed of the synthetic book.")] = 7,
    output_dir: Annotated[Path, typer.Option(help="Where the demo leaves its store and HTML report.")] = Path(
        "data/demo"
    ),
    config: ConfigOpt = None,
    database_url: DatabaseOpt = None,
    json: JsonOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """Start the sandbox, run one full cycle against it, and show what an account manager would see."""
    ctx = _context(config or Path("config/sandbox.yaml"), database_url, json, verbose)
    _dispatch("demo", ctx, crm=crm.value, accounts=accounts, seed=seed, output_dir=output_dir)


@app.command()
def run(
    once: Annotated[
        bool, typer.Option("--once", help="Run one cycle now and exit (the only mode of this command).")
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Pull and score, plan the writes, but write nothing to the CRM.")
    ] = False,
    force: Annotated[
        bool, typer.Option("--force", help="Write even when the blast-radius guard would stop the run.")
    ] = False,
    config: ConfigOpt = None,
    database_url: DatabaseOpt = None,
    json: JsonOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """Run one cycle: pull, score, plan and write back (use `start` for the scheduled service)."""
    if not once:
        sys.stderr.write("health-agent run: add --once (for the scheduled service use `health-agent start`)\n")
        raise typer.Exit(2)
    _dispatch("run", _context(config, database_url, json, verbose), dry_run=dry_run, force=force)


@app.command()
def start(
    config: ConfigOpt = None, database_url: DatabaseOpt = None, json: JsonOpt = False, verbose: VerboseOpt = False
) -> None:
    """Run on the configured schedule until SIGTERM/SIGINT, with health and metrics endpoints."""
    _dispatch("start", _context(config, database_url, json, verbose))


@app.command()
def plan(
    force: Annotated[bool, typer.Option("--force", help="Show the plan the guard would otherwise stop.")] = False,
    config: ConfigOpt = None,
    database_url: DatabaseOpt = None,
    json: JsonOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """Print the writes and tasks the next run would make, from the latest scores, without writing."""
    _dispatch("plan", _context(config, database_url, json, verbose), force=force)


@app.command()
def explain(
    account: Annotated[str, typer.Argument(help="Account: CRM id, store id, exact name or domain.")],
    config: ConfigOpt = None,
    database_url: DatabaseOpt = None,
    json: JsonOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """Show how an account's score, band and flags were reached: every measure, value, weight and reason."""
    _dispatch("explain", _context(config, database_url, json, verbose), account=account)


@app.command()
def status(
    writes: Annotated[bool, typer.Option("--writes", help="Show the write audit trail (before/after values).")] = False,
    limit: Annotated[int, typer.Option(min=1, help="How many runs or writes to show.")] = 10,
    config: ConfigOpt = None,
    database_url: DatabaseOpt = None,
    json: JsonOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """Recent runs, cursors, API usage against limits, failing streams."""
    _dispatch("status", _context(config, database_url, json, verbose), writes=writes, limit=limit)


@app.command()
def validate(
    check_remote: Annotated[
        bool, typer.Option("--check-remote", help="Also check every mapped field exists in the CRMs.")
    ] = False,
    config: ConfigOpt = None,
    database_url: DatabaseOpt = None,
    json: JsonOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """Check the configuration file; exit 2 listing every problem as file:line path: message."""
    _dispatch("validate", _context(config, database_url, json, verbose), check_remote=check_remote)


@app.command()
def provision(
    apply: Annotated[
        bool, typer.Option("--apply", help="Create missing CRM fields (without it: report only).")
    ] = False,
    config: ConfigOpt = None,
    database_url: DatabaseOpt = None,
    json: JsonOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """Check (and with --apply create) the CRM fields and properties the agent writes to."""
    _dispatch("provision", _context(config, database_url, json, verbose), apply=apply)


@app.command()
def backtest(
    days_before: Annotated[
        int, typer.Option(min=1, help="Score each account this many days before its renewal outcome.")
    ] = 90,
    segment: Annotated[str | None, typer.Option(help="Only this segment (tier).")] = None,
    config: ConfigOpt = None,
    database_url: DatabaseOpt = None,
    json: JsonOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """Measure the scorecards against known renewal outcomes: AUC, lift, calibration, per segment."""
    _dispatch("backtest", _context(config, database_url, json, verbose), days_before=days_before, segment=segment)


@app.command()
def calibrate(
    output: Annotated[Path | None, typer.Option(help="Write the proposed scorecard YAML here.")] = None,
    days_before: Annotated[int, typer.Option(min=1, help="Fit on scores this many days before each outcome.")] = 90,
    config: ConfigOpt = None,
    database_url: DatabaseOpt = None,
    json: JsonOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """Fit scorecard weights from outcomes and propose (never apply) a new scorecard."""
    _dispatch("calibrate", _context(config, database_url, json, verbose), output=output, days_before=days_before)


@sandbox_app.command("serve")
def sandbox_serve(
    accounts: Annotated[int, typer.Option(min=1, help="Accounts in the synthetic book.")] = 300,
    seed: Annotated[int, typer.Option(help="Seed of the synthetic book.")] = 7,
    port: Annotated[
        int | None, typer.Option(help="First port (Salesforce; HubSpot, NPS, intent follow). Default: free ports.")
    ] = None,
    faults: Annotated[str, typer.Option(help="Fault profile: none, flaky, slow, chaos.")] = "none",
    describe: Annotated[bool, typer.Option("--describe", help="Print the book's figures and exit.")] = False,
    json: JsonOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """Serve the emulated APIs on 127.0.0.1 and print the environment to point the agent at them."""
    _dispatch(
        "sandbox",
        _context(None, None, json, verbose),
        accounts=accounts,
        seed=seed,
        port=port,
        faults=faults,
        describe=describe,
    )


@db_app.command("upgrade")
def db_upgrade(database_url: DatabaseOpt = None, json: JsonOpt = False, verbose: VerboseOpt = False) -> None:
    """Create or upgrade the store's schema to the newest version (a no-op when already there)."""
    _dispatch("db", _context(None, database_url, json, verbose))


@config_app.command("schema")
def config_schema() -> None:
    """Print the configuration file's JSON Schema (for editor autocompletion and checks)."""
    from core.config.loader import config_json_schema

    sys.stdout.write(json_module.dumps(config_json_schema(), indent=2) + "\n")


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
