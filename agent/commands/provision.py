"""``health-agent provision [--apply]``: check, and with --apply create, the CRM fields the agent writes to."""

from __future__ import annotations

from typing import Any

from rich.table import Table

from agent.context import CommandContext
from agent.wiring import credentials_from
from connectors.base import ApiStats
from connectors.registry import build_hubspot, build_salesforce
from writeback.provision import provision


def run(ctx: CommandContext, apply: bool = False) -> int:
    """Exit 0 when every mapped field exists (after --apply, when it could create them); 1 otherwise."""
    config = ctx.config
    credentials = credentials_from(ctx.settings)
    stats = ApiStats()
    clients: dict[str, Any] = {}
    if config.sources.salesforce.enabled and config.writeback.salesforce.fields:
        clients["salesforce"] = build_salesforce(config.sources, config.limits, credentials, stats).client
    if config.sources.hubspot.enabled and config.writeback.hubspot.fields:
        clients["hubspot"] = build_hubspot(config.sources, config.limits, credentials, stats).client
    report = provision(config, clients, apply)
    if ctx.as_json:
        ctx.emit_json(report.to_dict())
        return 0 if report.ok else 1
    if not clients:
        ctx.console.print("No CRM is enabled with mapped writeback fields: nothing to provision.", markup=False)
        return 0
    table = Table("CRM", "Output", "Field", "Type", "Status", "Detail", title="Writeback fields")
    for f in report.fields:
        table.add_row(f.crm, f.output, f.field, f.expected, f.status, f.detail)
    ctx.console.print(table)
    if report.group is not None:
        ctx.console.print(f"HubSpot property group {config.writeback.hubspot.property_group}: {report.group}",
                          markup=False)
    if report.metadata_to_deploy:
        ctx.console.print("Salesforce fields to deploy (Metadata API / change set):", markup=False)
        ctx.console.print(report.metadata_to_deploy, markup=False, highlight=False)
    if not report.ok and not apply:
        ctx.console.print("Run `health-agent provision --apply` to create the missing fields.", markup=False)
    return 0 if report.ok else 1
