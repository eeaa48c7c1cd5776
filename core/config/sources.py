"""Which systems the agent pulls from, and how their fields map into the canonical model.

Every stream maps canonical fields (``core.records``) to source fields: a standard or custom field, or a
relationship path (``Owner.Email`` in Salesforce, ``person.email`` in JSON). Defaults cover the standard
objects; ``fields`` overrides one mapping at a time and ``extra_fields`` pulls any other source field into
the record's ``extra`` as a signal (e.g. a usage score the customer already keeps on Account).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from core.config.base import StrictModel

Entity = Literal[
    "accounts", "contacts", "users", "activities", "deals", "tickets", "survey_responses", "intent_signals",
    "usage_metrics", "invoices",
]  # fmt: skip


class StreamConfig(StrictModel):
    """Overrides for one stream of a CRM (keyed by stream name, e.g. ``accounts``, ``tasks``, ``calls``)."""

    enabled: bool = Field(default=True, description="Pull this stream.")
    object: str | None = Field(default=None, description="The CRM object to read instead of the default one.")
    fields: dict[str, str] = Field(
        default_factory=dict, description="Canonical field -> CRM field or relationship path (overrides defaults)."
    )
    extra_fields: dict[str, str] = Field(
        default_factory=dict, description="Signal name -> CRM field, kept in the record's extra (e.g. usage score)."
    )


class DealKindConfig(StrictModel):
    """How an opportunity/deal is typed as renewal, expansion or new business."""

    by: Literal["type", "record_type", "field"] = Field(
        default="type", description="type: the Type picklist; record_type: RecordType.Name; field: `field` below."
    )
    field: str = Field(default="Type", description="The CRM field read when by=field.")
    renewal: list[str] = Field(default_factory=lambda: ["Renewal", "renewal", "existingbusiness"])
    expansion: list[str] = Field(default_factory=lambda: ["Expansion", "Existing Customer - Upgrade", "expansion"])
    new_business: list[str] = Field(default_factory=lambda: ["New Business", "new_business", "newbusiness"])


class CustomObjectConfig(StrictModel):
    """A custom object pulled into a canonical table (e.g. ``Usage__c`` -> ``usage_metrics``)."""

    name: str = Field(description="The stream's name in reports, e.g. usage.")
    object: str = Field(description="The CRM object, e.g. Usage__c.")
    entity: Entity
    fields: dict[str, str] = Field(description="Canonical field -> CRM field; external_id defaults to Id.")
    extra_fields: dict[str, str] = Field(default_factory=dict)


class SalesforceSourceConfig(StrictModel):
    enabled: bool = False
    api_version: str = Field(default="59.0", pattern=r"^\d{2}\.\d$")
    auth: Literal["auto", "token", "jwt", "client_credentials", "password"] = Field(
        default="auto", description="Login flow; auto picks JWT, password, client credentials, then a plain token."
    )
    streams: dict[str, StreamConfig] = Field(
        default_factory=dict,
        description="Per-stream overrides: accounts, contacts, users, opportunities, cases, tasks, events.",
    )
    deal_kind: DealKindConfig = DealKindConfig()
    contact_roles: bool = Field(default=True, description="Read OpportunityContactRole to list a deal's contacts.")
    custom_objects: list[CustomObjectConfig] = Field(default_factory=list)
    bulk_poll_seconds: float = Field(default=1.0, ge=0, description="Wait between Bulk API 2.0 job status checks.")


class HubSpotSourceConfig(StrictModel):
    enabled: bool = False
    streams: dict[str, StreamConfig] = Field(
        default_factory=dict,
        description="Per-stream overrides: companies, contacts, deals, tickets, owners, calls, emails, meetings, notes.",  # noqa: E501
    )
    deal_kind: DealKindConfig = DealKindConfig(by="field", field="dealtype")
    archived: bool = Field(default=True, description="Also read archived records (kept as deleted, a signal).")
    archived_sweep_hours: float = Field(
        default=24, ge=0, description="Hours between sweeps of archived records on incremental runs (0: every run)."
    )
    owners_refresh_hours: float = Field(
        default=24, ge=0, description="Hours between listings of every owner on incremental runs (0: every run)."
    )


class HttpAuthConfig(StrictModel):
    style: Literal["bearer", "header", "basic", "query", "none"] = Field(
        default="bearer", description="bearer: Authorization: Bearer KEY; header: `header: KEY`; basic: KEY as user."
    )
    header: str = Field(default="Authorization", description="Header name for style=header.")
    query_param: str = Field(default="api_key", description="Query parameter for style=query.")
    key_env: str | None = Field(default=None, description="Environment variable that holds the key (generic sources).")


class PagingConfig(StrictModel):
    style: Literal["cursor", "page", "offset", "link", "none"] = "page"
    size: int = Field(default=100, ge=1, le=10_000)
    size_param: str = "per_page"
    page_param: str = "page"
    start_page: int = 1
    offset_param: str = "offset"
    cursor_param: str = "cursor"
    cursor_path: str = Field(default="next_cursor", description="Where the next cursor is in the JSON answer.")


class HttpStreamConfig(StrictModel):
    """One JSON endpoint whose items become canonical records."""

    name: str
    path: str = Field(description="Path under the base URL, e.g. /v1/survey_responses.json")
    entity: Entity
    records_path: str = Field(default="", description="Dotted path to the item list; empty: the answer is the list.")
    params: dict[str, str] = Field(default_factory=dict, description="Fixed query parameters.")
    since_param: str | None = Field(default=None, description="Query parameter that takes the cursor.")
    since_format: Literal["iso", "unix", "unix_ms", "date"] = "iso"
    cursor_field: str = Field(default="updated_at", description="Item field the cursor follows.")
    fields: dict[str, str] = Field(description="Canonical field -> dotted path in an item; external_id is required.")
    extra_fields: dict[str, str] = Field(default_factory=dict)
    constants: dict[str, str] = Field(default_factory=dict, description="Canonical field -> fixed value (e.g. kind).")


class HttpSourceConfig(StrictModel):
    """A JSON-over-HTTP source declared in YAML (a vendor added without code)."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]{0,31}$")
    enabled: bool = True
    base_url: str | None = Field(default=None, description="Base URL; for nps/intent the *_BASE_URL variable wins.")
    auth: HttpAuthConfig = HttpAuthConfig()
    paging: PagingConfig = PagingConfig()
    headers: dict[str, str] = Field(default_factory=dict)
    streams: list[HttpStreamConfig] = Field(default_factory=list)


