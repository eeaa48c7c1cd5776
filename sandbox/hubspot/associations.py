"""CRM v4 association endpoints: per-record list, label and default create, archive, and batch read."""

from __future__ import annotations

from typing import Any

from sandbox.http import SandboxRequest, SandboxResponse
from sandbox.hubspot.base import BATCH_MAX, BATCH_TOO_LARGE, OBJECT_TYPE_IDS, ApiError, Core
from sandbox.hubspot.objects import ALL_TYPE_IDS, ASSOCIATION_TYPE_IDS, PRIMARY_TYPE_IDS, SINGULAR
from sandbox.hubspot.store import hubspot_n
from sandbox.ids import HUBSPOT_OFFSETS, hubspot_id


class AssociationsApi(Core):
    """/crm/v4/objects/.../associations and /crm/v4/associations/{from}/{to}/batch."""

    # --- associations v4 ----------------------------------------------------------------------------

    @staticmethod
    def _type_specs(from_type: str, to_type: str, primary: bool) -> list[dict[str, Any]]:
        specs = []
        if primary and (from_type, to_type) in PRIMARY_TYPE_IDS:
            specs.append(
                {"category": "HUBSPOT_DEFINED", "typeId": PRIMARY_TYPE_IDS[(from_type, to_type)], "label": "Primary"}
            )
        type_id = ASSOCIATION_TYPE_IDS.get((from_type, to_type))
        if type_id is not None:
            specs.append({"category": "HUBSPOT_DEFINED", "typeId": type_id, "label": None})
        return specs

    def _route_v4_record(
        self, method: str, from_type: str, record_id: str, rest: list[str], request: SandboxRequest
    ) -> SandboxResponse:
        if len(rest) == 1 and method == "GET":
            to_type = self._object_type(rest[0])
            row = self._row_or_404(from_type, record_id, archived=False)
            limit = max(1, min(self._int_param(request, "limit", 500), 500))
            after = self._int_param(request, "after", 0)
            linked = self.store.associations(from_type, [row.n], to_type)[row.n]
            page = linked[after : after + limit]
            body: dict[str, Any] = {
                "results": [
                    {
                        "toObjectId": HUBSPOT_OFFSETS[to_type] + to_n,
                        "associationTypes": self._type_specs(from_type, to_type, p),
                    }
                    for to_n, p in page
                ]
            }
            if after + limit < len(linked):
                next_after = str(after + limit)
                link = (
                    f"{self.base_url}/crm/v4/objects/{from_type}/{record_id}/associations/{to_type}?after={next_after}"
                )
                body["paging"] = {"next": {"after": next_after, "link": link}}
            return self._json(200, body)
        if len(rest) == 3 and rest[0] == "default" and method == "PUT":
            to_type = self._object_type(rest[1])
            row = self._row_or_404(from_type, record_id, archived=False)
            target = self._row_or_404(to_type, rest[2], archived=False)
            started = self._now()
            self.store.add_association(from_type, row.n, to_type, target.n)
            result = self._default_result(from_type, row.n, to_type, target.n)
            return self._json(
                200, {"status": "COMPLETE", "results": [result], "startedAt": started, "completedAt": self._now()}
            )
        if len(rest) == 2:
            to_type = self._object_type(rest[0])
            row = self._row_or_404(from_type, record_id, archived=False)
            target = self._row_or_404(to_type, rest[1], archived=False)
            if method == "DELETE":
                self.store.remove_association(from_type, row.n, to_type, target.n)
                return SandboxResponse(204)
            if method == "PUT":
                specs = self._body(request)
                for spec in specs if isinstance(specs, list) else []:
                    type_id = spec.get("associationTypeId")
                    if (
                        ALL_TYPE_IDS.get(type_id) != (from_type, to_type)
                        and spec.get("associationCategory") == "HUBSPOT_DEFINED"
                    ):
                        raise ApiError(
                            400,
                            f"{type_id} is not a valid association type from {from_type} to {to_type}",
                            "VALIDATION_ERROR",
                        )
                self.store.add_association(from_type, row.n, to_type, target.n)
                return self._json(
                    201,
                    {
                        "fromObjectTypeId": OBJECT_TYPE_IDS[from_type],
                        "fromObjectId": HUBSPOT_OFFSETS[from_type] + row.n,
                        "toObjectTypeId": OBJECT_TYPE_IDS[to_type],
                        "toObjectId": HUBSPOT_OFFSETS[to_type] + target.n,
                        "labels": [],
                    },
                )
        raise self._not_allowed(method, request.path)

    @staticmethod
    def _default_result(from_type: str, from_n: int, to_type: str, to_n: int) -> dict[str, Any]:
        return {
            "from": {"id": hubspot_id(from_type, from_n)},
            "to": {"id": hubspot_id(to_type, to_n)},
            "associationSpec": {
                "associationCategory": "HUBSPOT_DEFINED",
                "associationTypeId": ASSOCIATION_TYPE_IDS.get((from_type, to_type), 0),
            },
        }

    def _route_v4_batch(
        self, method: str, from_type: str, to_type: str, operation: str, request: SandboxRequest
    ) -> SandboxResponse:
        if method != "POST":
            raise self._not_allowed(method, request.path)
        body = self._body(request)
        inputs = body.get("inputs") if isinstance(body, dict) else None
        if not isinstance(inputs, list):
            raise ApiError(400, "inputs is required", "VALIDATION_ERROR")
        if len(inputs) > 1000 or (operation != "read" and len(inputs) > BATCH_MAX):
            raise ApiError(400, BATCH_TOO_LARGE, "VALIDATION_ERROR")
        started = self._now()
        if operation == "read":
            return self._v4_batch_read(from_type, to_type, inputs, started)
        if operation in ("associate/default", "create"):
            results = []
            errors = []
            for item in inputs:
                from_id = str(((item or {}).get("from") or {}).get("id", ""))
                to_id = str(((item or {}).get("to") or {}).get("id", ""))
                try:
                    row = self._row_or_404(from_type, from_id, archived=False)
                    target = self._row_or_404(to_type, to_id, archived=False)
                except ApiError as error:
                    errors.append(self._record_error(error, [from_id, to_id]))
                    continue
                self.store.add_association(from_type, row.n, to_type, target.n)
                if operation == "create":
                    results.append(
                        {
                            "fromObjectTypeId": OBJECT_TYPE_IDS[from_type],
                            "fromObjectId": HUBSPOT_OFFSETS[from_type] + row.n,
                            "toObjectTypeId": OBJECT_TYPE_IDS[to_type],
                            "toObjectId": HUBSPOT_OFFSETS[to_type] + target.n,
                            "labels": [],
                        }
                    )
                else:
                    results.append(self._default_result(from_type, row.n, to_type, target.n))
            status = 201 if operation == "create" else 200
            return self._batch_envelope(status, results, errors, started)
        if operation == "archive":
            for item in inputs:
                from_id = str(((item or {}).get("from") or {}).get("id", ""))
                from_n = hubspot_n(from_type, from_id)
                for to in (item or {}).get("to") or []:
                    to_n = hubspot_n(to_type, str((to or {}).get("id", "")))
                    if from_n is not None and to_n is not None:
                        self.store.remove_association(from_type, from_n, to_type, to_n)
            return SandboxResponse(204)
        raise self._not_allowed(method, request.path)

    def _v4_batch_read(self, from_type: str, to_type: str, inputs: list[Any], started: str) -> SandboxResponse:
        wanted: list[tuple[str, int | None]] = []
        for item in inputs:
            raw = str((item or {}).get("id", ""))
            wanted.append((raw, hubspot_n(from_type, raw)))
        ns = [n for _, n in wanted if n is not None]
        live = self.store.get_many(from_type, ns)
        linked = self.store.associations(from_type, [n for n in ns if n in live and not live[n].archived], to_type)
        results = []
        errors = []
        for raw, n in wanted:
            partners = linked.get(n, []) if n is not None else []
            if not partners:
                message = f"No {SINGULAR[to_type]} is associated with {SINGULAR[from_type]} {raw}."
                error = ApiError(404, message, "OBJECT_NOT_FOUND", subCategory="crm.associations.NO_ASSOCIATIONS_FOUND")
                entry = self._record_error(error, [])
                entry["context"] = {"fromObjectId": [raw], "toObjectType": [SINGULAR[to_type]]}
                errors.append(entry)
                continue
            results.append(
                {
                    "from": {"id": raw},
                    "to": [
                        {
                            "toObjectId": HUBSPOT_OFFSETS[to_type] + t,
                            "associationTypes": self._type_specs(from_type, to_type, p),
                        }
                        for t, p in partners
                    ],
                }
            )
        return self._batch_envelope(200, results, errors, started)
