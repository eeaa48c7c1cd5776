"""Builds the enabled connectors from the ``sources`` configuration, the limits and the credentials."""

from __future__ import annotations

import os
from collections.abc import Mapping

from connectors.base import ApiStats, Connector
from connectors.credentials import Credentials
from connectors.files.streams import TabularConnector
from connectors.generic_http.streams import HttpConnector
from connectors.hubspot.client import HubSpotClient
from connectors.hubspot.streams import HubSpotConnector
from connectors.salesforce.client import SalesforceClient
from connectors.salesforce.streams import SalesforceConnector
from core.config.runtime import LimitsConfig
from core.config.sources import HttpSourceConfig, SourcesConfig
from core.errors import ConfigError


def build_salesforce(
    sources: SourcesConfig, limits: LimitsConfig, credentials: Credentials, stats: ApiStats
) -> SalesforceConnector:
    config = sources.salesforce
    client = SalesforceClient(
        credentials, limits=limits, stats=stats, api_version=config.api_version, flow=config.auth,
        bulk_poll_seconds=config.bulk_poll_seconds,
    )
    return SalesforceConnector(client, config, limits)


def build_hubspot(
    sources: SourcesConfig, limits: LimitsConfig, credentials: Credentials, stats: ApiStats
) -> HubSpotConnector:
    return HubSpotConnector(HubSpotClient(credentials, limits=limits, stats=stats), sources.hubspot)


def _vendor(
    config: HttpSourceConfig, credentials: Credentials, limits: LimitsConfig, stats: ApiStats,
    *, url_field: str, key_field: str,
) -> HttpConnector:
    credentials.require(url_field, key_field, why=f"sources.{config.name}")
    return HttpConnector(
        config, base_url=str(getattr(credentials, url_field)), api_key=credentials.secret(key_field),
        limits=limits, stats=stats, ca_bundle=credentials.ca_path,
    )


def _generic(
    config: HttpSourceConfig, credentials: Credentials, limits: LimitsConfig, stats: ApiStats,
    environ: Mapping[str, str],
) -> HttpConnector:
    key = None
    if config.auth.style != "none":
        if not config.auth.key_env:
            raise ConfigError(f"sources.http {config.name}: auth.key_env must name the variable holding the key")
        key = environ.get(config.auth.key_env)
        if not key:
            raise ConfigError(
                f"sources.http {config.name} needs the environment variable {config.auth.key_env}, which is not set"
            )
    if not config.base_url:
        raise ConfigError(f"sources.http {config.name}: base_url is required")
    return HttpConnector(config, base_url=config.base_url, api_key=key, limits=limits, stats=stats,
                         ca_bundle=credentials.ca_path)


def build_connectors(
    sources: SourcesConfig,
    limits: LimitsConfig,
    credentials: Credentials,
    stats: ApiStats | None = None,
    *,
    environ: Mapping[str, str] | None = None,
) -> list[Connector]:
    """The connectors of every enabled source, sharing one ``ApiStats``.

    Raises ConfigError naming the missing environment variable when a source's credentials are not set.
    """
    stats = stats or ApiStats()
    environ = os.environ if environ is None else environ
    out: list[Connector] = []
    if sources.salesforce.enabled:
        out.append(build_salesforce(sources, limits, credentials, stats))
    if sources.hubspot.enabled:
        out.append(build_hubspot(sources, limits, credentials, stats))
    if sources.nps.enabled:
        out.append(_vendor(sources.nps, credentials, limits, stats, url_field="nps_base_url", key_field="nps_api_key"))
    if sources.intent.enabled:
        out.append(
            _vendor(sources.intent, credentials, limits, stats, url_field="intent_base_url", key_field="intent_api_key")
        )
    if sources.usage.enabled:
        out.append(TabularConnector("usage", "usage_metrics", sources.usage, stats))
    if sources.billing.enabled:
        out.append(TabularConnector("billing", "invoices", sources.billing, stats))
    out.extend(_generic(c, credentials, limits, stats, environ) for c in sources.http if c.enabled)
    return out
