"""What the apply step needs from a CRM writer (``SalesforceWriter``, ``HubSpotWriter``), and their shared values."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Protocol, TypeVar

from core.errors import ApiError, AuthError, BudgetExhaustedError
from writeback.values import Canonical

T = TypeVar("T")


@dataclass(frozen=True)
class BatchResult:
    """One write call's outcome: the records it carried and those that failed (record id -> error)."""

    record_ids: Sequence[str]
    failed: dict[str, str] = field(default_factory=dict)
    fatal: bool = False  # the run cannot go on writing (credentials refused, API budget used up)
    bulk_jobs: int = 0


@dataclass(frozen=True)
class TaskCreate:
    """A task to create on one account/company."""

    dedupe_key: str
    record_id: str  # the account (Salesforce WhatId) or company id
    subject: str
    body: str
    due: date
    priority: str  # high | normal | low
    owner_id: str | None = None
    contact_id: str | None = None  # HubSpot: also associate this contact


@dataclass(frozen=True)
class TaskCreated:
    dedupe_key: str
    task_id: str | None
    error: str | None = None


class CrmWriter(Protocol):
    """One CRM's writes and reads for writeback; every call goes through the connector's client."""

    crm: str
    object_type: str

    def api_calls(self) -> int:
        """Calls made through the client so far (retries included)."""

    def read_current(self, record_ids: Sequence[str], fields: Sequence[str]) -> dict[str, dict[str, Any]]: ...

    def write(self, records: Mapping[str, Mapping[str, Canonical]]) -> Iterator[BatchResult]: ...

    def find_open_tasks(self, keys: Mapping[str, str]) -> dict[str, str]:
        """dedupe key -> id of an open task carrying it; ``keys``: dedupe key -> the account/company id."""

    def open_task_ids(self, task_ids: Sequence[str]) -> set[str]: ...

    def create_tasks(self, tasks: Sequence[TaskCreate]) -> list[TaskCreated]: ...

    def close_tasks(self, task_ids: Sequence[str]) -> dict[str, str | None]: ...


def chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def stops_run(exc: ApiError) -> bool:
    """Errors after which no further write can succeed this run."""
    return isinstance(exc, (AuthError, BudgetExhaustedError))
