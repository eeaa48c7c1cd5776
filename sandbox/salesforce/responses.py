"""Salesforce's error answers: a JSON list of ``{message, errorCode[, fields]}``, whatever the status."""

from __future__ import annotations

from typing import Any

from sandbox.http import SandboxResponse


def errors(status: int, code: str, message: str, fields: list[str] | None = None) -> SandboxResponse:
    """A one-error answer, shaped as the REST, Bulk 2.0 and Tooling APIs send it."""
    item: dict[str, Any] = {"message": message, "errorCode": code}
    if fields is not None:
        item["fields"] = fields
    return SandboxResponse.of_json(status, [item])


def not_found() -> SandboxResponse:
    return errors(404, "NOT_FOUND", "The requested resource does not exist")
