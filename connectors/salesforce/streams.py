"""Salesforce streams: one SOQL stream per object, incremental on SystemModstamp, deletes through queryAll.

The first run (no cursor) backfills: through Bulk API 2.0 when the object holds more than
``limits.salesforce.bulk_threshold`` records, through REST query paging below. The counts and the field
types a Bulk backfill needs come from the connector's ``BackfillPreflight``: a few calls per run, not per
object. Later runs read ``SystemModstamp >= cursor - lag`` in ascending order, deleted rows included.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any, TypeVar

from connectors.base import Stream
from connectors.fields import RecordMapper
from connectors.salesforce.client import SalesforceClient
from connectors.salesforce.mapping import OBJECTS, ObjectSpec, deal_kind_path
from connectors.salesforce.soql import identifier, literal_list, soql_datetime
from core.config.runtime import LimitsConfig
from core.config.sources import CustomObjectConfig, SalesforceSourceConfig, StreamConfig
from core.errors import ApiError, AuthError, BudgetExhaustedError, FatalApiError
from core.records import RECORD_TYPES, Record, RejectedRecord

log = logging.getLogger(__name__)
SOURCE = "salesforce"
ROLES = "OpportunityContactRole"
T = TypeVar("T")


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


class BackfillPreflight:
    """What one connector run asks Salesforce once, for every object that may backfill in it, instead of per object:

    - the record counts that choose Bulk API 2.0 or REST: one ``limits/recordCount`` call, asked on the first
      backfilling read, for the objects of every stream not already read with a cursor in this run. Its counts are
      approximate (a cached snapshot); an object it leaves out is counted with ``SELECT COUNT()``.
    - the field types that turn Bulk CSV cells into REST's JSON values: asked when the first object goes Bulk, for
      it and every other object above the threshold, through Composite (``describe_many``: one call per 25).

    A run is one read of each stream: a stream read a second time starts a new run, which asks again.
    ``calls`` holds, per stream, the preflight calls made while that stream was reading (retries included).
    """

    def __init__(self, client: SalesforceClient, threshold: int) -> None:
        self.client = client
        self.threshold = threshold
        self._counted: dict[str, tuple[str, ...]] = {}  # stream -> objects whose counts it asks for
        self._typed: dict[str, str] = {}  # stream -> the object whose field types its Bulk backfill needs
        self._new_run()

    def _new_run(self) -> None:
        self._started: set[str] = set()
        self._incremental: set[str] = set()
        self._current = ""
        self._counts: dict[str, int] | None = None  # lower-case object -> count
        self._types: dict[str, dict[str, str] | ApiError] = {}  # lower-case object -> field name -> type
        self.calls: dict[str, int] = {}

    def register(self, stream: str, sobject: str, *, also_counted: Sequence[str] = ()) -> None:
        self._counted[stream] = (sobject, *also_counted)
        self._typed[stream] = sobject

    def start(self, stream: str, *, backfill: bool) -> None:
        """A stream begins to read (with a cursor unless ``backfill``)."""
        if stream in self._started:
            self._new_run()
        self._started.add(stream)
        self._current = stream
        if not backfill:
            self._incremental.add(stream)

    def _backfilling(self) -> list[str]:
        return [s for s in self._counted if s not in self._incremental]

    def _charged(self, call: Callable[[], T]) -> T:
        before = self.client.stats.snapshot(SOURCE).calls
        try:
            return call()
        finally:
            spent = self.client.stats.snapshot(SOURCE).calls - before
            self.calls[self._current] = self.calls.get(self._current, 0) + spent

    def count(self, sobject: str) -> int:
        """The object's record count: recordCount's answer, or ``SELECT COUNT()`` when it did not list the object."""
        if self._counts is None:
            wanted = [o for s in self._backfilling() for o in self._counted[s]]
            self._counts = self._charged(lambda: self._record_counts(wanted or [sobject]))
        key = sobject.lower()
        if key not in self._counts:
            self._counts[key] = self.client.count(sobject)
        return self._counts[key]

    def _record_counts(self, sobjects: list[str]) -> dict[str, int]:
        try:
            return self.client.record_counts(sobjects)
        except (AuthError, BudgetExhaustedError):
            raise
        except FatalApiError as exc:  # e.g. no "View Setup and Configuration" permission: count each object instead
            log.warning("%s: limits/recordCount refused (%s); each backfill counts its object with SELECT COUNT()",
                        self._current, exc.user_message, extra={"source": SOURCE, "stream": self._current})
            return {}

    def goes_bulk(self, sobject: str) -> bool:
        """True when a backfill of ``sobject`` goes through Bulk API 2.0 (more than ``threshold`` records)."""
        return self.threshold > 0 and self.count(sobject) > self.threshold

    def field_types(self, sobject: str) -> dict[str, str]:
        """Lower-case field name -> describe type; the object's describe failure (a FatalApiError naming it) raises."""
        key = sobject.lower()
        if key not in self._types:
            counts = self._counts or {}
            others = [self._typed[s] for s in self._backfilling()
                      if counts.get(self._typed[s].lower(), 0) > self.threshold]
            wanted = [o for o in dict.fromkeys([sobject, *others]) if o.lower() not in self._types]
            described = self._charged(lambda: self.client.describe_many(wanted))
            for name, answer in described.items():
                self._types[name.lower()] = answer if isinstance(answer, ApiError) else {
                    str(f["name"]).lower(): str(f["type"]) for f in answer.get("fields", [])}
        types = self._types[key]
        if isinstance(types, ApiError):
            raise types
        return types


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
        preflight: BackfillPreflight | None = None,
    ) -> None:
        self.name = name
        self.entity = mapper.record_type.entity
        self.sobject = identifier(sobject, what="object")
        self.mapper = mapper
        self.client = client
        self.deletable = deletable
        self.contact_roles = contact_roles
        self.fields = [identifier(f) for f in dict.fromkeys(["Id", *mapper.source_fields(), *also_select,
                                                               self.cursor_field])]
        self.backfill_mode: str | None = None  # "bulk" or "rest", set by the last read without a cursor
        self.roles_read: tuple[int, str] = (0, "rest")  # contact roles the last read listed, and how
        self.preflight = preflight or BackfillPreflight(client, limits.salesforce.bulk_threshold)
        self.preflight.register(name, self.sobject, also_counted=(ROLES,) if contact_roles else ())

    def soql(self, since: datetime | None) -> str:
        where = f" WHERE {self.cursor_field} >= {soql_datetime(since)}" if since is not None else ""
        return f"SELECT {', '.join(self.fields)} FROM {self.sobject}{where} ORDER BY {self.cursor_field} ASC, Id ASC"

    def _pages(self, since: datetime | None) -> Iterator[list[dict[str, Any]]]:
        soql = self.soql(since)
        if since is None and self.preflight.goes_bulk(self.sobject):
            self.backfill_mode = "bulk"
            log.info("%s: backfilling about %d records through Bulk API 2.0", self.name,
                     self.preflight.count(self.sobject), extra={"source": SOURCE, "stream": self.name})
            types = self.preflight.field_types(self.sobject)
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
        soql = (f"SELECT OpportunityId, ContactId, Opportunity.{self.cursor_field} FROM {ROLES}"
                f"{where} ORDER BY OpportunityId, Id")
        rows: Iterator[Mapping[str, Any]]
        mode = "rest"
        if since is None and self.preflight.goes_bulk(ROLES):
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
        self.preflight.start(self.name, backfill=since is None)
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
        self.preflight = BackfillPreflight(client, limits.salesforce.bulk_threshold)
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
            preflight=self.preflight,
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
                          limits=self.limits, preflight=self.preflight)

    def check(self) -> None:
        """One call to ``/limits``: proves the token and instance work and reads the daily API budget."""
        self.client.limits()

    def streams(self) -> list[Stream]:
        return list(self._streams)

    def check_fields(self) -> list[str]:
        """Every mapped field that does not exist or is not readable, as ``Object.Field: why``.

        The objects are described together, 25 to a Composite call (one API call), not one call per object.
        """
        problems: list[str] = []
        names = list(dict.fromkeys(s.sobject for s in self._streams))
        try:
            described = self.client.describe_many(names)
        except ApiError as exc:  # the Composite call itself failed: no object could be described
            described = dict.fromkeys(names, exc)
        for stream in self._streams:
            describe = described[stream.sobject]
            if isinstance(describe, ApiError):
                problem = f"{stream.sobject}: object cannot be described ({describe.user_message})"
                if problem not in problems:  # once per object, however many streams read it
                    problems.append(problem)
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
