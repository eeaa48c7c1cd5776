"""Configuration of how the agent runs: schedule, API limits and batch sizes, observability."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from core.config.base import StrictModel


class ScheduleConfig(StrictModel):
    """When runs happen. One of ``cron`` or ``interval_minutes``."""

    cron: str | None = Field(
        default="0 */6 * * *", description="Five-field cron expression (minute hour day month weekday)."
    )
    interval_minutes: int | None = Field(default=None, ge=1, description="Run every N minutes instead of on a cron.")
    timezone: str = Field(default="UTC", description="IANA time zone the cron is read in.")
    misfire_grace_seconds: int = Field(default=600, ge=1, description="A run late by up to this much still starts.")
    run_at_start: bool = Field(default=True, description="Run once as soon as the agent starts.")
    shutdown_grace_seconds: int = Field(
        default=60, ge=1, description="On SIGTERM, time allowed to finish the batch in flight."
    )
    lease_ttl_seconds: int = Field(
        default=300, ge=10, description="A replica that stops renewing loses the run lease after this long."
    )

    @field_validator("cron")
    @classmethod
    def _five_fields(cls, value: str | None) -> str | None:
        if value is not None and len(value.split()) != 5:
            raise ValueError(f"a cron expression has five fields (minute hour day month weekday), got {value!r}")
        return value

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (use an IANA name such as Europe/Berlin)") from None
        return value


class HttpLimits(StrictModel):
    connect_timeout_seconds: float = Field(default=10.0, gt=0)
    read_timeout_seconds: float = Field(default=60.0, gt=0)
    max_attempts: int = Field(default=6, ge=1, le=20, description="Tries per call, the first included.")
    max_retry_seconds: float = Field(
        default=300.0, gt=0, description="Cap on the total time spent waiting between tries of one call."
    )
    backoff_base_seconds: float = Field(default=0.5, ge=0)


class SalesforceLimits(StrictModel):
    pull_share_of_daily_limit: float = Field(
        default=0.5,
        gt=0,
        le=1,
        description="Stop pulling once this share of the org's daily API requests is used (by anyone).",
    )
    reserve_share: float = Field(
        default=0.2,
        ge=0,
        lt=1,
        description="Share of the daily limit never used by the agent, kept for the customer's other integrations.",
    )
    bulk_threshold: int = Field(
        default=10_000, ge=0, description="Backfill through Bulk API 2.0 above this many records."
    )
    query_batch_size: int = Field(default=2000, ge=200, le=2000)
    write_batch_size: int = Field(default=200, ge=1, le=200)
    bulk_write_threshold: int = Field(
        default=10_000, ge=0, description="Write through Bulk API 2.0 ingest above this many records."
    )


class HubSpotLimits(StrictModel):
    ten_second_limit: int = Field(
        default=190, ge=1, description="Requests per rolling ten seconds your HubSpot tier allows."
    )
    headroom_share: float = Field(default=0.2, ge=0, lt=1, description="Share of the ten-second limit left unused.")
    daily_limit: int = Field(default=625_000, ge=1)
    search_per_second: float = Field(default=4.0, gt=0, le=5)
    page_size: int = Field(default=100, ge=1, le=100)
    write_batch_size: int = Field(default=100, ge=1, le=100)


class LimitsConfig(StrictModel):
    """API budgets, batch sizes and time-outs."""

    http: HttpLimits = HttpLimits()
    salesforce: SalesforceLimits = SalesforceLimits()
    hubspot: HubSpotLimits = HubSpotLimits()
    store_batch_size: int = Field(default=2000, ge=1, description="Records upserted and committed together.")
    cursor_lag_seconds: int = Field(
        default=300, ge=0, description="Incremental reads start this long before the cursor."
    )


class ObservabilityConfig(StrictModel):
    listen: str = Field(
        default="127.0.0.1:9464", description="host:port of /healthz, /readyz and /metrics; empty to turn off."
    )
    log_format: Literal["auto", "json", "text"] = "auto"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    report_dir: str = Field(default="./data/reports", description="Where HTML run reports are written.")
    keep_runs: int = Field(default=500, ge=1, description="Run reports kept in the store.")
