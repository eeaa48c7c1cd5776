"""Salesforce streams: one SOQL stream per object, incremental on SystemModstamp, deletes through queryAll.

The first run (no cursor) backfills: through Bulk API 2.0 when the object holds more than
``limits.salesforce.bulk_threshold`` records, through REST query paging below. Later runs read
``SystemModstamp >= cursor - lag`` in ascending order, deleted rows included.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

from connectors.base import Stream
from connectors.fields import RecordMapper
from connectors.salesforce.client import SalesforceClient
from connectors.salesforce.mapping import OBJECTS, ObjectSpec, deal_kind_path
from connectors.salesforce.soql import identifier, literal_list, soql_datetime
from core.config.runtime import LimitsConfig
from core.config.sources import CustomObjectConfig, SalesforceSourceConfig, StreamConfig
from core.errors import ApiError
from core.records import RECORD_TYPES, Record, RejectedRecord

log = logging.getLogger(__name__)
SOURCE = "salesforce"


_NUMBER_TYPES = {"double": float, "currency": float, "percent": float, "int": int}


def _typed(value: str, field_type: str | None) -> Any:
    """A CSV cell as REST would type it: booleans and numbers by the field's describe type ('' is null)."""
    if value == "":
        return None
    if field_type == "boolean":
        return value.lower() == "true"
    convert = _NUMBER_TYPES.get(field_type or "")
    if convert is not None:
        try:
            return convert(float(value)) if convert is int else float(value)
        except ValueError:
            return value  # left for validation to reject with the field's name
    return value


def _nest(row: Mapping[str, str], types: Mapping[str, str]) -> dict[str, Any]:
    """A Bulk 2.0 CSV row (``Owner.Email`` columns) as the nested, typed dict REST would return."""
    out: dict[str, Any] = {}
    for key, value in row.items():
        target = out
        parts = key.split(".")
        for part in parts[:-1]:
            target = target.setdefault(part, {})
        target[parts[-1]] = _typed(value, types.get(key.lower()))
    return out


