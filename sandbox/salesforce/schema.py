"""The emulated org's objects and fields: what describe reports, what SOQL may name, what writes may set.

Field names are the SQL column names of the emulator's tables (``sf_<Object>``). Custom fields created
through the Tooling API are added at run time and dropped from view again by ``Schema.reset``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

FieldType = Literal[
    "id", "string", "textarea", "email", "url", "phone", "picklist", "boolean", "int", "double",
    "currency", "percent", "date", "datetime", "reference",
]  # fmt: skip

TEXT_TYPES: frozenset[str] = frozenset({"string", "textarea", "email", "url", "phone", "picklist"})
NUMBER_TYPES: frozenset[str] = frozenset({"int", "double", "currency", "percent"})

# Salesforce's SOAP type for each field type (describe reports both).
_SOAP_TYPES = {
    "id": "tns:ID", "reference": "tns:ID", "boolean": "xsd:boolean", "int": "xsd:int", "double": "xsd:double",
    "currency": "xsd:double", "percent": "xsd:double", "date": "xsd:date", "datetime": "xsd:dateTime",
}  # fmt: skip


@dataclass(frozen=True)
class Field:
    """One field of an sObject, with the attributes describe reports."""

    name: str
    type: FieldType
    label: str = ""
    custom: bool = False
    createable: bool = True
    updateable: bool = True
    nillable: bool = True
    length: int = 0  # characters, text types only
    precision: int = 0  # total digits, number types only
    scale: int = 0  # digits after the point
    picklist: tuple[str, ...] = ()
    reference_to: tuple[str, ...] = ()
    relationship_name: str | None = None
    required_on_create: bool = False

    @property
    def is_text(self) -> bool:
        return self.type in TEXT_TYPES

    def describe(self) -> dict[str, Any]:
        """The field as ``sobjects/{obj}/describe`` lists it."""
        return {
            "name": self.name,
            "label": self.label or self.name,
            "type": self.type,
            "soapType": _SOAP_TYPES.get(self.type, "xsd:string"),
            "custom": self.custom,
            "createable": self.createable,
            "updateable": self.updateable,
            "nillable": self.nillable,
            "filterable": True,
            "sortable": self.type != "textarea",
            "length": self.length,
            "precision": self.precision,
            "scale": self.scale,
            "digits": 9 if self.type == "int" else 0,
            "defaultedOnCreate": self.name in ("Id", "CreatedDate", "LastModifiedDate", "SystemModstamp", "IsDeleted"),
            "externalId": False,
            "idLookup": self.name == "Id",
            "unique": False,
            "calculated": False,
            "picklistValues": [
                {"active": True, "defaultValue": False, "label": v, "validFor": None, "value": v} for v in self.picklist
            ],
            "referenceTo": list(self.reference_to),
            "relationshipName": self.relationship_name,
            "polymorphicForeignKey": len(self.reference_to) > 1,
        }


@dataclass
class SObject:
    """An object of the org: its label, key prefix and fields (standard first, then custom ones)."""

    name: str
    label: str
    key_prefix: str
    fields: dict[str, Field]
    base_fields: frozenset[str] = frozenset()
    _by_lower: dict[str, Field] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.base_fields = frozenset(self.fields)
        self._reindex()

    def _reindex(self) -> None:
        self._by_lower = {name.lower(): f for name, f in self.fields.items()}

    @property
    def table(self) -> str:
        return f"sf_{self.name}"

    @property
    def custom(self) -> bool:
        return self.name.endswith("__c")

    def field(self, name: str) -> Field | None:
        """The field named ``name`` (case-insensitive, as SOQL and the REST API treat names)."""
        return self._by_lower.get(name.lower())

    def relationship(self, name: str) -> Field | None:
        """The reference field whose relationship is called ``name`` (``Owner`` -> ``OwnerId``)."""
        lowered = name.lower()
        for f in self.fields.values():
            if f.relationship_name is not None and f.relationship_name.lower() == lowered:
                return f
        return None

    def add_field(self, new: Field) -> None:
        self.fields[new.name] = new
        self._reindex()

    def drop_custom_fields(self) -> None:
        self.fields = {name: f for name, f in self.fields.items() if name in self.base_fields}
        self._reindex()

    def describe(self, base_path: str) -> dict[str, Any]:
        """The object as ``sobjects/{obj}/describe`` returns it; ``base_path`` is ``/services/data/vXX.X``."""
        return {
            **self.summary(base_path),
            "fields": [f.describe() for f in self.fields.values()],
            "childRelationships": [],
            "recordTypeInfos": [],
        }

    def summary(self, base_path: str) -> dict[str, Any]:
        """The object as the global describe (``sobjects/``) lists it."""
        url = f"{base_path}/sobjects/{self.name}"
        return {
            "name": self.name,
            "label": self.label,
            "labelPlural": self.label + "s",
            "keyPrefix": self.key_prefix,
            "custom": self.custom,
            "createable": self.name != "User",
            "updateable": True,
            "deletable": self.name != "User",
            "queryable": True,
            "retrieveable": True,
            "searchable": True,
            "layoutable": True,
            "urls": {"sobject": url, "describe": f"{url}/describe", "rowTemplate": f"{url}/{{ID}}"},
        }


def _id() -> Field:
    return Field("Id", "id", "Record ID", createable=False, updateable=False, nillable=False, length=18)


def _text(name: str, label: str = "", length: int = 255, **kw: Any) -> Field:
    return Field(name, "string", label or name, length=length, **kw)


def _long_text(name: str, label: str = "") -> Field:
    return Field(name, "textarea", label or name, length=32000)


def _ref(name: str, to: tuple[str, ...], relationship: str, **kw: Any) -> Field:
    return Field(name, "reference", name, length=18, reference_to=to, relationship_name=relationship, **kw)


def _bool(name: str, **kw: Any) -> Field:
    return Field(name, "boolean", name, nillable=False, **kw)


def _pick(name: str, values: tuple[str, ...], **kw: Any) -> Field:
    return Field(name, "picklist", name, length=255, picklist=values, **kw)


def _num(name: str, kind: FieldType = "double", precision: int = 18, scale: int = 2, **kw: Any) -> Field:
    return Field(name, kind, name, precision=precision, scale=scale, **kw)


def _system() -> list[Field]:
    read_only: dict[str, Any] = {"createable": False, "updateable": False, "nillable": False}
    return [
        Field("CreatedDate", "datetime", "Created Date", **read_only),
        Field("LastModifiedDate", "datetime", "Last Modified Date", **read_only),
        Field("SystemModstamp", "datetime", "System Modstamp", **read_only),
        _bool("IsDeleted", createable=False, updateable=False),
    ]


def _object(name: str, label: str, prefix: str, fields: list[Field], *, system: bool = True) -> SObject:
    all_fields = [_id(), *fields, *(_system() if system else [])]
    return SObject(name, label, prefix, {f.name: f for f in all_fields})


ACCOUNT_TYPES = ("Prospect", "Customer - Direct", "Customer - Channel", "Former Customer", "Other")
OPPORTUNITY_TYPES = ("New Business", "Renewal", "Expansion", "Existing Customer - Upgrade")
OPPORTUNITY_STAGES = (
    "Prospecting", "Qualification", "Needs Analysis", "Proposal", "Negotiation", "Closed Won", "Closed Lost",
)  # fmt: skip
TASK_STATUSES = ("Not Started", "In Progress", "Completed", "Waiting on someone else", "Deferred")
CASE_PRIORITIES = ("Critical", "High", "Medium", "Low")
CASE_STATUSES = ("New", "Working", "On Hold", "Escalated", "Closed")
DIRECTIONS = ("Inbound", "Outbound")


def standard_objects() -> list[SObject]:
    """A fresh copy of the org's objects as provisioned (before any Tooling API change)."""
    owner = _ref("OwnerId", ("User",), "Owner")
    read_only: dict[str, Any] = {"createable": False, "updateable": False}
    return [
        _object("Account", "Account", "001", [
            _text("Name", "Account Name", nillable=False, required_on_create=True),
            Field("Website", "url", "Website", length=255),
            _pick("Industry", ("Technology", "Finance", "Healthcare", "Manufacturing", "Retail", "Education", "Other")),
            _num("NumberOfEmployees", "int", precision=8, scale=0),
            _num("AnnualRevenue", "currency"),
            _pick("Type", ACCOUNT_TYPES),
            owner,
            _long_text("Description", "Account Description"),
            _pick("Tier__c", ("Enterprise", "Mid-Market", "SMB"), custom=True),
            _num("ARR__c", "currency", custom=True),
            Field("Renewal_Date__c", "date", "Renewal Date", custom=True),
            _num("Usage_Score__c", "percent", precision=5, scale=1, custom=True),
        ]),
        _object("Contact", "Contact", "003", [
            _ref("AccountId", ("Account",), "Account"),
            _text("FirstName", "First Name", length=40),
            _text("LastName", "Last Name", length=80, nillable=False, required_on_create=True),
            _text("Name", "Full Name", length=121, **read_only),
            Field("Email", "email", "Email", length=80),
            _text("Title", "Title", length=128),
            _text("Department", "Department", length=80),
            Field("Phone", "phone", "Business Phone", length=40),
            owner,
            _bool("No_Longer_At_Company__c", custom=True),
        ]),
        _object("User", "User", "005", [
            _text("Username", "Username", length=80, **read_only),
            _text("FirstName", "First Name", length=40),
            _text("LastName", "Last Name", length=80),
            _text("Name", "Full Name", length=121, **read_only),
            Field("Email", "email", "Email", length=128),
            _text("Title", "Title", length=80),
            _bool("IsActive"),
        ]),
        _object("Opportunity", "Opportunity", "006", [
            _ref("AccountId", ("Account",), "Account"),
            _text("Name", "Opportunity Name", length=120, nillable=False, required_on_create=True),
            _pick("Type", OPPORTUNITY_TYPES),
            _pick("StageName", OPPORTUNITY_STAGES, nillable=False, required_on_create=True),
            _bool("IsClosed", **read_only),
            _bool("IsWon", **read_only),
            Field("CloseDate", "date", "Close Date", nillable=False, required_on_create=True),
            _num("Amount", "currency"),
            _ref("RecordTypeId", ("RecordType",), "RecordType"),
            owner,
        ]),
        _object("RecordType", "Record Type", "012", [
            _text("Name", "Record Type Name", length=80, nillable=False, required_on_create=True),
            _text("DeveloperName", "Record Type Name", length=80),
            _text("SobjectType", "SObject Type Name", length=40),
            _bool("IsActive"),
        ]),
        _object("OpportunityContactRole", "Contact Role", "00K", [
            _ref("OpportunityId", ("Opportunity",), "Opportunity", nillable=False, required_on_create=True),
            _ref("ContactId", ("Contact",), "Contact", nillable=False, required_on_create=True),
            _pick("Role", ("Decision Maker", "Economic Buyer", "Influencer", "Evaluator", "Other")),
            _bool("IsPrimary"),
        ]),
        _object("Case", "Case", "500", [
            _text("CaseNumber", "Case Number", length=30, **read_only),
            _ref("AccountId", ("Account",), "Account"),
            _ref("ContactId", ("Contact",), "Contact"),
            _text("Subject", "Subject"),
            _pick("Priority", CASE_PRIORITIES),
            _pick("Status", CASE_STATUSES),
            _bool("IsClosed", **read_only),
            _bool("IsEscalated"),
            Field("ClosedDate", "datetime", "Closed Date", **read_only),
            owner,
        ]),
        _object("Task", "Task", "00T", [
            _text("Subject", "Subject"),
            _pick("TaskSubtype", ("Task", "Email", "List Email", "Cadence", "Call", "LinkedIn")),
            _pick("Type", ("Call", "Email", "Meeting", "Other")),
            Field("ActivityDate", "date", "Due Date Only"),
            Field("CompletedDateTime", "datetime", "Completed Date/Time", **read_only),
            _ref("WhatId", ("Account", "Opportunity"), "What"),
            _ref("WhoId", ("Contact",), "Who"),
            _ref("AccountId", ("Account",), "Account", **read_only),
            owner,
            _pick("Status", TASK_STATUSES, nillable=False),
            _pick("Priority", ("High", "Normal", "Low"), nillable=False),
            _bool("IsClosed", **read_only),
            _long_text("Description", "Comments"),
            _num("CallDurationInSeconds", "int", precision=8, scale=0),
            _pick("CallType", (*DIRECTIONS[:1], "Internal", *DIRECTIONS[1:])),
            _pick("Direction__c", DIRECTIONS, custom=True),
        ]),
        _object("Event", "Event", "00U", [
            _text("Subject", "Subject"),
            Field("StartDateTime", "datetime", "Start Date Time"),
            Field("EndDateTime", "datetime", "End Date Time"),
            Field("ActivityDateTime", "datetime", "Due Date Time"),
            Field("ActivityDate", "date", "Due Date Only"),
            _num("DurationInMinutes", "int", precision=8, scale=0),
            _ref("WhatId", ("Account", "Opportunity"), "What"),
            _ref("WhoId", ("Contact",), "Who"),
            _ref("AccountId", ("Account",), "Account", **read_only),
            owner,
            _long_text("Description", "Description"),
            _pick("Direction__c", DIRECTIONS, custom=True),
        ]),
        _object("TaskRelation", "Task Relation", "0RT", [
            _ref("TaskId", ("Task",), "Task", nillable=False, required_on_create=True),
            _ref("RelationId", ("Contact",), "Relation", nillable=False, required_on_create=True),
            _ref("AccountId", ("Account",), "Account", **read_only),
            _bool("IsWhat"),
        ]),
        _object("EventRelation", "Event Relation", "0RE", [
            _ref("EventId", ("Event",), "Event", nillable=False, required_on_create=True),
            _ref("RelationId", ("Contact",), "Relation", nillable=False, required_on_create=True),
            _ref("AccountId", ("Account",), "Account", **read_only),
            _bool("IsWhat"),
            _bool("IsInvitee"),
            _pick("Status", ("New", "Accepted", "Declined")),
        ]),
    ]


