"""The CRM search body (filterGroups, sorts, query) compiled to SQL over the emulator's store.

Values compare by the property's type: numbers numerically, datetimes as instants (epoch
milliseconds or ISO strings), dates by day, strings case-insensitively, as HubSpot does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sandbox.hubspot.objects import BODY_PROPERTY, PREVIEW_CHARS, SINGULAR
from sandbox.hubspot.properties import MODIFIED_PROPERTY, PropertyRegistry
from sandbox.ids import HUBSPOT_OFFSETS

MAX_GROUPS = 5
MAX_FILTERS_PER_GROUP = 10
MAX_FILTERS = 25
MAX_LIMIT = 200
MAX_RESULTS = 10_000

QUERY_PROPERTIES = {
    "companies": ("name", "domain", "website"),
    "contacts": ("firstname", "lastname", "email", "phone"),
    "deals": ("dealname",),
    "tickets": ("subject", "content"),
    "calls": ("hs_call_title", "hs_call_body"),
    "emails": ("hs_email_subject", "hs_email_text"),
    "meetings": ("hs_meeting_title", "hs_meeting_body"),
    "notes": ("hs_note_body",),
    "tasks": ("hs_task_subject", "hs_task_body"),
}


class SearchError(Exception):
    """A search body HubSpot would refuse with 400 VALIDATION_ERROR."""


@dataclass(frozen=True)
class CompiledSearch:
    where: str
    params: list[Any]
    order: str


def iso_instant(value: Any) -> str:
    """A filter value (epoch ms, ISO datetime or date) as the store's ``YYYY-MM-DDTHH:MM:SS.mmmZ``."""
    text = str(value).strip()
    if text.lstrip("-").isdigit():
        moment = datetime.fromtimestamp(int(text) / 1000, tz=UTC)
    else:
        try:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise SearchError(f"{value} is not a valid datetime value") from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _day(value: Any) -> str:
    return iso_instant(value)[:10]


