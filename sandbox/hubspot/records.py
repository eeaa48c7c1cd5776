"""CRM v3 object endpoints: list, get, create, update, archive, batch and search, in HubSpot's shapes."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from sandbox.http import SandboxRequest, SandboxResponse
from sandbox.hubspot.base import (
    BATCH_MAX,
    BATCH_TOO_LARGE,
    HISTORY_MAX,
    LIST_MAX,
    REQUIRED_ON_CREATE,
    TYPE_ALIASES,
    ApiError,
    Core,
    validation_error,
)
from sandbox.hubspot.objects import ALL_TYPE_IDS, BODY_PROPERTY, PREVIEW_CHARS, SINGULAR, v3_association_name
from sandbox.hubspot.properties import CREATED_PROPERTY, DEFAULT_READ_PROPERTIES, MODIFIED_PROPERTY
from sandbox.hubspot.search import MAX_LIMIT, MAX_RESULTS, SearchCompiler, SearchError, iso_instant
from sandbox.hubspot.store import Row, hubspot_n
from sandbox.ids import hubspot_id


class ObjectsApi(Core):
    """/crm/v3/objects/{type}: records rendered and written the way hubspot-api-client expects."""

    def _route_objects(
        self, method: str, object_type: str, rest: list[str], request: SandboxRequest
    ) -> SandboxResponse:
        if not rest:
            if method == "GET":
                return self._list(object_type, request)
            if method == "POST":
                return self._create(object_type, self._body(request))
        elif rest == ["search"] and method == "POST":
            return self._search(object_type, self._body(request))
        elif len(rest) == 2 and rest[0] == "batch" and method == "POST":
            return self._batch(object_type, rest[1], self._body(request), request)
        elif len(rest) == 1:
            if method == "GET":
                return self._get(object_type, rest[0], request)
            if method == "PATCH":
                return self._update(object_type, rest[0], self._body(request), request)
            if method == "DELETE":
                row = self._row_or_404(object_type, rest[0], archived=False)
                self.store.set_archived(object_type, row.n, True, self._now())
                return SandboxResponse(204)
        raise self._not_allowed(method, request.path)

    # --- rendering ----------------------------------------------------------------------------------

    def _all_properties(self, object_type: str, row: Row) -> dict[str, Any]:
        props = dict(row.props)
        props["hs_object_id"] = hubspot_id(object_type, row.n)
        props[MODIFIED_PROPERTY[object_type]] = row.updated_at
        props["hs_lastmodifieddate"] = row.updated_at
        props.setdefault(CREATED_PROPERTY[object_type], row.created_at)
        body = BODY_PROPERTY.get(object_type)
        if body is not None:
            text = props.get(body)
            props["hs_body_preview"] = text[:PREVIEW_CHARS] if isinstance(text, str) else None
        return props

    def _selected(self, object_type: str, row: Row, names: list[str] | None) -> dict[str, Any]:
        everything = self._all_properties(object_type, row)
        wanted = list(names) if names else list(DEFAULT_READ_PROPERTIES[object_type])
        always = ("hs_object_id", CREATED_PROPERTY[object_type], MODIFIED_PROPERTY[object_type])
        out: dict[str, Any] = {}
        for name in sorted({*wanted, *always}):
            if name in everything or self.registry.get(object_type, name) is not None:
                out[name] = everything.get(name)
        return out

    def _history(self, object_type: str, row: Row, names: list[str]) -> dict[str, list[dict[str, Any]]]:
        everything = self._all_properties(object_type, row)
        out: dict[str, list[dict[str, Any]]] = {}
        for name in names:
            if name not in everything and self.registry.get(object_type, name) is None:
                continue
            written = self.store.history(object_type, row.n, name)
            if written:
                out[name] = [
                    {"value": v if v is not None else "", "timestamp": ts, "sourceType": src} for v, ts, src in written
                ]
            elif everything.get(name) is not None:
                out[name] = [{"value": everything[name], "timestamp": row.updated_at, "sourceType": "CRM_UI"}]
            else:
                out[name] = []
        return out

    def _record(
        self,
        object_type: str,
        row: Row,
        names: list[str] | None,
        history: list[str] | None = None,
        associations: dict[str, dict[int, list[tuple[int, bool]]]] | None = None,
    ) -> dict[str, Any]:
        record: dict[str, Any] = {
            "id": hubspot_id(object_type, row.n),
            "properties": self._selected(object_type, row, names),
            "createdAt": row.created_at,
            "updatedAt": row.updated_at,
            "archived": row.archived,
        }
        if row.archived:
            record["archivedAt"] = row.archived_at
        if history:
            record["propertiesWithHistory"] = self._history(object_type, row, history)
        if associations:
            linked: dict[str, Any] = {}
            for to_type, by_n in associations.items():
                results = []
                for to_n, primary in by_n.get(row.n, []):
                    to_id = hubspot_id(to_type, to_n)
                    if primary:
                        results.append({"id": to_id, "type": v3_association_name(object_type, to_type, True)})
                    results.append({"id": to_id, "type": v3_association_name(object_type, to_type, False)})
                if results:
                    linked[to_type] = {"results": results}
            if linked:
                record["associations"] = linked
        return record

    def _associations_for(self, object_type: str, ns: list[int], request: SandboxRequest) -> dict[str, Any]:
        out: dict[str, dict[int, list[tuple[int, bool]]]] = {}
        for raw in self._names(request, "associations"):
            to_type = TYPE_ALIASES.get(raw.lower())
            if to_type is not None and to_type != object_type:
                out[to_type] = self.store.associations(object_type, ns, to_type)
        return out

    # --- objects: read ------------------------------------------------------------------------------

    def _list(self, object_type: str, request: SandboxRequest) -> SandboxResponse:
        names = self._names(request, "properties")
        history = self._names(request, "propertiesWithHistory")
        limit = max(1, min(self._int_param(request, "limit", 10), HISTORY_MAX if history else LIST_MAX))
        after_raw = request.param("after")
        after_n = 0
        if after_raw:
            parsed = hubspot_n(object_type, after_raw)
            if parsed is None:
                raise ApiError(400, f"Invalid value for after: {after_raw}", "VALIDATION_ERROR")
            after_n = parsed
        archived = (request.param("archived") or "false").lower() == "true"
        rows = self.store.page(object_type, archived=archived, after_n=after_n, limit=limit + 1)
        page, more = rows[:limit], len(rows) > limit
        assoc = self._associations_for(object_type, [r.n for r in page], request)
        body: dict[str, Any] = {"results": [self._record(object_type, r, names, history, assoc) for r in page]}
        if more:
            after = hubspot_id(object_type, page[-1].n)
            link = f"{self.base_url}/crm/v3/objects/{object_type}?limit={limit}&after={quote(after)}"
            body["paging"] = {"next": {"after": after, "link": link}}
        return self._json(200, body)

    def _get(self, object_type: str, record_id: str, request: SandboxRequest) -> SandboxResponse:
        archived = (request.param("archived") or "false").lower() == "true"
        row = self._locate(object_type, record_id, request.param("idProperty"), archived=archived)
        assoc = self._associations_for(object_type, [row.n], request)
        names = self._names(request, "properties")
        history = self._names(request, "propertiesWithHistory")
        return self._json(200, self._record(object_type, row, names, history, assoc))

    # --- objects: write -----------------------------------------------------------------------------

    def _normalise(self, object_type: str, name: str, value: Any) -> Any:
        """A written value as HubSpot stores it: strings; datetimes as ISO with ms; '' clears."""
        if value is None or value == "":
            return None
        prop = self.registry.get(object_type, name)
        kind = prop.type if prop else "string"
        if isinstance(value, bool):
            return "true" if value else "false"
        if kind == "datetime":
            try:
                return iso_instant(value)
            except SearchError:
                return str(value)
        if kind == "date":
            try:
                return iso_instant(value)[:10]
            except SearchError:
                return str(value)
        if kind == "bool":
            return str(value).lower()
        return str(value)

    def _check_properties(self, object_type: str, props: Any, *, creating: bool) -> dict[str, Any]:
        if not isinstance(props, dict):
            raise ApiError(400, "properties must be an object", "VALIDATION_ERROR")
        problems = self.registry.invalid_values(object_type, props)
        if creating:
            for name in REQUIRED_ON_CREATE.get(object_type, ()):
                if props.get(name) in (None, ""):
                    message = f"{name} is required"
                    problems.append(
                        {
                            "isValid": False,
                            "message": message,
                            "error": "REQUIRED_FIELD",
                            "name": name,
                            "localizedErrorMessage": message,
                        }
                    )
        if problems:
            raise validation_error(problems)
        return {k: self._normalise(object_type, k, v) for k, v in props.items()}

    def _injected_failure(self, *, locked_possible: bool) -> ApiError | None:
        """A write refused by the fault profile: a locked record (423) or a failed validation rule (400)."""
        profile = self.faults.profile
        if not profile.applies_to(self._path) or not self.faults.roll(profile.write_failure_rate):
            return None
        if locked_possible and self.faults.roll(0.5):
            return ApiError(
                423, "This record is locked by another process. Wait at least 2 seconds and retry.", "LOCKED"
            )
        return ApiError(400, "The record failed a validation rule configured in this portal.", "VALIDATION_ERROR")

    def _duplicate(self, object_type: str, props: dict[str, Any]) -> ApiError | None:
        if object_type == "contacts" and props.get("email"):
            existing = self.store.find_by("contacts", "email", str(props["email"]))
            if existing is not None:
                existing_id = hubspot_id("contacts", existing.n)
                return ApiError(409, f"Contact already exists. Existing ID: {existing_id}", "CONFLICT")
        return None

    def _association_inputs(self, object_type: str, raw: Any) -> list[tuple[str, int]]:
        """Validate create-time associations: (to_type, to_n) pairs."""
        out: list[tuple[str, int]] = []
        for item in raw or []:
            to_id = str((item.get("to") or {}).get("id", ""))
            for spec in item.get("types") or []:
                type_id = spec.get("associationTypeId")
                pair = ALL_TYPE_IDS.get(type_id) if isinstance(type_id, int) else None
                if pair is None or pair[0] != object_type:
                    raise ApiError(
                        400, f"{type_id} is not a valid association type id for {object_type}", "VALIDATION_ERROR"
                    )
                to_n = hubspot_n(pair[1], to_id)
                target = self.store.get(pair[1], to_n) if to_n is not None else None
                if target is None or target.archived:
                    raise ApiError(
                        400,
                        f"One or more associations are invalid: {SINGULAR[pair[1]]} {to_id} not found",
                        "VALIDATION_ERROR",
                    )
                out.append((pair[1], target.n))
        return out

    def _insert(self, object_type: str, item: Any) -> tuple[Row, dict[str, Any]]:
        if not isinstance(item, dict):
            raise ApiError(400, "Invalid input: expected an object", "VALIDATION_ERROR")
        props = self._check_properties(object_type, item.get("properties"), creating=True)
        links = self._association_inputs(object_type, item.get("associations"))
        duplicate = self._duplicate(object_type, props)
        if duplicate is not None:
            raise duplicate
        failure = self._injected_failure(locked_possible=False)
        if failure is not None:
            raise failure
        row = self.store.insert(
            object_type, {k: v for k, v in props.items() if v is not None}, self._now(), "INTEGRATION"
        )
        for to_type, to_n in links:
            self.store.add_association(object_type, row.n, to_type, to_n)
        return row, props

    def _create(self, object_type: str, body: Any) -> SandboxResponse:
        row, props = self._insert(object_type, body)
        return self._json(201, self._record(object_type, row, list(props)))

    def _apply_update(self, object_type: str, row: Row, props: dict[str, Any]) -> Row:
        failure = self._injected_failure(locked_possible=True)
        if failure is not None:
            raise failure
        return self.store.update(object_type, row, props, self._now(), "INTEGRATION")

    def _update(self, object_type: str, record_id: str, body: Any, request: SandboxRequest) -> SandboxResponse:
        props = self._check_properties(object_type, (body or {}).get("properties"), creating=False)
        row = self._locate(object_type, record_id, request.param("idProperty"), writing=True)
        updated = self._apply_update(object_type, row, props)
        return self._json(200, self._record(object_type, updated, list(props)))

    # --- batch ----------------------------------------------------------------------------------------

    def _batch(self, object_type: str, operation: str, body: Any, request: SandboxRequest) -> SandboxResponse:
        inputs = (body or {}).get("inputs") if isinstance(body, dict) else None
        if not isinstance(inputs, list):
            raise ApiError(400, "inputs is required", "VALIDATION_ERROR")
        if len(inputs) > BATCH_MAX:
            raise ApiError(400, BATCH_TOO_LARGE, "VALIDATION_ERROR")
        started = self._now()
        if operation == "read":
            return self._batch_read(object_type, body, inputs, request, started)
        if operation == "archive":
            for item in inputs:
                n = hubspot_n(object_type, str((item or {}).get("id", "")))
                row = self.store.get(object_type, n) if n is not None else None
                if row is not None and not row.archived:
                    self.store.set_archived(object_type, row.n, True, started)
            return SandboxResponse(204)
        if operation == "create":
            return self._batch_create(object_type, inputs, started)
        if operation == "update":
            return self._batch_update(object_type, inputs, started)
        if operation == "upsert":
            return self._batch_upsert(object_type, inputs, started)
        raise self._not_allowed("POST", request.path)

    def _batch_read(
        self, object_type: str, body: dict[str, Any], inputs: list[Any], request: SandboxRequest, started: str
    ) -> SandboxResponse:
        history = list(body.get("propertiesWithHistory") or [])
        if history and len(inputs) > HISTORY_MAX:
            raise ApiError(
                400,
                "The maximum number of inputs supported in a batch with propertiesWithHistory is 50. "
                "Please reduce the number of items and try again",
                "VALIDATION_ERROR",
            )
        archived = (request.param("archived") or "false").lower() == "true"
        id_property = body.get("idProperty")
        rows: list[Row] = []
        missing: list[str] = []
        for item in inputs:
            raw = str((item or {}).get("id", ""))
            row: Row | None
            if id_property and id_property != "hs_object_id":
                row = self.store.find_by(object_type, id_property, raw)
            else:
                n = hubspot_n(object_type, raw)
                row = self.store.get(object_type, n) if n is not None else None
            if row is None or row.archived != archived:
                missing.append(raw)
            else:
                rows.append(row)
        names = list(body.get("properties") or [])
        results = [self._record(object_type, r, names, history) for r in rows]
        errors = []
        if missing:
            kind = SINGULAR[object_type].upper()
            message = f"Could not get some {kind} objects, they may be deleted or not exist. Check that ids are valid."
            errors.append(self._record_error(ApiError(404, message, "OBJECT_NOT_FOUND"), missing))
        return self._batch_envelope(200, results, errors, started)

    def _batch_props(self, object_type: str, inputs: list[Any], *, creating: bool) -> list[dict[str, Any]]:
        """Validate every input's properties first: one bad property name fails the whole request, as HubSpot does."""
        problems: list[dict[str, Any]] = []
        checked: list[dict[str, Any]] = []
        for item in inputs:
            try:
                checked.append(self._check_properties(object_type, (item or {}).get("properties"), creating=creating))
            except ApiError as error:
                if error.status != 400 or not error.message.startswith("Property values were not valid: "):
                    raise
                problems.extend(json.loads(error.message.removeprefix("Property values were not valid: ")))
        if problems:
            raise validation_error(problems)
        return checked

    def _batch_write(
        self,
        inputs: list[Any],
        status: int,
        started: str,
        write: Callable[[dict[str, Any], int], dict[str, Any]],
    ) -> SandboxResponse:
        """Apply ``write(input, index)`` to each input; refused records become per-record errors (207)."""
        results: list[dict[str, Any]] = []
        errors: list[dict[str, Any]] = []
        for index, raw in enumerate(inputs):
            item: dict[str, Any] = raw if isinstance(raw, dict) else {}
            trace = item.get("objectWriteTraceId")
            try:
                record = write(item, index)
            except ApiError as error:
                ids = [str(item["id"])] if "id" in item else []
                errors.append(self._record_error(error, ids, trace))
                continue
            if trace:
                record["objectWriteTraceId"] = trace
            results.append(record)
        return self._batch_envelope(status, results, errors, started)

    def _batch_create(self, object_type: str, inputs: list[Any], started: str) -> SandboxResponse:
        checked = self._batch_props(object_type, inputs, creating=True)
        for props in checked:  # HubSpot refuses the whole batch, naming the first existing record
            duplicate = self._duplicate(object_type, props)
            if duplicate is not None:
                raise duplicate

        def create(item: dict[str, Any], _: int) -> dict[str, Any]:
            row, props = self._insert(object_type, item)
            return self._record(object_type, row, list(props))

        return self._batch_write(inputs, 201, started, create)

    def _batch_update(self, object_type: str, inputs: list[Any], started: str) -> SandboxResponse:
        checked = self._batch_props(object_type, inputs, creating=False)

        for item in inputs:
            if (item or {}).get("idProperty"):
                self._check_id_property(object_type, item["idProperty"])

        def update(item: dict[str, Any], index: int) -> dict[str, Any]:
            row = self._locate(object_type, str(item.get("id", "")), item.get("idProperty"), writing=True)
            updated = self._apply_update(object_type, row, checked[index])
            return self._record(object_type, updated, list(checked[index]))

        return self._batch_write(inputs, 200, started, update)

    def _batch_upsert(self, object_type: str, inputs: list[Any], started: str) -> SandboxResponse:
        checked = self._batch_props(object_type, inputs, creating=False)
        for item in inputs:
            id_property = (item or {}).get("idProperty")
            if not id_property:
                raise ApiError(400, "idProperty is required for every upsert input", "VALIDATION_ERROR")
            self._check_id_property(object_type, id_property)

        def upsert(item: dict[str, Any], index: int) -> dict[str, Any]:
            raw_id, id_property, props = str(item.get("id", "")), str(item["idProperty"]), checked[index]
            existing = self.store.find_by(object_type, id_property, raw_id)
            if existing is None:
                created = {**props, id_property: raw_id}
                row, _ = self._insert(object_type, {"properties": created})
                return {**self._record(object_type, row, list(created)), "new": True}
            row = self._apply_update(object_type, existing, props)
            return {**self._record(object_type, row, list(props)), "new": False}

        return self._batch_write(inputs, 200, started, upsert)

    # --- search ---------------------------------------------------------------------------------------

    def _search(self, object_type: str, body: Any) -> SandboxResponse:
        if not isinstance(body, dict):
            body = {}
        limit = body.get("limit", 10)
        after_raw = body.get("after") or "0"
        try:
            limit = int(limit)
            offset = int(after_raw)
        except (TypeError, ValueError):
            raise ApiError(400, "limit and after must be integers", "VALIDATION_ERROR") from None
        if limit > MAX_LIMIT:
            raise ApiError(400, f"limit must be less than or equal to {MAX_LIMIT}", "VALIDATION_ERROR")
        if offset >= MAX_RESULTS:
            raise ApiError(
                400,
                f"There was a problem with the request: the search can page through at most "
                f"{MAX_RESULTS} results (after={offset}).",
                "VALIDATION_ERROR",
            )
        # A page never reaches past the 10,000th result; the next ``after`` then points at the refused offset.
        limit = max(min(limit, MAX_RESULTS - offset), 1)
        try:
            compiled = SearchCompiler(object_type, self.registry, self.store.associated_ns).compile(body)
        except SearchError as error:
            raise ApiError(400, str(error), "VALIDATION_ERROR") from None
        total, rows = self.store.search(object_type, compiled.where, compiled.params, compiled.order, limit, offset)
        names = list(body.get("properties") or [])
        out: dict[str, Any] = {"total": total, "results": [self._record(object_type, r, names) for r in rows]}
        if offset + len(rows) < total:
            out["paging"] = {"next": {"after": str(offset + len(rows))}}
        return self._json(200, out)