def tooling_objects() -> list[SObject]:
    """The Tooling API objects the emulator can query (``tooling/query``)."""
    return [
        _object("CustomField", "Custom Field", "00N", [
            _text("DeveloperName", "Developer Name", length=40),
            _text("FullName", "Full Name"),
            _text("TableEnumOrId", "Table Enum or ID", length=40),
            _text("DataType", "Data Type", length=40),
            _text("Label", "Label"),
        ]),
    ]


class Schema:
    """The objects of one API surface (REST data or Tooling), looked up case-insensitively."""

    def __init__(self, objects: list[SObject]) -> None:
        self.objects = {o.name: o for o in objects}
        self._by_lower = {o.name.lower(): o for o in objects}
        self._by_prefix = {o.key_prefix: o for o in objects}
        self._revoked: set[str] = set()

    def get(self, name: str) -> SObject | None:
        """The object the API user may use by that name; None when there is none or access was revoked."""
        lowered = name.lower()
        return None if lowered in self._revoked else self._by_lower.get(lowered)

    def revoke(self, name: str) -> None:
        """Hide the object from ``get`` (what the API user sees) until ``reset``; ``objects`` still holds it."""
        self._revoked.add(name.lower())

    def by_prefix(self, record_id: str) -> SObject | None:
        """The object an Id belongs to, from its three-character key prefix."""
        return self._by_prefix.get(record_id[:3])

    def reset(self) -> None:
        self._revoked.clear()
        for o in self.objects.values():
            o.drop_custom_fields()

    def describe_global(self, base_path: str) -> dict[str, Any]:
        return {
            "encoding": "UTF-8",
            "maxBatchSize": 200,
            "sobjects": [o.summary(base_path) for o in self.objects.values()],
        }
