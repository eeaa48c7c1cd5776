"""``health-agent demo``: the sandbox, one full cycle against it, and what an account manager would see.

Starts the emulated CRMs on loopback with the default book, provisions the CRM fields, runs pull -> score ->
write back with the real connectors, prints the run's headline figures, reads three accounts back through
the CRM APIs, and leaves a store and an HTML run report (their paths are printed).
"""

from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

from rich.table import Table

from agent.commands.output import progress_printer
from agent.context import CommandContext
from agent.report import RunReport
from agent.run import crm_clients, run_once
from agent.settings import Settings
from core.config import AgentConfig
from core.redaction import register_secrets

READBACK_ACCOUNTS = 3


def run(
    ctx: CommandContext, crm: str = "both", accounts: int = 300, seed: int = 7, output_dir: Path = Path("data/demo")
) -> int:
    from connectors.credentials import Credentials
    from connectors.registry import build_connectors
    from sandbox.runtime import start_sandbox
    from store.db import make_engine
    from store.migrate import upgrade
    from writeback.provision import provision

    started = time.monotonic()
    if not ctx.verbose:  # the summary is the demo's output; per-stream log lines would bury it (-v shows them)
        logging.getLogger().setLevel(logging.WARNING)
    output_dir = output_dir.resolve()
    output_dir.mkdir(parents=True, exist_ok=True)
    database_url = _database_url(ctx, output_dir)
    _say(ctx, f"Starting the sandbox: {accounts} accounts, seed {seed} ...")
    sandbox = start_sandbox(accounts, seed, workdir=output_dir / "sandbox")
    try:
        os.environ.update({**sandbox.env(), "SANDBOX_WAREHOUSE_URL": sandbox.warehouse.sqlite_url})
        settings = Settings()
        register_secrets(settings.secret_values())
        config = _demo_config(ctx.config, crm, output_dir)
        engine = make_engine(database_url)
        upgrade(engine)
        credentials = Credentials.model_validate(settings.model_dump(include=set(Credentials.model_fields)))
        clients = crm_clients(build_connectors(config.sources, config.limits, credentials))
        _say(ctx, f"Provisioning the agent's fields in {', '.join(clients)} ...")
        provisioned = provision(config, clients, apply=True)
        if not provisioned.ok:
            ctx.err_console.print("provisioning left fields missing: " + str(provisioned.to_dict()), markup=False)
        with progress_printer(ctx) as progress:
            report = run_once(config, settings, engine=engine, trigger="demo", progress=progress)
        readback = _read_back(config, clients, report)
        engine.dispose()
    finally:
        sandbox.stop()
    seconds = time.monotonic() - started
    if ctx.as_json:
        ctx.emit_json({"report": report.to_dict(), "readback": readback, "store": database_url,
                       "html_report": report.html_path, "seconds": round(seconds, 1)})
    else:
        _print_summary(ctx, report, readback, database_url, seconds)
    return 0 if report.status == "succeeded" else 1


def _database_url(ctx: CommandContext, output_dir: Path) -> str:
    """``--database-url`` when given; else a fresh SQLite store in the output folder."""
    if ctx.database_url != ctx.settings.database_url or os.environ.get("HEALTH_DATABASE_URL"):
        return ctx.database_url
    store = output_dir / "health-agent.db"
    for leftover in (store, store.with_name(store.name + "-wal"), store.with_name(store.name + "-shm")):
        leftover.unlink(missing_ok=True)  # a new sandbox CRM: last demo's "already written" would be wrong
    return f"sqlite:///{store}"


def _crms(crm: str) -> tuple[str, ...]:
    return ("salesforce", "hubspot") if crm == "both" else (crm,)


def _demo_config(config: AgentConfig, crm: str, output_dir: Path) -> AgentConfig:
    """The sandbox configuration with only the chosen CRMs on, reports in the output folder, no HTTP endpoint."""
    wanted = _crms(crm)
    sources = config.sources.model_copy(update={
        "salesforce": config.sources.salesforce.model_copy(update={"enabled": "salesforce" in wanted}),
        "hubspot": config.sources.hubspot.model_copy(update={"enabled": "hubspot" in wanted}),
    })
    observability = config.observability.model_copy(update={"report_dir": str(output_dir / "reports"), "listen": ""})
    return config.model_copy(update={"sources": sources, "observability": observability})


