"""Which systems the agent pulls from, and how their fields map into the canonical model.

(First version; the connectors extend it.)
"""

from __future__ import annotations

from pydantic import Field

from core.config.base import StrictModel


class SalesforceSourceConfig(StrictModel):
    enabled: bool = False
    api_version: str = Field(default="59.0", pattern=r"^\d{2}\.\d$")


class HubSpotSourceConfig(StrictModel):
    enabled: bool = False


class SourcesConfig(StrictModel):
    salesforce: SalesforceSourceConfig = SalesforceSourceConfig()
    hubspot: HubSpotSourceConfig = HubSpotSourceConfig()
