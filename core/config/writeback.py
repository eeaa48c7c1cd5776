"""What the agent writes into each CRM (an allowlist of custom fields), the safety limits, and task rules.

The agent only ever writes the fields mapped here. Every output the scorer produces has a name
(``OUTPUTS``) and a kind that decides how it is written and compared; mapping a standard CRM field
(``Name``, ``OwnerId``, HubSpot's ``name`` or any ``hs_`` property) is refused when the file is loaded.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from jinja2 import TemplateSyntaxError, meta
from jinja2.sandbox import SandboxedEnvironment
from pydantic import AfterValidator, Field, model_validator

from core.config.base import StrictModel

CrmName = Literal["salesforce", "hubspot"]
_ALL_CRMS: tuple[CrmName, ...] = ("salesforce", "hubspot")
OutputKind = Literal["number", "integer", "text", "boolean", "datetime"]

# output name -> (kind, what it is). Flags are booleans named after scoring's flags.
OUTPUTS: dict[str, tuple[OutputKind, str]] = {
    "score": ("number", "health score, points 0-100 (one decimal)"),
    "band": ("text", "health band name, e.g. red / yellow / green"),
    "trend": ("text", "direction against trend_days ago: up / down / flat"),
    "delta": ("number", "score change in points against trend_days ago"),
    "drivers": ("text", "the plain-language explanation, at most 255 characters"),
    "coverage": ("number", "share of scorecard weight that had data, percent 0-100"),
    "relationship_capital": ("number", "relationship capital, points 0-100"),
    "thread_count": ("integer", "engaged contacts in the engaged window"),
    "low_confidence": ("boolean", "coverage is below scoring.coverage_floor"),
    "single_threaded": ("boolean", "flag: single-threaded"),
    "lonely_client": ("boolean", "flag: lonely client"),
    "champion_gone": ("boolean", "flag: champion gone"),
    "expansion_signal": ("boolean", "flag: expansion signal"),
    "scored_at": ("datetime", "when the written values were computed (UTC); written only with another change"),
}
# Outputs written only along with another change of the same record: the time of the values, not a change itself
# (otherwise every run would rewrite every record).
COMPANION_OUTPUTS = ("scored_at",)
NUMERIC_OUTPUTS = tuple(name for name, (kind, _) in OUTPUTS.items() if kind in ("number", "integer"))

# Salesforce standard Account fields people are most likely to map by mistake; any name without __c is refused.
_SALESFORCE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,36}__c$")
_HUBSPOT_NAME = re.compile(r"^[a-z][a-z0-9_]{0,99}$")
HUBSPOT_STANDARD_PROPERTIES = frozenset(
    {
        "name", "domain", "website", "industry", "numberofemployees", "annualrevenue", "description", "phone",
        "city", "state", "country", "zip", "address", "hubspot_owner_id", "lifecyclestage", "createdate",
        "closedate", "type", "timezone", "notes_last_updated", "num_associated_contacts", "num_associated_deals",
    }
)


def _known_output(name: str) -> str:
    if name not in OUTPUTS:
        raise ValueError(f"unknown output {name!r} (known: {', '.join(OUTPUTS)})")
    return name


def _salesforce_custom_field(name: str) -> str:
    if not name.endswith("__c"):
        raise ValueError(
            f"{name!r} is a standard Salesforce field; the agent only writes custom fields (names ending in __c), "
            "so it can never overwrite data people own such as Name or OwnerId"
        )
    if not _SALESFORCE_NAME.match(name):
        raise ValueError(
            f"{name!r} is not a valid custom field API name (letters, digits, _; at most 40 chars; ends in __c)"
        )
    return name


def _hubspot_custom_property(name: str) -> str:
    if name in HUBSPOT_STANDARD_PROPERTIES or name.startswith("hs_"):
        raise ValueError(
            f"{name!r} is a standard HubSpot property; the agent only writes its own custom properties "
            "(e.g. health_score), so it can never overwrite data people own"
        )
    if not _HUBSPOT_NAME.match(name):
        raise ValueError(f"{name!r} is not a valid HubSpot property name (lowercase letters, digits and _)")
    return name


OutputName = Annotated[str, AfterValidator(_known_output)]
SalesforceCustomField = Annotated[str, AfterValidator(_salesforce_custom_field)]
HubSpotCustomProperty = Annotated[str, AfterValidator(_hubspot_custom_property)]
_TEMPLATES = SandboxedEnvironment(autoescape=False)


# The variables task templates can use (``writeback.tasks.template_context`` fills them).
TEMPLATE_VARIABLES = frozenset({
    "account_name", "score", "band", "previous_band", "trend", "delta", "trend_days", "drivers", "flags",
    "flags_on", "coverage", "low_confidence", "relationship_capital", "thread_count", "renewal_date",
    "days_to_renewal", "rule", "field", "current", "last_written", "computed",
})


def _template(text: str) -> str:
    try:
        parsed = _TEMPLATES.parse(text)
    except TemplateSyntaxError as exc:
        raise ValueError(f"template syntax error on its line {exc.lineno}: {exc.message}") from None
    unknown = sorted(meta.find_undeclared_variables(parsed) - TEMPLATE_VARIABLES)
    if unknown:
        known = ", ".join(sorted(TEMPLATE_VARIABLES))
        raise ValueError(f"unknown template variable(s) {', '.join(unknown)} (known: {known})")
    return text


Template = Annotated[str, AfterValidator(_template)]


def _unique_fields(fields: dict[str, str]) -> dict[str, str]:
    seen: dict[str, str] = {}
    for output, field in fields.items():
        if field in seen:
            raise ValueError(f"outputs {seen[field]!r} and {output!r} both map to {field!r}; map each field once")
        seen[field] = output
    return fields


class SalesforceWritebackConfig(StrictModel):
    """Salesforce: which custom Account fields receive which output."""

    object: Literal["Account"] = Field(default="Account", description="The object the agent's scores go on.")
    fields: Annotated[dict[OutputName, SalesforceCustomField], AfterValidator(_unique_fields)] = Field(
        default_factory=dict, description="output name -> custom field API name (ends in __c)."
    )
    fallback_owner_id: str | None = Field(
        default=None, description="User or queue Id that owns tasks when the account has no (active) owner."
    )
    task_status_open: str = Field(default="Not Started", description="Task Status for a new task.")
    task_status_closed: str = Field(default="Completed", description="Task Status the agent sets on auto-close.")


class HubSpotWritebackConfig(StrictModel):
    """HubSpot: which custom company properties receive which output."""

    fields: Annotated[dict[OutputName, HubSpotCustomProperty], AfterValidator(_unique_fields)] = Field(
        default_factory=dict, description="output name -> company property name."
    )
    property_group: str = Field(
        default="health_agent", pattern=r"^[a-z][a-z0-9_]{0,99}$",
        description="Group `provision` puts the properties in.",
    )
    property_group_label: str = Field(default="Customer health (agent)")
    fallback_owner_id: str | None = Field(default=None, description="Owner id for tasks when the company has no owner.")


class GuardConfig(StrictModel):
    """The blast-radius guard: stop before writing when a run would change too much at once."""

    max_band_change_share: float = Field(
        default=0.3, gt=0, le=1, description="Stop when more than this share of scored accounts changes band."
    )
    min_accounts: int = Field(
        default=20, ge=1, description="The share rule applies only when at least this many accounts were scored."
    )
    max_records: int = Field(
        default=25_000, ge=1, description="Stop when more than this many records would be written."
    )


class TaskConditions(StrictModel):
    """When a rule fires. Every condition given must hold (AND); leave a condition out to ignore it."""

    band_in: list[str] | None = Field(default=None, description="The band is one of these.")
    band_became: str | None = Field(default=None, description="The band changed into this one in this run.")
    band_changed: bool | None = Field(default=None, description="The band changed (True) or did not (False).")
    score_below: float | None = Field(default=None, ge=0, le=100, description="Score < this (points).")
    score_at_least: float | None = Field(default=None, ge=0, le=100, description="Score >= this (points).")
    score_fell_by: float | None = Field(
        default=None, gt=0, description="The score fell by at least this many points against trend_days ago."
    )
    trend_in: list[Literal["up", "down", "flat"]] | None = None
    flags_on: list[str] = Field(default_factory=list, description="Every flag listed is on.")
    flags_off: list[str] = Field(default_factory=list, description="Every flag listed is off.")
    renewal_within_days: int | None = Field(
        default=None, ge=0, description="The next renewal is within this many days (and not past)."
    )
    coverage_below: float | None = Field(default=None, ge=0, le=1, description="Coverage (share 0-1) below this.")

    @model_validator(mode="after")
    def _something(self) -> TaskConditions:
        if not any(value not in (None, []) for value in self.__dict__.values()):
            raise ValueError("give at least one condition")
        return self


_FLAG_NAMES = ("single_threaded", "lonely_client", "champion_gone", "expansion_signal")


class TaskRule(StrictModel):
    """A follow-up task the agent opens (once per rule and account) while the conditions hold."""

    name: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,40}$")]
    when: TaskConditions
    subject: Template = Field(max_length=255, description="Jinja template; see the example file for variables.")
    body: Template = Field(default="{{ drivers }}", description="Jinja template of the task's description.")
    owner: Literal["account_owner", "fallback"] = Field(
        default="account_owner", description="account_owner, else the CRM's fallback_owner_id."
    )
    due_in_days: int = Field(default=3, ge=0, le=365)
    priority: Literal["high", "normal", "low"] = "normal"
    cooldown_days: int = Field(
        default=14, ge=0, description="After a task is completed, wait this long before another."
    )
    auto_close: bool = Field(default=False, description="Complete the open task when the conditions stop holding.")
    associate_champion: bool = Field(default=False, description="HubSpot: also associate the most-engaged contact.")
    crms: list[CrmName] = Field(default_factory=lambda: list(_ALL_CRMS))

    @model_validator(mode="after")
    def _flags_known(self) -> TaskRule:
        for flag in (*self.when.flags_on, *self.when.flags_off):
            if flag not in _FLAG_NAMES:
                raise ValueError(f"unknown flag {flag!r} (known: {', '.join(_FLAG_NAMES)})")
        return self


def _unique_rules(rules: list[TaskRule]) -> list[TaskRule]:
    names = [r.name for r in rules]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"task rule names must be unique (repeated: {', '.join(dupes)})")
    return rules


class TasksConfig(StrictModel):
    enabled: bool = True
    rules: Annotated[list[TaskRule], AfterValidator(_unique_rules)] = Field(default_factory=list)
    lookup_before_create: Literal["always", "pending"] = Field(
        default="always",
        description="Search the CRM for a task's dedupe key before creating it: always, or only after an "
        "interrupted create (a pending ledger row).",
    )
    review_subject: Template = Field(
        default="Review health field {{ field }} on {{ account_name }}",
        max_length=255,
        description="Subject of the review task opened by human_edits: keep_and_review_task.",
    )
    review_due_in_days: int = Field(default=7, ge=0, le=365)


class WritebackConfig(StrictModel):
    """What the agent writes into each CRM, and when it refuses to."""

    enabled: bool = True
    salesforce: SalesforceWritebackConfig = SalesforceWritebackConfig()
    hubspot: HubSpotWritebackConfig = HubSpotWritebackConfig()
    min_delta: dict[OutputName, Annotated[float, Field(ge=0)]] = Field(
        default_factory=lambda: {"score": 1.0, "delta": 1.0, "coverage": 5.0, "relationship_capital": 1.0},
        description="Numeric outputs whose change against the value last written is below this are not written "
        "(in the output's unit: points, or percent for coverage).",
    )
    human_edits: Literal["overwrite", "skip_and_report", "keep_and_review_task"] = Field(
        default="skip_and_report",
        description="When the CRM holds a value other than the agent last wrote: overwrite it, leave it and "
        "report it, or leave it and open a review task.",
    )
    read_current_values: bool = Field(
        default=True,
        description="Read the CRM's current values of the records about to be written (few calls), to detect "
        "human edits and keep the replaced value in the audit trail.",
    )
    guard: GuardConfig = GuardConfig()
    tasks: TasksConfig = TasksConfig()

    @model_validator(mode="after")
    def _numeric_deltas(self) -> WritebackConfig:
        for name in self.min_delta:
            if name not in NUMERIC_OUTPUTS:
                raise ValueError(
                    f"min_delta.{name}: only numeric outputs have a minimum delta ({', '.join(NUMERIC_OUTPUTS)})"
                )
        return self
