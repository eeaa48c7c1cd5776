"""The error tree. Errors are classified once, at the edge where they happen.

::

    HealthAgentError                 every error this project raises on purpose
    ├── ConfigError                  bad YAML, settings or CLI usage (exit code 2); carries every problem found
    ├── ApiError                     a call to a CRM or vendor API failed
    │   ├── RetriableApiError        429, 5xx, timeouts, resets, locked rows: try again (carries the response)
    │   │   └── RateLimitedError     the API said slow down; ``retry_after`` seconds when it said how long
    │   └── FatalApiError            retrying will not help (bad query, missing object or field)
    │       ├── AuthError            credentials refused or expired and no way to renew them
    │       └── BudgetExhaustedError the API budget share for this run is used up
    ├── RecordError                  one record could not be mapped or written: skip it, report it
    ├── StoreError                   the database refused or is unreachable
    └── WritebackError               a write plan cannot be applied (e.g. the blast-radius guard)

Each error has a ``user_message`` (what a person should read) and ``detail`` (internal context);
both pass through secret redaction before they are logged or printed (``core.redaction``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any


class HealthAgentError(Exception):
    """Root of every error this project raises on purpose."""

    def __init__(self, user_message: str, *, detail: str | None = None) -> None:
        super().__init__(user_message)
        self.user_message = user_message
        self.detail = detail

    def __str__(self) -> str:
        return self.user_message


@dataclass(frozen=True)
class ConfigProblem:
    """One problem in a configuration file: where it is, and what is wrong."""

    file: str
    line: int | None  # 1-based; None when the place has no line (e.g. an environment variable)
    path: str  # dotted path, e.g. "writeback.salesforce.fields.health_score"
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else self.file
        return f"{where} {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class ConfigError(HealthAgentError):
    """Bad configuration; ``problems`` lists every one found, not only the first."""

    def __init__(self, problems: Sequence[ConfigProblem] | str) -> None:
        if isinstance(problems, str):
            problems = [ConfigProblem(file="", line=None, path="", message=problems)]
        self.problems = list(problems)
        super().__init__("\n".join(str(p).strip() for p in self.problems))


class ApiError(HealthAgentError):
    """A call to an external API failed."""

    def __init__(
        self,
        user_message: str,
        *,
        system: str,
        status: int | None = None,
        code: str | None = None,
        detail: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(user_message, detail=detail)
        self.system = system
        self.status = status
        self.code = code
        self.headers = dict(headers or {})


class RetriableApiError(ApiError):
    """Worth retrying: rate limits, server errors, timeouts, connection resets, locked rows."""


class RateLimitedError(RetriableApiError):
    """The API asked us to slow down."""

    def __init__(self, user_message: str, *, retry_after: float | None = None, **kw: Any) -> None:
        super().__init__(user_message, **kw)
        self.retry_after = retry_after


class FatalApiError(ApiError):
    """Retrying will not help."""


class AuthError(FatalApiError):
    """Credentials refused or expired, and no login flow is configured to renew them."""


class BudgetExhaustedError(FatalApiError):
    """This run's share of the API's daily limit is used up; the rest waits for the next run."""


class RecordError(HealthAgentError):
    """One record could not be mapped or written; it is skipped and reported, the rest go on."""

    def __init__(self, user_message: str, *, external_id: str | None = None, field: str | None = None) -> None:
        super().__init__(user_message)
        self.external_id = external_id
        self.field = field


class StoreError(HealthAgentError):
    """The database refused an operation or is unreachable."""


class WritebackError(HealthAgentError):
    """A write plan cannot be applied as it stands."""