def _read_back(config: AgentConfig, clients: dict[str, Any], report: RunReport) -> list[dict[str, Any]]:
    """The agent's fields on the riskiest accounts, read back from the CRM through its API."""
    from writeback.plan import field_map

    out: list[dict[str, Any]] = []
    for account in (report.scoring.at_risk if report.scoring else [])[:READBACK_ACCOUNTS]:
        client = clients.get(account.crm)
        mapping = field_map(config.writeback, account.crm)
        if client is None or not mapping:
            continue
        fields = list(mapping.values())
        if account.crm == "salesforce":
            name_field = "Name"
            record = client.get(config.writeback.salesforce.object, account.external_id, [name_field, *fields])
        else:
            name_field = "name"
            record = client.get("companies", account.external_id, [name_field, *fields]).get("properties", {})
        out.append({
            "crm": account.crm,
            "id": account.external_id,
            "name": record.get(name_field),
            "fields": {field: record.get(field) for field in mapping.values()},
        })
    return out


def _say(ctx: CommandContext, line: str) -> None:
    if ctx.interactive:
        ctx.console.print(line, markup=False, highlight=False)
    elif not ctx.as_json:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def _print_summary(
    ctx: CommandContext, report: RunReport, readback: list[dict[str, Any]], database_url: str, seconds: float
) -> None:
    sections: list[tuple[str, list[str], list[list[str]]]] = []
    sections.append(("Records pulled per source", ["source", "records"],
                     [[source, f"{n:,}"] for source, n in report.records_by_source().items()]))
    if report.scoring is not None:
        sc = report.scoring
        sections.append((f"Bands ({sc.accounts} accounts scored)", ["band", "accounts"],
                         [[band, str(sc.band_counts.get(band, 0))] for band in sc.bands]))
        sections.append(("The ten riskiest accounts", ["account", "crm", "score", "band", "flags", "drivers"],
                         [[a.name or a.external_id, a.crm, f"{a.score:.1f}", a.band, ", ".join(a.flags), a.drivers]
                          for a in sc.at_risk[:10]]))
        sections.append(("Flags", ["flag", "accounts"],
                         [[name.replace("_", " "), str(n)] for name, n in sc.flag_counts.items()]))
    if report.writeback is not None:
        wb = report.writeback
        sections.append(("Writeback", ["what", "count"], [
            ["fields written", str(wb.fields_written)], ["records written", str(wb.records_written)],
            ["tasks created", str(wb.tasks_created)], ["failures", str(len(wb.failures))],
        ]))
    sections.append(("API calls",
                     ["system", "pull calls", "pull floor", "write calls", "write floor", "tasks and other", "total",
                      "retries"],
                     [[a.system, str(a.pull_calls), _dash(a.pull_floor), str(a.write_calls), _dash(a.write_floor),
                       str(a.other_calls), str(a.calls), str(a.retries)]
                      for a in report.api]))
    for item in readback:
        sections.append((f"{item['name']} as the account manager sees it in {item['crm']} ({item['id']})",
                         ["field", "value"], [[k, "" if v is None else str(v)] for k, v in item["fields"].items()]))
    for title, header, rows in sections:
        _print_table(ctx, title, header, rows)
    for line in [*(f"Deferred: {d}" for d in report.deferred), *(f"Error: {e}" for e in report.errors)]:
        _say(ctx, line)
    _say(ctx, f"Run {report.run_id}: {report.status} in {seconds:.1f} s")
    _say(ctx, f"Store: {database_url}")
    _say(ctx, f"HTML report: {report.html_path}")


def _print_table(ctx: CommandContext, title: str, header: list[str], rows: list[list[str]]) -> None:
    if ctx.interactive:
        table = Table(*header, title=title, title_justify="left")
        for row in rows:
            table.add_row(*row)
        ctx.console.print(table)
        return
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows, strict=True)]
    widths[-1] = 0  # the last column is free text: no padding
    lines = [f"{title}:"]
    for row in [header, *rows]:
        lines.append("  " + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    sys.stdout.write("\n".join(lines) + "\n")


def _dash(value: int | None) -> str:
    return "-" if value is None else str(value)
