"""Deployment settings from the environment (and an optional ``.env``). These names are a contract.

Secrets are ``SecretStr``: they print as ``**********`` and are registered with the redactor.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


def _env(name: str) -> AliasChoices:
    return AliasChoices(name)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore", populate_by_name=True)

    config_path: Path = Field(default=Path("config/agent.yaml"), validation_alias=_env("HEALTH_AGENT_CONFIG"))
    database_url: str = Field(default="sqlite:///./data/health-agent.db", validation_alias=_env("HEALTH_DATABASE_URL"))

    salesforce_instance_url: str | None = Field(default=None, validation_alias=_env("SALESFORCE_INSTANCE_URL"))
    salesforce_access_token: SecretStr | None = Field(default=None, validation_alias=_env("SALESFORCE_ACCESS_TOKEN"))
    salesforce_login_url: str = Field(
        default="https://login.salesforce.com", validation_alias=_env("SALESFORCE_LOGIN_URL")
    )
    salesforce_username: str | None = Field(default=None, validation_alias=_env("SALESFORCE_USERNAME"))
    salesforce_consumer_key: str | None = Field(default=None, validation_alias=_env("SALESFORCE_CONSUMER_KEY"))
    salesforce_private_key_file: Path | None = Field(default=None, validation_alias=_env("SALESFORCE_PRIVATE_KEY_FILE"))
    salesforce_client_secret: SecretStr | None = Field(default=None, validation_alias=_env("SALESFORCE_CLIENT_SECRET"))
    salesforce_password: SecretStr | None = Field(default=None, validation_alias=_env("SALESFORCE_PASSWORD"))
    salesforce_security_token: SecretStr | None = Field(
        default=None, validation_alias=_env("SALESFORCE_SECURITY_TOKEN")
    )

    hubspot_access_token: SecretStr | None = Field(default=None, validation_alias=_env("HUBSPOT_ACCESS_TOKEN"))
    hubspot_base_url: str = Field(default="https://api.hubapi.com", validation_alias=_env("HUBSPOT_BASE_URL"))

    nps_api_key: SecretStr | None = Field(default=None, validation_alias=_env("NPS_API_KEY"))
    nps_base_url: str | None = Field(default=None, validation_alias=_env("NPS_BASE_URL"))
    intent_api_key: SecretStr | None = Field(default=None, validation_alias=_env("INTENT_API_KEY"))
    intent_base_url: str | None = Field(default=None, validation_alias=_env("INTENT_BASE_URL"))

    ca_bundle: Path | None = Field(default=None, validation_alias=_env("HEALTH_AGENT_CA_BUNDLE"))
    scoring_workers: int | None = Field(
        default=None, ge=1, validation_alias=_env("HEALTH_AGENT_SCORING_WORKERS"),
        description="Processes computing signals side by side (scoring.partitions); unset: one.",
    )
    log_format: str | None = Field(default=None, validation_alias=_env("LOG_FORMAT"))

    def secret_values(self) -> list[str]:
        """Every secret's plain value, for the redactor (never log these)."""
        values = [
            s.get_secret_value()
            for s in (
                self.salesforce_access_token,
                self.salesforce_client_secret,
                self.salesforce_password,
                self.salesforce_security_token,
                self.hubspot_access_token,
                self.nps_api_key,
                self.intent_api_key,
            )
            if s is not None
        ]
        password = _url_password(self.database_url)
        if password:
            values.append(password)
        return [v for v in values if v]


def _url_password(url: str) -> str | None:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        password = make_url(url).password
        return str(password) if password else None
    except ArgumentError:
        return None