class SoqlStream:
    """One sObject read into one canonical table."""

    primary_key = "Id"
    cursor_field = "SystemModstamp"

    def __init__(
        self,
        *,
        name: str,
        sobject: str,
        mapper: RecordMapper,
        client: SalesforceClient,
        limits: LimitsConfig,
        also_select: Sequence[str] = (),
        deletable: bool = True,
        contact_roles: bool = False,
    ) -> None:
        self.name = name
        self.entity = mapper.record_type.entity
        self.sobject = identifier(sobject, what="object")
        self.mapper = mapper
        self.client = client
        self.limits = limits
        self.deletable = deletable
        self.contact_roles = contact_roles
        self.fields = [identifier(f) for f in dict.fromkeys(["Id", *mapper.source_fields(), *also_select,
                                                               self.cursor_field])]
        self.backfill_mode: str | None = None  # "bulk" or "rest", set by the last read without a cursor
        self.roles_read: tuple[int, str] = (0, "rest")  # contact roles the last read listed, and how

    def soql(self, since: datetime | None) -> str:
        where = f" WHERE {self.cursor_field} >= {soql_datetime(since)}" if since is not None else ""
        return f"SELECT {', '.join(self.fields)} FROM {self.sobject}{where} ORDER BY {self.cursor_field} ASC, Id ASC"

    def _pages(self, since: datetime | None) -> Iterator[list[dict[str, Any]]]:
        soql = self.soql(since)
        threshold = self.limits.salesforce.bulk_threshold
        if since is None and threshold > 0:
            total = self.client.count(self.sobject)
            if total > threshold:
                self.backfill_mode = "bulk"
                log.info("%s: backfilling %d records through Bulk API 2.0", self.name, total,
                         extra={"source": SOURCE, "stream": self.name})
                describe = self.client.describe(self.sobject)
                types = {str(f["name"]).lower(): str(f["type"]) for f in describe.get("fields", [])}
                for rows in self.client.bulk2_query(soql, include_deleted=self.deletable):
                    yield [_nest(r, types) for r in rows]
                return
        if since is None:
            self.backfill_mode = "rest"
        yield from self.client.query_pages(soql, include_deleted=self.deletable)

    def _contacts_by_deal(self, ids: Sequence[str]) -> dict[str, list[str]]:
        """Contact ids of the given opportunities, 500 ids per query (the fallback for deals changed mid-run)."""
        out: dict[str, list[str]] = {}
        for start in range(0, len(ids), 500):
            soql = (
                "SELECT OpportunityId, ContactId FROM OpportunityContactRole "
                f"WHERE OpportunityId IN {literal_list(ids[start : start + 500])} ORDER BY OpportunityId, Id"
            )
            for row in self.client.query_iter(soql):
                out.setdefault(str(row["OpportunityId"]), []).append(str(row["ContactId"]))
        return out

    def _all_contact_roles(self, since: datetime | None) -> _ContactRoles:
        """Every contact role of the opportunities changed since ``since`` (all on a backfill): one paged query,
        through Bulk API 2.0 on a backfill of more than ``bulk_threshold`` roles.

        Each role carries its opportunity's SystemModstamp, so a deal changed after this read is recognised and
        its roles read again (``_ContactRoles.stale``) instead of being written with old contacts.
        """
        where = f" WHERE Opportunity.{self.cursor_field} >= {soql_datetime(since)}" if since is not None else ""
        soql = (f"SELECT OpportunityId, ContactId, Opportunity.{self.cursor_field} FROM OpportunityContactRole"
                f"{where} ORDER BY OpportunityId, Id")
        threshold = self.limits.salesforce.bulk_threshold
        rows: Iterator[Mapping[str, Any]]
        mode = "rest"
        if since is None and threshold > 0 and self.client.count("OpportunityContactRole") > threshold:
            mode = "bulk"
            rows = (_nest(r, {}) for page in self.client.bulk2_query(soql, include_deleted=False) for r in page)
        else:
            rows = self.client.query_iter(soql)
        roles = _ContactRoles()
        for row in rows:
            parent = row.get("Opportunity") or {}
            roles.add(str(row["OpportunityId"]), str(row["ContactId"]), parent.get(self.cursor_field))
        self.roles_read = (roles.rows, mode)
        return roles

    def read(self, since: datetime | None) -> Iterator[Record | RejectedRecord]:
        if not self.contact_roles:
            for page in self._pages(since):
                yield from (self.mapper.map(raw) for raw in page)
            return
        roles = self._all_contact_roles(since)
        for page in self._pages(since):
            stale = [str(r["Id"]) for r in page if r.get("Id") and roles.stale(str(r["Id"]), r.get(self.cursor_field))]
            reread = self._contacts_by_deal(stale) if stale else {}
            for raw in page:
                deal_id = str(raw.get("Id"))
                contacts = reread.get(deal_id, []) if deal_id in stale else roles.contacts.get(deal_id, [])
                yield self.mapper.map({**raw, "_contact_ids": tuple(contacts)})


class _ContactRoles:
    """Opportunity id -> contact ids, with the opportunity SystemModstamp each role was read at."""

    def __init__(self) -> None:
        self.contacts: dict[str, list[str]] = {}
        self._stamps: dict[str, datetime] = {}
        self._newest: datetime | None = None
        self.rows = 0

    def add(self, deal_id: str, contact_id: str, stamp: str | None) -> None:
        self.rows += 1
        self.contacts.setdefault(deal_id, []).append(contact_id)
        if stamp:
            moment = datetime.fromisoformat(stamp)
            self._stamps[deal_id] = moment
            self._newest = moment if self._newest is None or moment > self._newest else self._newest

    def stale(self, deal_id: str, stamp: str | None) -> bool:
        """True when the deal changed after its roles were read (or may have gained roles since)."""
        if not stamp:
            return False
        moment = datetime.fromisoformat(stamp)
        known = self._stamps.get(deal_id)
        if known is not None:
            return moment != known
        return self._newest is not None and moment > self._newest


