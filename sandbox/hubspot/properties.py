"""Property definitions per object type: what may be read, written, searched, and how values are typed.

HubSpot stores every property value as a string; the definition's ``type`` (string, number, date,
datetime, enumeration, bool) decides how search compares values and which writes are refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

OBJECT_TYPES = ("companies", "contacts", "deals", "tickets", "calls", "emails", "meetings", "notes", "tasks")

# The ISO time every HubSpot-defined property says it was created; fixed so answers are deterministic.
DEFINITIONS_CREATED_AT = "2019-08-06T02:43:01.000Z"

FIELD_TYPE_BY_TYPE = {
    "string": "text",
    "number": "number",
    "date": "date",
    "datetime": "date",
    "enumeration": "select",
    "bool": "booleancheckbox",
}


@dataclass(frozen=True)
class PropDef:
    """One property of one object type."""

    name: str
    label: str
    type: str  # string | number | date | datetime | enumeration | bool
    group: str
    options: tuple[str, ...] = ()  # allowed values of an enumeration; empty means free text
    hubspot_defined: bool = True
    read_only: bool = False
    unique: bool = False  # values are unique per record: usable as ``idProperty``
    field_type: str = ""  # defaults from ``type``
    description: str = ""
    created_at: str = DEFINITIONS_CREATED_AT

    def as_json(self) -> dict[str, Any]:
        """The ``Property`` model HubSpot returns from /crm/v3/properties."""
        body: dict[str, Any] = {
            "updatedAt": self.created_at,
            "createdAt": self.created_at,
            "name": self.name,
            "label": self.label,
            "type": self.type,
            "fieldType": self.field_type or FIELD_TYPE_BY_TYPE[self.type],
            "description": self.description,
            "groupName": self.group,
            "options": [
                {"label": value.replace("_", " ").title(), "value": value, "displayOrder": i, "hidden": False}
                for i, value in enumerate(self.options)
            ],
            "displayOrder": -1,
            "calculated": False,
            "externalOptions": False,
            "hasUniqueValue": self.unique,
            "hidden": False,
            "modificationMetadata": {
                "archivable": not self.hubspot_defined,
                "readOnlyDefinition": self.hubspot_defined,
                "readOnlyValue": self.read_only,
            },
            "formField": not self.read_only,
            "archived": False,
        }
        if self.hubspot_defined:
            body["hubspotDefined"] = True
        return body


def _p(name: str, label: str, type_: str, group: str, *options: str, custom: bool = False, ro: bool = False) -> PropDef:
    return PropDef(name, label, type_, group, tuple(options), hubspot_defined=not custom, read_only=ro)


def _enum(name: str, label: str, group: str, options: str) -> PropDef:
    """An enumeration property whose allowed values are ``options``, space-separated."""
    return PropDef(name, label, "enumeration", group, tuple(options.split()))


def _common(group: str, modified: str = "hs_lastmodifieddate") -> list[PropDef]:
    return [
        _p("hs_object_id", "Record ID", "number", group, ro=True),
        _p("createdate" if group != "engagement" else "hs_createdate", "Create Date", "datetime", group, ro=True),
        _p(modified, "Last Modified Date", "datetime", group, ro=True),
        _p("hubspot_owner_id", "Owner", "enumeration", group),
    ]


LIFECYCLE_STAGES = (
    "subscriber",
    "lead",
    "marketingqualifiedlead",
    "salesqualifiedlead",
    "opportunity",
    "customer",
    "evangelist",
    "other",
)

_ENGAGEMENT_COMMON = [
    _p("hs_timestamp", "Activity date", "datetime", "engagement"),
    _p("hs_body_preview", "Body preview", "string", "engagement", ro=True),
    _p("hs_activity_type", "Activity type", "string", "engagement"),
]

DEFAULT_PROPERTIES: dict[str, dict[str, list[PropDef]]] = {
    "companies": {
        "companyinformation": [
            *_common("companyinformation"),
            _p("name", "Company name", "string", "companyinformation"),
            _p("domain", "Company Domain Name", "string", "companyinformation"),
            _p("website", "Website URL", "string", "companyinformation"),
            _p("industry", "Industry", "string", "companyinformation"),
            _p("numberofemployees", "Number of Employees", "number", "companyinformation"),
            _p("annualrevenue", "Annual Revenue", "number", "companyinformation"),
            _p("description", "Description", "string", "companyinformation"),
            _p("lifecyclestage", "Lifecycle Stage", "enumeration", "companyinformation", *LIFECYCLE_STAGES),
            _enum(
                "hs_lead_status",
                "Lead Status",
                "companyinformation",
                "NEW OPEN IN_PROGRESS OPEN_DEAL UNQUALIFIED ATTEMPTED_TO_CONTACT CONNECTED BAD_TIMING",
            ),
        ],
        "customer_health": [
            _p("tier", "Tier", "enumeration", "customer_health", "enterprise", "mid_market", "smb", custom=True),
            _p("arr", "ARR", "number", "customer_health", custom=True),
            _p("renewal_date", "Renewal date", "date", "customer_health", custom=True),
        ],
    },
    "contacts": {
        "contactinformation": [
            *_common("contactinformation", modified="lastmodifieddate"),
            _p("firstname", "First Name", "string", "contactinformation"),
            _p("lastname", "Last Name", "string", "contactinformation"),
            PropDef("email", "Email", "string", "contactinformation", unique=True),
            _p("jobtitle", "Job Title", "string", "contactinformation"),
            _p("phone", "Phone Number", "string", "contactinformation"),
            _p("associatedcompanyid", "Primary Associated Company ID", "number", "contactinformation"),
            _p("lifecyclestage", "Lifecycle Stage", "enumeration", "contactinformation", *LIFECYCLE_STAGES),
            _p("hs_lastmodifieddate", "Object last modified date/time", "datetime", "contactinformation", ro=True),
        ],
        "customer_health": [
            _p("department", "Department", "string", "customer_health", custom=True),
            _p("left_company", "Left the company", "bool", "customer_health", "true", "false", custom=True),
        ],
    },
    "deals": {
        "dealinformation": [
            *_common("dealinformation"),
            _p("dealname", "Deal Name", "string", "dealinformation"),
            _p("dealtype", "Deal Type", "enumeration", "dealinformation", "newbusiness", "existingbusiness"),
            _p("pipeline", "Pipeline", "enumeration", "dealinformation", "default"),
            _enum(
                "dealstage",
                "Deal Stage",
                "dealinformation",
                "appointmentscheduled qualifiedtobuy presentationscheduled decisionmakerboughtin contractsent "
                "closedwon closedlost",
            ),
            _p("closedate", "Close Date", "datetime", "dealinformation"),
            _p("amount", "Amount", "number", "dealinformation"),
            _p("hs_is_closed", "Is Deal Closed?", "bool", "dealinformation", "true", "false", ro=True),
            _p("hs_is_closed_won", "Is Closed Won", "bool", "dealinformation", "true", "false", ro=True),
        ],
        "customer_health": [
            _p(
                "deal_kind",
                "Deal kind",
                "enumeration",
                "customer_health",
                "new_business",
                "renewal",
                "expansion",
                custom=True,
            ),
        ],
    },
    "tickets": {
        "ticketinformation": [
            *_common("ticketinformation"),
            _p("subject", "Ticket name", "string", "ticketinformation"),
            _p("content", "Ticket description", "string", "ticketinformation"),
            _p("hs_pipeline", "Pipeline", "enumeration", "ticketinformation", "0"),
            _p("hs_pipeline_stage", "Ticket status", "enumeration", "ticketinformation", "1", "2", "3", "4"),
            _p("hs_ticket_priority", "Priority", "enumeration", "ticketinformation", "LOW", "MEDIUM", "HIGH", "URGENT"),
            _enum(
                "hs_ticket_category",
                "Category",
                "ticketinformation",
                "PRODUCT_ISSUE BILLING_ISSUE FEATURE_REQUEST GENERAL_INQUIRY",
            ),
            _p("closed_date", "Close date", "datetime", "ticketinformation"),
        ],
        "customer_health": [
            _p("escalated", "Escalated", "bool", "customer_health", "true", "false", custom=True),
        ],
    },
    "calls": {
        "engagement": [
            *_common("engagement"),
            *_ENGAGEMENT_COMMON,
            _p("hs_call_title", "Call Title", "string", "engagement"),
            _p("hs_call_body", "Call notes", "string", "engagement"),
            _p("hs_call_direction", "Call direction", "enumeration", "engagement", "INBOUND", "OUTBOUND"),
            _p("hs_call_duration", "Call duration", "number", "engagement"),
            _enum(
                "hs_call_status",
                "Call status",
                "engagement",
                "BUSY CALLING_CRM_USER CANCELED COMPLETED CONNECTING FAILED IN_PROGRESS NO_ANSWER QUEUED RINGING",
            ),
        ],
    },
    "emails": {
        "engagement": [
            *_common("engagement"),
            *_ENGAGEMENT_COMMON,
            _p("hs_email_subject", "Email subject", "string", "engagement"),
            _p("hs_email_text", "Email body", "string", "engagement"),
            _enum("hs_email_direction", "Email direction", "engagement", "EMAIL INCOMING_EMAIL FORWARDED_EMAIL"),
            _enum("hs_email_status", "Email send status", "engagement", "BOUNCED FAILED SCHEDULED SENDING SENT"),
        ],
    },
    "meetings": {
        "engagement": [
            *_common("engagement"),
            *_ENGAGEMENT_COMMON,
            _p("hs_meeting_title", "Meeting name", "string", "engagement"),
            _p("hs_meeting_body", "Meeting description", "string", "engagement"),
            _p("hs_meeting_start_time", "Start Time", "datetime", "engagement"),
            _p("hs_meeting_end_time", "End Time", "datetime", "engagement"),
            _enum(
                "hs_meeting_outcome",
                "Meeting outcome",
                "engagement",
                "SCHEDULED COMPLETED RESCHEDULED NO_SHOW CANCELED",
            ),
        ],
    },
    "notes": {
        "engagement": [
            *_common("engagement"),
            *_ENGAGEMENT_COMMON,
            _p("hs_note_body", "Note body", "string", "engagement"),
        ],
    },
    "tasks": {
        "task": [
            _p("hs_object_id", "Record ID", "number", "task", ro=True),
            _p("hs_createdate", "Create Date", "datetime", "task", ro=True),
            _p("hs_lastmodifieddate", "Last Modified Date", "datetime", "task", ro=True),
            _p("hubspot_owner_id", "Assigned to", "enumeration", "task"),
            _p("hs_timestamp", "Due date", "datetime", "task"),
            _p("hs_task_subject", "Task Title", "string", "task"),
            _p("hs_task_body", "Notes", "string", "task"),
            _enum("hs_task_status", "Task Status", "task", "NOT_STARTED IN_PROGRESS WAITING COMPLETED DEFERRED"),
            _p("hs_task_priority", "Priority", "enumeration", "task", "NONE", "LOW", "MEDIUM", "HIGH"),
            _p("hs_task_type", "Task Type", "enumeration", "task", "EMAIL", "CALL", "TODO", "LINKED_IN"),
        ],
    },
}

GROUP_LABELS = {
    "companyinformation": "Company information",
    "contactinformation": "Contact information",
    "dealinformation": "Deal information",
    "ticketinformation": "Ticket information",
    "engagement": "Engagement details",
    "task": "Task information",
    "customer_health": "Customer health",
}

# What a list or get returns when the caller names no properties (as HubSpot does per object type).
DEFAULT_READ_PROPERTIES: dict[str, tuple[str, ...]] = {
    "companies": ("createdate", "domain", "hs_lastmodifieddate", "hs_object_id", "name"),
    "contacts": ("createdate", "email", "firstname", "hs_object_id", "lastmodifieddate", "lastname"),
    "deals": (
        "amount",
        "closedate",
        "createdate",
        "dealname",
        "dealstage",
        "hs_lastmodifieddate",
        "hs_object_id",
        "pipeline",
    ),
    "tickets": (
        "content",
        "createdate",
        "hs_lastmodifieddate",
        "hs_object_id",
        "hs_pipeline",
        "hs_pipeline_stage",
        "hs_ticket_category",
        "hs_ticket_priority",
        "subject",
    ),
    "calls": ("hs_createdate", "hs_lastmodifieddate", "hs_object_id"),
    "emails": ("hs_createdate", "hs_lastmodifieddate", "hs_object_id"),
    "meetings": ("hs_createdate", "hs_lastmodifieddate", "hs_object_id"),
    "notes": ("hs_createdate", "hs_lastmodifieddate", "hs_object_id"),
    "tasks": ("hs_createdate", "hs_lastmodifieddate", "hs_object_id"),
}

# The property that says when a record last changed, per object type.
MODIFIED_PROPERTY = {t: ("lastmodifieddate" if t == "contacts" else "hs_lastmodifieddate") for t in OBJECT_TYPES}
CREATED_PROPERTY = {
    t: ("createdate" if t in ("companies", "contacts", "deals", "tickets") else "hs_createdate") for t in OBJECT_TYPES
}


@dataclass
class PropertyGroup:
    name: str
    label: str
    display_order: int = -1
    archived: bool = False

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "label": self.label, "displayOrder": self.display_order, "archived": self.archived}


class PropertyRegistry:
    """The property definitions of every object type; properties created through the API are added here."""

    def __init__(self) -> None:
        self.props: dict[str, dict[str, PropDef]] = {}
        self.groups: dict[str, dict[str, PropertyGroup]] = {}
        self.reset()

    def reset(self) -> None:
        self.props = {t: {} for t in OBJECT_TYPES}
        self.groups = {t: {} for t in OBJECT_TYPES}
        for object_type, groups in DEFAULT_PROPERTIES.items():
            for group, defs in groups.items():
                self.groups[object_type][group] = PropertyGroup(group, GROUP_LABELS[group])
                for d in defs:
                    self.props[object_type][d.name] = d

    def get(self, object_type: str, name: str) -> PropDef | None:
        return self.props[object_type].get(name)

    def add(self, object_type: str, prop: PropDef) -> None:
        self.props[object_type][prop.name] = prop

    def remove(self, object_type: str, name: str) -> None:
        """Archive a property: it can no longer be read or written (stored values stay, as in HubSpot)."""
        del self.props[object_type][name]

    def invalid_values(self, object_type: str, values: dict[str, Any]) -> list[dict[str, Any]]:
        """HubSpot's per-property validation results for a write: unknown properties, bad options, read-only."""
        problems: list[dict[str, Any]] = []
        for name, value in values.items():
            prop = self.get(object_type, name)
            if prop is None:
                message = f'Property "{name}" does not exist'
                problems.append(_problem(name, "PROPERTY_DOESNT_EXIST", message))
            elif prop.read_only and name != "hs_timestamp":
                message = f'"{name}" is a read only property; its value cannot be set.'
                problems.append(_problem(name, "READ_ONLY_VALUE", message))
            elif prop.type == "enumeration" and prop.options and value not in (None, "") and not _is_owner(prop):
                if str(value) not in prop.options:
                    allowed = ", ".join(prop.options)
                    message = f"{value} was not one of the allowed options: [{allowed}]"
                    problems.append(_problem(name, "INVALID_OPTION", message))
            elif prop.type == "number" and value not in (None, "") and not _is_number(value):
                problems.append(_problem(name, "INVALID_FLOAT", f"{value} was not a valid number."))
        return problems


def _is_owner(prop: PropDef) -> bool:
    return prop.name == "hubspot_owner_id"


def _is_number(value: Any) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


def _problem(name: str, error: str, message: str) -> dict[str, Any]:
    return {"isValid": False, "message": message, "error": error, "name": name, "localizedErrorMessage": message}
