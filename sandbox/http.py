"""The request/response shape every emulated API speaks; the server in ``sandbox.server`` carries them.

An emulated API is an ``App``: a pure function from ``SandboxRequest`` to ``SandboxResponse``, so
it can be unit-tested without a socket. The server adds TLS, keep-alive, the request ledger and
fault injection around it.
"""

from __future__ import annotations

import hmac
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import parse_qs, urlsplit

if TYPE_CHECKING:
    from sandbox.book import Book
    from sandbox.faults import FaultState


@dataclass(frozen=True)
class SandboxRequest:
    method: str  # upper case
    target: str  # path with query string, as sent
    headers: dict[str, str]  # keys lower case
    body: bytes = b""

    @property
    def path(self) -> str:
        return urlsplit(self.target).path

    @property
    def query(self) -> dict[str, list[str]]:
        return parse_qs(urlsplit(self.target).query, keep_blank_values=True)

    def param(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[0] if values else default

    def json(self) -> Any:
        return json.loads(self.body or b"null")


@dataclass
class SandboxResponse:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of_json(cls, status: int, payload: Any, headers: dict[str, str] | None = None) -> SandboxResponse:
        return cls(
            status,
            json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode(),
            {"Content-Type": "application/json;charset=UTF-8", **(headers or {})},
        )


class App(Protocol):
    """One emulated API."""

    name: str  # salesforce | hubspot | nps | intent

    def handle(self, request: SandboxRequest) -> SandboxResponse: ...

    def reset(self) -> None:
        """Back to the book as generated: undo every write and counter."""

    def error_response(self, kind: str) -> SandboxResponse:
        """The body this API sends for an injected transport fault: ``rate_limited`` or ``server_error``."""


@dataclass(frozen=True)
class SandboxTokens:
    """The fixed credentials every emulated API accepts: sandbox values, not secrets."""

    salesforce_access_token: str = "00DSANDBOX!sandbox-salesforce-access-token"  # noqa: S105
    salesforce_client_id: str = "sandbox-salesforce-client-id"
    salesforce_client_secret: str = "sandbox-salesforce-client-secret"  # noqa: S105
    salesforce_username: str = "integration@sandbox.example"
    salesforce_password: str = "sandbox-password"  # noqa: S105
    hubspot_access_token: str = "pat-na1-sandbox-hubspot-access-token"  # noqa: S105
    nps_api_key: str = "sandbox-nps-api-key"
    intent_api_key: str = "sandbox-intent-api-key"


def key_matches(presented: str | None, expected: str) -> bool:
    """Constant-time comparison of a presented credential with the expected one."""
    return presented is not None and hmac.compare_digest(presented.encode(), expected.encode())


class ReadOnlyBookApp:
    """Base for emulated APIs that only read the book (NPS, intent): nothing to undo on ``reset()``."""

    name: str

    def __init__(self, book: Book, faults: FaultState, tokens: SandboxTokens) -> None:
        from sandbox.book import BookReader

        self.book = book
        self.faults = faults
        self.tokens = tokens
        self.base_url = ""
        self.reader = BookReader(book)

    def set_base_url(self, url: str) -> None:
        self.base_url = url.rstrip("/")

    def reset(self) -> None:
        """Nothing to undo: the API is read-only."""
