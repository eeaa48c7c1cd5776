"""Record writes as every API surface (sObject, sObject Collections, Bulk 2.0) performs them, with the
per-record failures the fault profile injects (a locked row, a failed validation rule)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sandbox.faults import FaultState
from sandbox.salesforce.schema import SObject
from sandbox.salesforce.store import OrgStore, WriteError
from sandbox.salesforce.values import full_id

_LOCKED = WriteError("UNABLE_TO_LOCK_ROW", "unable to obtain exclusive access to this record or 1 records")
_VALIDATION = WriteError(
    "FIELD_CUSTOM_VALIDATION_EXCEPTION", "Record rejected by validation rule Health_Agent_Guard: try again later"
)


class RecordWriter:
    """Creates, updates and deletes one record at a time; raises ``WriteError`` with Salesforce's statusCode."""

    def __init__(self, store: OrgStore, faults: FaultState) -> None:
        self.store = store
        self.faults = faults

    def _maybe_fail(self) -> None:
        if self.faults.roll(self.faults.profile.write_failure_rate):
            raise _LOCKED if self.faults.roll(0.5) else _VALIDATION

    def create(self, obj: SObject, body: Mapping[str, Any]) -> str:
        """Insert a record; returns its Id."""
        values = self.store.prepare(obj, body, creating=True)
        self._maybe_fail()
        return self.store.insert(obj, values)

    def update(self, obj: SObject, record_id: str, body: Mapping[str, Any]) -> str:
        """Update a live record; returns its (18-character) Id."""
        record_id = full_id(record_id)
        values = self.store.prepare(obj, body, creating=False)
        self._check_id(obj, record_id)
        self._maybe_fail()
        if not self.store.update(obj, record_id, values):
            raise WriteError("ENTITY_IS_DELETED", "entity is deleted")
        return record_id

    def delete(self, obj: SObject, record_id: str) -> str:
        """Move a live record to the recycle bin; returns its Id."""
        record_id = full_id(record_id)
        self._check_id(obj, record_id)
        self._maybe_fail()
        if not self.store.soft_delete(obj, record_id):
            raise WriteError("ENTITY_IS_DELETED", "entity is deleted")
        return record_id

    def _check_id(self, obj: SObject, record_id: str) -> None:
        if not record_id.startswith(obj.key_prefix):
            raise WriteError("MALFORMED_ID", f"{obj.name} ID: id value of incorrect type: {record_id}", ["Id"])
        if self.store.rowid(obj, record_id) is None:
            raise WriteError("INVALID_CROSS_REFERENCE_KEY", f"invalid cross reference id: {record_id}", ["Id"])