def _deal_contacts(values: dict[str, Any], raw: Mapping[str, Any]) -> dict[str, Any]:
    values["contact_external_ids"] = tuple(raw.get("_contact_ids") or ())
    return values


class SalesforceConnector:
    """Account, Contact, User, Opportunity (+ contact roles), Case, Task, Event and custom objects from YAML."""

    name = SOURCE

    def __init__(self, client: SalesforceClient, config: SalesforceSourceConfig, limits: LimitsConfig) -> None:
        self.client = client
        self.stats = client.stats
        self.config = config
        self.limits = limits
        self._streams = [self._standard(spec) for spec in OBJECTS.values() if self._enabled(spec.stream)]
        self._streams += [self._custom(c) for c in config.custom_objects]

    def _enabled(self, stream: str) -> bool:
        override = self.config.streams.get(stream)
        return override is None or override.enabled

    def _standard(self, spec: ObjectSpec) -> SoqlStream:
        override = self.config.streams.get(spec.stream) or StreamConfig()
        fields = {**spec.fields, **override.fields}
        if spec.stream == "opportunities":
            fields.setdefault("kind", deal_kind_path(self.config.deal_kind))
        base_finish = spec.finish(self.config.deal_kind)
        contact_roles = spec.stream == "opportunities" and self.config.contact_roles

        def finish(values: dict[str, Any], raw: Mapping[str, Any]) -> dict[str, Any]:
            if base_finish is not None:
                values = base_finish(values, raw)
            return _deal_contacts(values, raw) if contact_roles else values

        mapper = RecordMapper(
            source=SOURCE,
            stream=spec.stream,
            record_type=spec.record_type,
            fields=fields,
            extra_fields=override.extra_fields,
            finish=finish,
        )
        return SoqlStream(
            name=spec.stream,
            sobject=override.object or spec.sobject,
            mapper=mapper,
            client=self.client,
            limits=self.limits,
            also_select=spec.also_select,
            deletable=spec.deletable,
            contact_roles=contact_roles,
        )

    def _custom(self, config: CustomObjectConfig) -> SoqlStream:
        fields = {"external_id": "Id", "source_created_at": "CreatedDate", "source_updated_at": "SystemModstamp",
                  "is_deleted": "IsDeleted", **config.fields}
        mapper = RecordMapper(
            source=SOURCE,
            stream=config.name,
            record_type=RECORD_TYPES[config.entity],
            fields=fields,
            extra_fields=config.extra_fields,
        )
        return SoqlStream(name=config.name, sobject=config.object, mapper=mapper, client=self.client,
                          limits=self.limits)

    def check(self) -> None:
        """One call to ``/limits``: proves the token and instance work and reads the daily API budget."""
        self.client.limits()

    def streams(self) -> list[Stream]:
        return list(self._streams)

    def check_fields(self) -> list[str]:
        """Every mapped field that does not exist or is not readable, as ``Object.Field: why``."""
        problems: list[str] = []
        described: dict[str, dict[str, Any] | None] = {}
        for stream in self._streams:
            if stream.sobject not in described:
                try:
                    described[stream.sobject] = self.client.describe(stream.sobject)
                except ApiError as exc:
                    described[stream.sobject] = None
                    problems.append(f"{stream.sobject}: object cannot be described ({exc.user_message})")
            describe = described[stream.sobject]
            if describe is None:
                continue
            by_name = {f["name"].lower(): f for f in describe.get("fields", [])}
            relationships = {str(f.get("relationshipName") or "").lower() for f in describe.get("fields", [])}
            for path in stream.fields:
                head = path.split(".", 1)[0].lower()
                if "." in path:
                    if head not in relationships:
                        problems.append(f"{stream.sobject}.{path}: no relationship {path.split('.', 1)[0]!r}")
                elif head not in by_name:
                    problems.append(f"{stream.sobject}.{path}: no such field (stream {stream.name})")
        return problems
