"""Wiring between the agent's settings and the connectors: the remote field check of ``validate --check-remote``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from connectors.base import ApiStats
from connectors.credentials import Credentials
from connectors.registry import build_hubspot, build_salesforce
from core.errors import HealthAgentError

if TYPE_CHECKING:
    from agent.settings import Settings
    from core.config import AgentConfig


def credentials_from(settings: Settings) -> Credentials:
    """The connectors' credentials from the deployment settings (same field names)."""
    return Credentials.model_validate(settings.model_dump(include=set(Credentials.model_fields)))


def check_remote_fields(settings: Settings, config: AgentConfig) -> list[str]:
    """Every mapped CRM field that does not exist or cannot be read, named with its object; [] when all exist.

    Salesforce fields are checked with describe, HubSpot properties with the properties API. A CRM that
    cannot be reached or logged into is reported as one problem instead of raising.
    """
    credentials = credentials_from(settings)
    stats = ApiStats()
    problems: list[str] = []
    builders = (
        ("salesforce", config.sources.salesforce.enabled, build_salesforce),
        ("hubspot", config.sources.hubspot.enabled, build_hubspot),
    )
    for name, enabled, build in builders:
        if not enabled:
            continue
        try:
            connector = build(config.sources, config.limits, credentials, stats)
            problems.extend(f"{name}: {p}" for p in connector.check_fields())
        except HealthAgentError as exc:
            problems.append(f"{name}: {exc.user_message}")
    return problems
