"""The secrets and endpoints connectors need, with the same field names as ``agent.settings.Settings``.

The agent builds it with ``Credentials.model_validate(settings.model_dump(include=set(Credentials.model_fields)))``;
tests build it directly. Secrets are ``SecretStr`` and never logged.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from pydantic import BaseModel, ConfigDict, SecretStr

from core.errors import ConfigError

ENV_NAMES: dict[str, str] = {
    "salesforce_instance_url": "SALESFORCE_INSTANCE_URL",
    "salesforce_access_token": "SALESFORCE_ACCESS_TOKEN",
    "salesforce_login_url": "SALESFORCE_LOGIN_URL",
    "salesforce_username": "SALESFORCE_USERNAME",
    "salesforce_consumer_key": "SALESFORCE_CONSUMER_KEY",
    "salesforce_private_key_file": "SALESFORCE_PRIVATE_KEY_FILE",
    "salesforce_client_secret": "SALESFORCE_CLIENT_SECRET",
    "salesforce_password": "SALESFORCE_PASSWORD",
    "salesforce_security_token": "SALESFORCE_SECURITY_TOKEN",
    "hubspot_access_token": "HUBSPOT_ACCESS_TOKEN",
    "hubspot_base_url": "HUBSPOT_BASE_URL",
    "nps_api_key": "NPS_API_KEY",
    "nps_base_url": "NPS_BASE_URL",
    "intent_api_key": "INTENT_API_KEY",
    "intent_base_url": "INTENT_BASE_URL",
    "ca_bundle": "HEALTH_AGENT_CA_BUNDLE",
}


class Credentials(BaseModel):
    """Connector secrets and endpoints (all optional here; ``require`` names the missing variable)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    salesforce_instance_url: str | None = None
    salesforce_access_token: SecretStr | None = None
    salesforce_login_url: str = "https://login.salesforce.com"
    salesforce_username: str | None = None
    salesforce_consumer_key: str | None = None
    salesforce_private_key_file: Path | None = None
    salesforce_client_secret: SecretStr | None = None
    salesforce_password: SecretStr | None = None
    salesforce_security_token: SecretStr | None = None

    hubspot_access_token: SecretStr | None = None
    hubspot_base_url: str = "https://api.hubapi.com"

    nps_api_key: SecretStr | None = None
    nps_base_url: str | None = None
    intent_api_key: SecretStr | None = None
    intent_base_url: str | None = None

    ca_bundle: Path | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Credentials:
        """Credentials from environment-style names (``SALESFORCE_ACCESS_TOKEN``...), e.g. a sandbox's ``env()``."""
        by_env = {v: k for k, v in ENV_NAMES.items()}
        return cls.model_validate({by_env[k]: v for k, v in env.items() if k in by_env and v != ""})

    def require(self, *fields: str, why: str) -> None:
        """Raise a ConfigError naming every environment variable among ``fields`` that is not set."""
        missing = [ENV_NAMES.get(f, f.upper()) for f in fields if _empty(getattr(self, f))]
        if missing:
            raise ConfigError(f"{why} needs the environment variable(s) {', '.join(missing)}, which are not set")

    def secret(self, name: str) -> str | None:
        """The plain value of a secret field (None when unset); only for building requests."""
        value = getattr(self, name)
        if value is None:
            return None
        return value.get_secret_value() if isinstance(value, SecretStr) else str(value)

    @property
    def ca_path(self) -> str | None:
        return str(self.ca_bundle) if self.ca_bundle else None


def _empty(value: object) -> bool:
    if value is None:
        return True
    if isinstance(value, SecretStr):
        return not value.get_secret_value()
    return isinstance(value, str) and not value.strip()
