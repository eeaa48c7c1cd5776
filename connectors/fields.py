"""Raw source rows -> canonical records, by a field map; a row that cannot be mapped becomes a RejectedRecord.

``RecordMapper`` reads each canonical field from its source path (``Owner.Email``, ``person.email``),
refuses text that cannot be stored (broken unicode, NUL bytes), lets an entity-specific ``finish``
derive values (domain normalization, seniority, deal kind...), and validates with the record's pydantic
model. A failure names the source field and the value, e.g. ``Amount: not a number ('12,5x')``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import date, datetime
from typing import Any

from pydantic import ValidationError

from core.domains import normalize_domain
from core.records import CanonicalRecord, Record, RejectedRecord
from core.titles import department_of, seniority_of

Finish = Callable[[dict[str, Any], Mapping[str, Any]], dict[str, Any]]


def get_path(raw: Mapping[str, Any], path: str) -> Any:
    """The value at a dotted path (``Owner.Email``); None when any step is missing or null."""
    value: Any = raw
    for part in path.split("."):
        if not isinstance(value, Mapping):
            return None
        if part in value:
            value = value[part]
        else:
            lowered = {str(k).lower(): v for k, v in value.items()}
            value = lowered.get(part.lower())
        if value is None:
            return None
    return value


def text_problem(value: str) -> str | None:
    """Why a text cannot be stored, or None: lone surrogates (broken unicode) and NUL bytes."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "broken unicode (an unpaired surrogate)"
    if "\x00" in value:
        return "contains a NUL character"
    return None


def _json_safe(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


_MESSAGES = {
    "float_parsing": "not a number",
    "int_parsing": "not a whole number",
    "bool_parsing": "not a true/false value",
    "datetime_from_date_parsing": "not a date-time",
    "datetime_parsing": "not a date-time",
    "date_from_datetime_parsing": "not a date",
    "date_parsing": "not a date",
    "string_too_long": "too long",
    "string_type": "not text",
    "missing": "missing",
    "enum": "not an allowed value",
}


class RecordMapper:
    """Maps raw rows of one stream to one canonical record type."""

    def __init__(
        self,
        *,
        source: str,
        stream: str,
        record_type: type[CanonicalRecord],
        fields: Mapping[str, str],
        extra_fields: Mapping[str, str] | None = None,
        finish: Finish | None = None,
        constants: Mapping[str, Any] | None = None,
    ) -> None:
        unknown = set(fields) - set(record_type.model_fields)
        if unknown:
            raise ValueError(f"{stream}: unknown canonical field(s) {', '.join(sorted(unknown))}")
        self.source = source
        self.stream = stream
        self.record_type = record_type
        self.fields = dict(fields)
        self.extra_fields = dict(extra_fields or {})
        self.finish = finish
        self.constants = dict(constants or {})

    def source_fields(self) -> list[str]:
        """Every source path this mapper reads (for SELECT lists and property lists)."""
        return list(dict.fromkeys([*self.fields.values(), *self.extra_fields.values()]))

    def _reject(self, external_id: Any, reason: str) -> RejectedRecord:
        ext = None if external_id is None else str(external_id)[:255]
        return RejectedRecord(source=self.source, stream=self.stream, external_id=ext, reason=reason)

    def map(self, raw: Mapping[str, Any]) -> Record | RejectedRecord:
        values: dict[str, Any] = dict(self.constants)
        for canonical, path in self.fields.items():
            value = get_path(raw, path)
            if isinstance(value, str):
                problem = text_problem(value)
                if problem:
                    return self._reject(get_path(raw, self.fields.get("external_id", "id")), f"{path}: {problem}")
                if not value.strip():
                    value = None
            if value is not None or canonical not in values:
                values[canonical] = value
        external_id = values.get("external_id")
        if external_id is None or str(external_id).strip() == "":
            return self._reject(None, f"{self.fields.get('external_id', 'id')}: missing record id")
        values["external_id"] = str(external_id)
        extra = {}
        for name, path in self.extra_fields.items():
            value = get_path(raw, path)
            if isinstance(value, str) and text_problem(value):
                return self._reject(external_id, f"{path}: {text_problem(value)}")
            extra[name] = _json_safe(value)
        try:
            if self.finish is not None:
                values = self.finish(values, raw)
        except (ValueError, TypeError) as exc:
            return self._reject(external_id, str(exc))
        values = {k: v for k, v in values.items() if v is not None}
        values["source"] = self.source
        if extra:
            values["extra"] = extra
        try:
            return self.record_type.model_validate(values)  # type: ignore[return-value]
        except ValidationError as exc:
            return self._reject(external_id, self._reason(exc))

    def _reason(self, exc: ValidationError) -> str:
        reasons = []
        for error in exc.errors()[:3]:
            loc = str(error["loc"][0]) if error["loc"] else ""
            where = self.fields.get(loc, loc)
            what = _MESSAGES.get(error["type"], error["msg"])
            shown = error.get("input")
            long_text = isinstance(shown, str) and len(shown) > 40
            shown_text = f"{len(str(shown))} characters" if long_text else repr(shown)
            reasons.append(f"{where}: {what} ({shown_text})")
        return "; ".join(reasons)


def whole_number(value: Any) -> Any:
    """``"120.0"`` -> 120; a value that is no number is left for validation to reject with its field name."""
    try:
        return None if value is None else int(float(value))
    except (TypeError, ValueError):
        return value


def tier_of(value: Any) -> str | None:
    """``Mid-Market`` / ``mid market`` / ``MID_MARKET`` -> ``mid_market``."""
    if value is None:
        return None
    return "_".join(str(value).strip().lower().replace("-", " ").split()) or None


def finish_account(values: dict[str, Any], domain: Any) -> dict[str, Any]:
    """Normalize a mapped account the same way for every CRM: domain, tier, employee count."""
    values["domain"] = normalize_domain(domain)
    values["tier"] = tier_of(values.get("tier"))
    values["employees"] = whole_number(values.get("employees"))
    return values


def finish_contact(values: dict[str, Any]) -> dict[str, Any]:
    """Normalize a mapped contact the same way for every CRM: lowercase email; seniority and department by title."""
    if values.get("email"):
        values["email"] = str(values["email"]).strip().lower()
    values["seniority"] = seniority_of(values.get("title"))
    if not values.get("department"):
        values["department"] = department_of(values.get("title"))
    return values