def _nps_default() -> HttpSourceConfig:
    # Modelled on Delighted's survey responses API: basic auth with the key, Link-header paging, unix times.
    return HttpSourceConfig(
        name="nps",
        enabled=False,
        auth=HttpAuthConfig(style="basic"),
        paging=PagingConfig(style="link", size=100, size_param="per_page"),
        streams=[
            HttpStreamConfig(
                name="responses",
                path="/v1/survey_responses.json",
                entity="survey_responses",
                params={"order": "asc"},
                since_param="updated_since",
                since_format="unix",
                cursor_field="updated_at",
                fields={
                    "external_id": "id",
                    "score": "score",
                    "comment": "comment",
                    "responded_at": "created_at",
                    "email": "person.email",
                    "source_created_at": "created_at",
                    "source_updated_at": "updated_at",
                    "kind": "survey_type",
                },
                constants={"kind": "nps"},
            )
        ],
    )


def _intent_default() -> HttpSourceConfig:
    # Modelled on company-level intent feeds (6sense/Demandbase style): X-API-Key, cursor paging, ISO since.
    return HttpSourceConfig(
        name="intent",
        enabled=False,
        auth=HttpAuthConfig(style="header", header="X-API-Key"),
        paging=PagingConfig(style="cursor", size=1000, size_param="limit", cursor_param="cursor",
                            cursor_path="next_cursor"),
        streams=[
            HttpStreamConfig(
                name="signals",
                path="/v1/intent/companies",
                entity="intent_signals",
                records_path="data",
                since_param="since",
                since_format="iso",
                cursor_field="updated_at",
                fields={
                    "external_id": "id",
                    "domain": "domain",
                    "topic": "topic",
                    "score": "score",
                    "observed_at": "observed_at",
                    "source_updated_at": "updated_at",
                },
            )
        ],
    )


class TabularSourceConfig(StrictModel):
    """Usage or billing rows from a SQL query against any SQLAlchemy URL, or from a CSV/Parquet file."""

    enabled: bool = False
    url: str | None = Field(default=None, description="SQLAlchemy URL of the warehouse (use ${VAR} for secrets).")
    query: str | None = Field(default=None, description="SELECT run against `url`; its columns are mapped below.")
    file: str | None = Field(default=None, description="A .csv or .parquet file instead of a query.")
    columns: dict[str, str] = Field(
        default_factory=dict, description="Canonical field -> column (account_external_id or account_domain keys it)."
    )
    id_columns: list[str] = Field(
        default_factory=list, description="Columns joined to make the row id when there is no external_id column."
    )
    cursor_column: str | None = Field(default=None, description="Column of the row's last change, for increments.")
    extra_columns: dict[str, str] = Field(default_factory=dict)


class SourcesConfig(StrictModel):
    salesforce: SalesforceSourceConfig = SalesforceSourceConfig()
    hubspot: HubSpotSourceConfig = HubSpotSourceConfig()
    nps: HttpSourceConfig = Field(default_factory=_nps_default)
    intent: HttpSourceConfig = Field(default_factory=_intent_default)
    usage: TabularSourceConfig = TabularSourceConfig()
    billing: TabularSourceConfig = TabularSourceConfig()
    http: list[HttpSourceConfig] = Field(default_factory=list, description="Further JSON-over-HTTP sources.")

    @model_validator(mode="before")
    @classmethod
    def _apply_presets(cls, data: Any) -> Any:
        """``nps:``/``intent:`` keys override the preset shallowly (e.g. ``enabled: true`` keeps the streams)."""
        if isinstance(data, dict):
            data = dict(data)
            for key, preset in (("nps", _nps_default), ("intent", _intent_default)):
                value = data.get(key)
                if isinstance(value, dict):
                    data[key] = {**preset().model_dump(exclude_unset=False), **value}
        return data
