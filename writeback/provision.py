"""Provisioning: make sure every mapped CRM field exists with a fitting type (``health-agent provision``).

HubSpot: the property group and each mapped company property, created when missing (idempotent).
Salesforce: each mapped Account field checked through describe; with ``apply`` the missing custom fields
are created through the Tooling API, and when the user may not create fields, the metadata to deploy
is printed instead. Without ``apply`` nothing is created: the report says what is missing.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from connectors.hubspot.client import HubSpotClient
from connectors.salesforce.client import SalesforceClient
from core.config import AgentConfig
from core.config.writeback import OUTPUTS, OutputKind
from core.errors import ApiError

log = logging.getLogger(__name__)

# Salesforce field types per output kind: (Tooling type, precision, scale, length) and describe types accepted.
_SF_CREATE: dict[OutputKind, tuple[str, int | None, int | None, int | None]] = {
    "number": ("Number", 5, 1, None),
    "integer": ("Number", 6, 0, None),
    "text": ("Text", None, None, 255),
    "boolean": ("Checkbox", None, None, None),
    "datetime": ("DateTime", None, None, None),
}
_SF_ACCEPTS: dict[OutputKind, frozenset[str]] = {
    "number": frozenset({"double", "percent", "currency", "int"}),
    "integer": frozenset({"double", "int"}),
    "text": frozenset({"string", "textarea", "picklist"}),
    "boolean": frozenset({"boolean"}),
    "datetime": frozenset({"datetime"}),
}
# HubSpot (type, fieldType) per output kind, and the types accepted on an existing property.
_HS_CREATE: dict[OutputKind, tuple[str, str]] = {
    "number": ("number", "number"),
    "integer": ("number", "number"),
    "text": ("string", "text"),
    "boolean": ("bool", "booleancheckbox"),
    "datetime": ("datetime", "date"),
}
_HS_ACCEPTS: dict[OutputKind, frozenset[str]] = {
    "number": frozenset({"number"}),
    "integer": frozenset({"number"}),
    "text": frozenset({"string", "enumeration"}),
    "boolean": frozenset({"bool", "enumeration"}),
    "datetime": frozenset({"datetime", "date"}),
}
_BOOL_OPTIONS = (
    {"label": "Yes", "value": "true", "displayOrder": 0},
    {"label": "No", "value": "false", "displayOrder": 1},
)
_PERMISSION_CODES = ("INSUFFICIENT_ACCESS", "INSUFFICIENT_ACCESS_OR_READONLY", "API_DISABLED_FOR_ORG")


@dataclass(frozen=True)
class FieldStatus:
    crm: str
    output: str
    field: str
    expected: str  # the type the agent needs
    status: str  # ok | created | missing | wrong_type | failed
    detail: str = ""


@dataclass
class ProvisionReport:
    applied: bool
    fields: list[FieldStatus] = field(default_factory=list)
    group: str | None = None  # HubSpot property group: ok | created | missing | failed
    metadata_to_deploy: str = ""  # Salesforce CustomField metadata when fields could not be created here

    @property
    def ok(self) -> bool:
        """Every mapped field exists (now) with a fitting type."""
        return all(f.status in ("ok", "created") for f in self.fields)

    def to_dict(self) -> dict[str, Any]:
        return {"applied": self.applied, "ok": self.ok, "group": self.group,
                "fields": [asdict(f) for f in self.fields], "metadata_to_deploy": self.metadata_to_deploy}


def provision(config: AgentConfig, clients: Mapping[str, Any], apply: bool) -> ProvisionReport:
    """Check (and with ``apply`` create) every mapped field in each CRM that has a client."""
    report = ProvisionReport(applied=apply)
    wb = config.writeback
    if "salesforce" in clients and wb.salesforce.fields:
        _salesforce(clients["salesforce"], config, apply, report)
    if "hubspot" in clients and wb.hubspot.fields:
        _hubspot(clients["hubspot"], config, apply, report)
    return report


def _label(output: str) -> str:
    return "Health " + output.replace("_", " ")


def _salesforce(client: SalesforceClient, config: AgentConfig, apply: bool, report: ProvisionReport) -> None:
    wb = config.writeback.salesforce
    described = {f["name"]: f for f in client.describe(wb.object).get("fields", [])}
    needed: list[tuple[str, str, OutputKind]] = []
    for output, name in wb.fields.items():
        kind = OUTPUTS[output][0]
        expected = _SF_CREATE[kind][0]
        existing = described.get(name)
        if existing is None:
            needed.append((output, name, kind))
            continue
        if existing.get("type") not in _SF_ACCEPTS[kind] or existing.get("updateable") is False:
            detail = f"is {existing.get('type')} (updateable={existing.get('updateable')}); the agent needs {expected}"
            report.fields.append(FieldStatus("salesforce", output, name, expected, "wrong_type", detail))
        else:
            report.fields.append(FieldStatus("salesforce", output, name, expected, "ok"))
    undeployed: list[tuple[str, str, OutputKind]] = []
    for output, name, kind in needed:
        field_type, precision, scale, length = _SF_CREATE[kind]
        if not apply:
            report.fields.append(FieldStatus("salesforce", output, name, field_type, "missing", "run with --apply"))
            undeployed.append((output, name, kind))
            continue
        try:
            client.tooling_create_custom_field(
                wb.object, name, label=_label(output), field_type=field_type, length=length, precision=precision,
                scale=scale, description=f"Written by crm-health-agent: {OUTPUTS[output][1]}",
                default_value="false" if field_type == "Checkbox" else None,
            )
        except ApiError as exc:
            no_permission = exc.status == 403 or any(code in str(exc) for code in _PERMISSION_CODES)
            detail = "no permission to create fields; deploy the metadata below" if no_permission else str(exc)
            report.fields.append(FieldStatus("salesforce", output, name, field_type, "failed", detail))
            undeployed.append((output, name, kind))
            continue
        report.fields.append(FieldStatus("salesforce", output, name, field_type, "created"))
    if undeployed:
        report.metadata_to_deploy = salesforce_metadata(wb.object, undeployed)


def salesforce_metadata(sobject: str, fields: list[tuple[str, str, OutputKind]]) -> str:
    """CustomField metadata (the ``.field-meta.xml`` files of a deploy) for fields an admin must create."""
    parts: list[str] = []
    for output, name, kind in fields:
        field_type, precision, scale, length = _SF_CREATE[kind]
        lines = [f"<!-- objects/{sobject}/fields/{name}.field-meta.xml -->",
                 '<CustomField xmlns="http://soap.sforce.com/2006/04/metadata">',
                 f"    <fullName>{name}</fullName>", f"    <label>{_label(output)}</label>",
                 f"    <type>{field_type}</type>"]
        if precision is not None:
            lines += [f"    <precision>{precision}</precision>", f"    <scale>{scale or 0}</scale>"]
        if length is not None:
            lines.append(f"    <length>{length}</length>")
        if field_type == "Checkbox":
            lines.append("    <defaultValue>false</defaultValue>")
        lines.append("</CustomField>")
        parts.append("\n".join(lines))
    return "\n\n".join(parts)


def _hubspot(client: HubSpotClient, config: AgentConfig, apply: bool, report: ProvisionReport) -> None:
    wb = config.writeback.hubspot
    names = {g.get("name") for g in client.property_groups("companies")}
    if wb.property_group in names:
        report.group = "ok"
    elif not apply:
        report.group = "missing"
    else:
        try:
            client.create_property_group("companies", wb.property_group, label=wb.property_group_label)
            report.group = "created"
        except ApiError as exc:
            report.group = f"failed: {exc}"
    existing = {p.get("name"): p for p in client.properties("companies")}
    for output, name in wb.fields.items():
        kind = OUTPUTS[output][0]
        hs_type, field_type = _HS_CREATE[kind]
        prop = existing.get(name)
        if prop is not None:
            if prop.get("type") in _HS_ACCEPTS[kind]:
                report.fields.append(FieldStatus("hubspot", output, name, hs_type, "ok"))
            else:
                detail = f"is {prop.get('type')}; the agent needs {hs_type}"
                report.fields.append(FieldStatus("hubspot", output, name, hs_type, "wrong_type", detail))
            continue
        if not apply:
            report.fields.append(FieldStatus("hubspot", output, name, hs_type, "missing", "run with --apply"))
            continue
        try:
            client.create_property(
                "companies", name, label=_label(output), type=hs_type,
                field_type="textarea" if output == "drivers" else field_type, group_name=wb.property_group,
                options=_BOOL_OPTIONS if kind == "boolean" else (),
                description=f"Written by crm-health-agent: {OUTPUTS[output][1]}",
            )
        except ApiError as exc:
            report.fields.append(FieldStatus("hubspot", output, name, hs_type, "failed", str(exc)))
            continue
        report.fields.append(FieldStatus("hubspot", output, name, hs_type, "created"))
