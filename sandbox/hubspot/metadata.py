"""Property definitions, property groups and owners: /crm/v3/properties and /crm/v3/owners."""

from __future__ import annotations

from typing import Any

from sandbox.http import SandboxRequest, SandboxResponse
from sandbox.hubspot.base import OWNERS_MAX, PROPERTY_NAME, USER_ID_OFFSET, ApiError, Core
from sandbox.hubspot.properties import PropDef, PropertyGroup
from sandbox.hubspot.store import hubspot_n
from sandbox.ids import hubspot_id


class MetadataApi(Core):
    """/crm/v3/properties/{type} (and groups) and /crm/v3/owners."""

    # --- properties -----------------------------------------------------------------------------------

    def _route_properties(
        self, method: str, object_type: str, rest: list[str], request: SandboxRequest
    ) -> SandboxResponse:
        groups = self.registry.groups[object_type]
        if not rest:
            if method == "GET":
                props = sorted(self.registry.props[object_type].values(), key=lambda p: p.name)
                return self._json(200, {"results": [p.as_json() for p in props]})
            if method == "POST":
                return self._create_property(object_type, self._body(request))
        elif rest == ["groups"]:
            if method == "GET":
                return self._json(200, {"results": [g.as_json() for g in groups.values()]})
            if method == "POST":
                body = self._body(request) or {}
                name, label = body.get("name"), body.get("label")
                if not name or not label:
                    raise ApiError(400, "name and label are required", "VALIDATION_ERROR")
                if name in groups:
                    raise ApiError(409, f"A property group named '{name}' already exists.", "OBJECT_ALREADY_EXISTS")
                groups[name] = PropertyGroup(name, label, int(body.get("displayOrder", -1)))
                return self._json(201, groups[name].as_json())
        elif len(rest) == 2 and rest[0] == "groups" and method == "GET":
            if rest[1] not in groups:
                raise ApiError(404, f"Unable to find property group {rest[1]}", "OBJECT_NOT_FOUND")
            return self._json(200, groups[rest[1]].as_json())
        elif len(rest) == 1 and method in ("GET", "DELETE"):
            prop = self.registry.get(object_type, rest[0])
            if prop is None:
                raise ApiError(
                    404, f"Unable to find property {rest[0]} for object type {object_type}", "OBJECT_NOT_FOUND"
                )
            if method == "GET":
                return self._json(200, prop.as_json())
            if prop.hubspot_defined:
                raise ApiError(
                    400, f"Property {prop.name} is HubSpot-defined and cannot be archived", "VALIDATION_ERROR"
                )
            self.registry.remove(object_type, prop.name)
            return SandboxResponse(204)
        raise self._not_allowed(method, request.path)

    def _create_property(self, object_type: str, body: Any) -> SandboxResponse:
        if not isinstance(body, dict):
            raise ApiError(400, "Invalid input: expected an object", "VALIDATION_ERROR")
        missing = [k for k in ("name", "label", "type", "fieldType", "groupName") if not body.get(k)]
        if missing:
            raise ApiError(400, f"Missing required fields: {', '.join(missing)}", "VALIDATION_ERROR")
        name = str(body["name"])
        if not PROPERTY_NAME.match(name):
            raise ApiError(
                400,
                f"Property name {name} is invalid: use lowercase letters, digits and underscores",
                "VALIDATION_ERROR",
            )
        if self.registry.get(object_type, name) is not None:
            raise ApiError(409, f"Property named '{name}' already exists.", "OBJECT_ALREADY_EXISTS")
        if body["type"] not in ("string", "number", "date", "datetime", "enumeration", "bool"):
            raise ApiError(400, f"Invalid property type {body['type']}", "VALIDATION_ERROR")
        if body["groupName"] not in self.registry.groups[object_type]:
            raise ApiError(400, f"Property group {body['groupName']} does not exist", "VALIDATION_ERROR")
        options = tuple(str(o.get("value")) for o in body.get("options") or [] if isinstance(o, dict))
        prop = PropDef(
            name=name,
            label=str(body["label"]),
            type=str(body["type"]),
            group=str(body["groupName"]),
            options=options,
            hubspot_defined=False,
            field_type=str(body["fieldType"]),
            description=str(body.get("description") or ""),
            created_at=self._now(),
            unique=bool(body.get("hasUniqueValue", False)),
        )
        self.registry.add(object_type, prop)
        return self._json(201, prop.as_json())

    # --- owners ---------------------------------------------------------------------------------------

    def _owner_json(self, n: int) -> dict[str, Any]:
        owner = self.store.owner(n)
        assert owner is not None
        return {
            "id": hubspot_id("owners", owner.n),
            "email": owner.email,
            "type": "PERSON",
            "firstName": owner.first_name,
            "lastName": owner.last_name,
            "userId": USER_ID_OFFSET + owner.n,
            "userIdIncludingInactive": USER_ID_OFFSET + owner.n,
            "createdAt": owner.created_at,
            "updatedAt": owner.updated_at,
            "archived": owner.archived,
            "teams": [],
        }

    def _route_owners(self, method: str, rest: list[str], request: SandboxRequest) -> SandboxResponse:
        if method != "GET":
            raise self._not_allowed(method, request.path)
        archived = (request.param("archived") or "false").lower() == "true"
        if not rest:
            limit = max(1, min(self._int_param(request, "limit", 100), OWNERS_MAX))
            after_raw = request.param("after")
            after_n = (hubspot_n("owners", after_raw) or 0) if after_raw else 0
            owners = self.store.owners(
                archived=archived, after_n=after_n, limit=limit + 1, email=request.param("email")
            )
            page = owners[:limit]
            body: dict[str, Any] = {"results": [self._owner_json(o.n) for o in page]}
            if len(owners) > limit:
                after = hubspot_id("owners", page[-1].n)
                body["paging"] = {
                    "next": {"after": after, "link": f"{self.base_url}/crm/v3/owners/?limit={limit}&after={after}"}
                }
            return self._json(200, body)
        if len(rest) == 1:
            if request.param("idProperty") == "userId":
                n = int(rest[0]) - USER_ID_OFFSET if rest[0].isdigit() else 0
            else:
                n = hubspot_n("owners", rest[0]) or 0
            owner = self.store.owner(n)
            if owner is None or owner.archived != archived:
                raise ApiError(404, "resource not found", "OBJECT_NOT_FOUND")
            return self._json(200, self._owner_json(n))
        raise self._not_allowed(method, request.path)