def _number(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise SearchError(f"{value} is not a valid number") from None


class SearchCompiler:
    """Turns one object type's search body into a ``CompiledSearch``."""

    def __init__(
        self, object_type: str, registry: PropertyRegistry, associated: Callable[[str, str, list[int]], str]
    ) -> None:
        self.object_type = object_type
        self.registry = registry
        self.associated = associated  # (from_type, to_type, to_ns) -> SQL subquery of from_type ns

    def compile(self, body: dict[str, Any]) -> CompiledSearch:
        groups = body.get("filterGroups") or []
        if len(groups) > MAX_GROUPS:
            raise SearchError(f"Too many filter groups: {len(groups)}. The maximum is {MAX_GROUPS}.")
        total = 0
        clauses: list[str] = []
        params: list[Any] = []
        for group in groups:
            filters = group.get("filters") or []
            total += len(filters)
            if len(filters) > MAX_FILTERS_PER_GROUP:
                raise SearchError(
                    f"Too many filters in a group: {len(filters)}. The maximum is {MAX_FILTERS_PER_GROUP}."
                )
            parts = []
            for f in filters:
                sql, values = self._filter(f)
                parts.append(sql)
                params.extend(values)
            if parts:
                clauses.append("(" + " AND ".join(parts) + ")")
        if total > MAX_FILTERS:
            raise SearchError(f"Too many filters: {total}. The maximum is {MAX_FILTERS}.")
        where = " OR ".join(clauses) if clauses else "1"
        query = body.get("query")
        if query:
            fields = [f"coalesce(lower(json_extract(props, '$.{p}')), '')" for p in QUERY_PROPERTIES[self.object_type]]
            where = f"({where}) AND (" + " OR ".join(f"instr({f}, ?) > 0" for f in fields) + ")"
            params.extend([str(query).lower()] * len(fields))
        return CompiledSearch(where, params, self._order(body.get("sorts") or []))

    def _column(self, name: str) -> tuple[str, str]:
        """(SQL expression, property type) of a property."""
        if name in ("hs_object_id",):
            return f"(n + {HUBSPOT_OFFSETS[self.object_type]})", "number"
        if name in (MODIFIED_PROPERTY[self.object_type], "hs_lastmodifieddate"):
            return "updated_at", "datetime"
        if name == "hs_body_preview" and self.object_type in BODY_PROPERTY:
            return f"substr(json_extract(props, '$.{BODY_PROPERTY[self.object_type]}'), 1, {PREVIEW_CHARS})", "string"
        prop = self.registry.get(self.object_type, name)
        if prop is None:
            raise SearchError(f"Unable to find property {name} for object type {self.object_type}")
        return f"json_extract(props, '$.{name}')", prop.type

    def _filter(self, f: dict[str, Any]) -> tuple[str, list[Any]]:
        name = f.get("propertyName")
        operator = f.get("operator") or "EQ"
        if not name:
            raise SearchError("propertyName is required in every filter")
        if name.startswith("associations."):
            return self._association_filter(name.split(".", 1)[1], operator, f)
        column, kind = self._column(name)
        if operator == "HAS_PROPERTY":
            return f"({column} IS NOT NULL AND {column} != '')", []
        if operator == "NOT_HAS_PROPERTY":
            return f"({column} IS NULL OR {column} = '')", []
        if operator in ("CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN"):
            negate = "NOT " if operator == "NOT_CONTAINS_TOKEN" else ""
            return f"{negate}coalesce(hs_contains_token({column}, ?), 0)", [str(f.get("value", ""))]
        cast = self._cast(kind, column)
        if operator in ("IN", "NOT_IN"):
            values = f.get("values")
            if not isinstance(values, list) or not values:
                raise SearchError(f"{operator} requires a non-empty values list")
            marks = ",".join("?" * len(values))
            sql = f"{cast} IN ({marks})" if operator == "IN" else f"({column} IS NULL OR {cast} NOT IN ({marks}))"
            return sql, [self._value(kind, v) for v in values]
        if "value" not in f or f.get("value") is None:
            raise SearchError(f"{operator} requires a value")
        value = self._value(kind, f["value"])
        if operator == "BETWEEN":
            if f.get("highValue") is None:
                raise SearchError("BETWEEN requires a highValue")
            return f"{cast} BETWEEN ? AND ?", [value, self._value(kind, f["highValue"])]
        ops = {"EQ": "=", "NEQ": "!=", "LT": "<", "LTE": "<=", "GT": ">", "GTE": ">="}
        if operator not in ops:
            raise SearchError(f"Unsupported operator {operator}")
        if operator == "NEQ":
            return f"({column} IS NULL OR {cast} != ?)", [value]
        return f"{cast} {ops[operator]} ?", [value]

    @staticmethod
    def _cast(kind: str, column: str) -> str:
        if kind == "number":
            return f"CAST({column} AS REAL)"
        if kind == "date":
            return f"substr({column}, 1, 10)"
        if kind in ("string", "enumeration", "bool"):
            return f"lower({column})"
        return column

    def _value(self, kind: str, value: Any) -> Any:
        if kind == "number":
            return _number(value)
        if kind == "datetime":
            return iso_instant(value)
        if kind == "date":
            return _day(value)
        return str(value).lower()

    def _association_filter(self, singular: str, operator: str, f: dict[str, Any]) -> tuple[str, list[Any]]:
        to_type = next((t for t, s in SINGULAR.items() if s == singular), None)
        if to_type is None:
            raise SearchError(f"Unknown association type {singular}")
        raw = f.get("values") if operator in ("IN", "NOT_IN") else [f.get("value")]
        if operator not in ("EQ", "IN", "NEQ", "NOT_IN") or not raw:
            raise SearchError(f"Unsupported operator {operator} on associations.{singular}")
        ns = []
        for v in raw:
            try:
                ns.append(int(str(v)) - HUBSPOT_OFFSETS[to_type])
            except ValueError:
                raise SearchError(f"{v} is not a valid object id") from None
        sub = self.associated(self.object_type, to_type, ns)
        negate = "NOT " if operator in ("NEQ", "NOT_IN") else ""
        return f"n {negate}IN ({sub})", []

    def _order(self, sorts: list[Any]) -> str:
        if not sorts:
            return "n ASC"
        if len(sorts) > 1:
            raise SearchError("Only one sort is supported")
        sort = sorts[0]
        if isinstance(sort, str):  # the client sends plain strings too: "name" or "-name"
            name, direction = sort.lstrip("-"), ("DESCENDING" if sort.startswith("-") else "ASCENDING")
        else:
            name, direction = sort.get("propertyName", ""), sort.get("direction", "ASCENDING")
        column, kind = self._column(name)
        direction_sql = "DESC" if str(direction).upper().startswith("DESC") else "ASC"
        return f"{self._cast(kind, column)} {direction_sql}, n {direction_sql}"
