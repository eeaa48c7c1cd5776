"""The org's OAuth token endpoint, access tokens (with injected expiry) and the daily API request count."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import parse_qs

import jwt

from sandbox.faults import FaultState
from sandbox.http import SandboxRequest, SandboxResponse
from sandbox.ids import salesforce_id
from sandbox.salesforce.responses import errors

DEFAULT_DAILY_LIMIT = 15_000
JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"


class SalesforceCredentials(Protocol):
    """The sandbox credentials the emulated org accepts (``sandbox.http.SandboxTokens``)."""

    @property
    def salesforce_access_token(self) -> str: ...
    @property
    def salesforce_client_id(self) -> str: ...
    @property
    def salesforce_client_secret(self) -> str: ...
    @property
    def salesforce_username(self) -> str: ...
    @property
    def salesforce_password(self) -> str: ...


def _invalid_grant() -> SandboxResponse:
    return SandboxResponse.of_json(400, {"error": "invalid_grant", "error_description": "authentication failure"})


@dataclass
class AuthOutcome:
    """Why a call was refused (``response``), or None when it may proceed."""

    response: SandboxResponse | None


class OrgAuth:
    """Validates bearer tokens, issues new ones, and counts the org's daily API requests."""

    def __init__(self, credentials: SalesforceCredentials, faults: FaultState, jwt_public_key: str | None) -> None:
        self.credentials = credentials
        self.faults = faults
        self.jwt_public_key = jwt_public_key
        self.reset()

    def reset(self) -> None:
        self.calls_by_token: dict[str, int] = {self.credentials.salesforce_access_token: 0}
        self.expired: set[str] = set()
        self.api_used = 0
        self.tokens_issued = 0

    @property
    def daily_limit(self) -> int:
        return self.faults.profile.daily_limit or DEFAULT_DAILY_LIMIT

    def limit_header(self) -> dict[str, str]:
        return {"Sforce-Limit-Info": f"api-usage={self.api_used}/{self.daily_limit}"}

    def check(self, request: SandboxRequest) -> AuthOutcome:
        """Admit an authenticated call (and count it), or the 401/403 Salesforce answers instead."""
        header = request.headers.get("authorization", "")
        token = header[7:].strip() if header.lower().startswith("bearer ") else ""
        if token not in self.calls_by_token or token in self.expired:
            return AuthOutcome(_session_expired())
        expiry = self.faults.profile.token_expiry_after
        if expiry is not None and self.calls_by_token[token] >= expiry:
            self.expired.add(token)
            return AuthOutcome(_session_expired())
        if self.api_used >= self.daily_limit:
            return AuthOutcome(errors(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded."))
        self.calls_by_token[token] += 1
        self.api_used += 1
        return AuthOutcome(None)

    def token(self, request: SandboxRequest, instance_url: str) -> SandboxResponse:
        """``POST /services/oauth2/token``: JWT bearer, client credentials or password grants."""
        form = {k: v[0] for k, v in parse_qs(request.body.decode("utf-8", "replace")).items()}
        form.update({k: v[0] for k, v in request.query.items() if k not in form})
        grant = form.get("grant_type", "")
        creds = self.credentials
        client_id, client_secret = form.get("client_id", ""), form.get("client_secret", "")
        basic = request.headers.get("authorization", "")
        if basic.lower().startswith("basic "):
            try:
                client_id, _, client_secret = base64.b64decode(basic[6:].strip()).decode().partition(":")
            except ValueError:
                return _invalid_grant()
        if grant == JWT_GRANT:
            ok = self._valid_assertion(form.get("assertion", ""), instance_url)
        elif grant == "client_credentials":
            ok = (client_id, client_secret) == (creds.salesforce_client_id, creds.salesforce_client_secret)
        elif grant == "password":
            ok = (
                (client_id, client_secret) == (creds.salesforce_client_id, creds.salesforce_client_secret)
                and form.get("username") == creds.salesforce_username
                and form.get("password", "").startswith(creds.salesforce_password)
            )
        else:
            return SandboxResponse.of_json(
                400, {"error": "unsupported_grant_type", "error_description": "grant type not supported"}
            )
        if not ok:
            return _invalid_grant()
        return SandboxResponse.of_json(200, self._issue(instance_url))

    def _valid_assertion(self, assertion: str, instance_url: str) -> bool:
        try:
            header = jwt.get_unverified_header(assertion)
            if header.get("alg") != "RS256":
                return False
            if self.jwt_public_key:
                claims = jwt.decode(
                    assertion, self.jwt_public_key, algorithms=["RS256"], options={"verify_aud": False}, leeway=60.0
                )
            else:
                claims = jwt.decode(assertion, options={"verify_signature": False})
        except jwt.PyJWTError:
            return False
        audience = str(claims.get("aud", ""))
        try:
            expires = float(claims.get("exp", 0))
        except (TypeError, ValueError):
            return False
        creds = self.credentials
        return (
            claims.get("iss") == creds.salesforce_client_id
            and claims.get("sub") == creds.salesforce_username
            and (audience.endswith("salesforce.com") or (bool(instance_url) and audience.startswith(instance_url)))
            and expires > time.time()
        )

    def _issue(self, instance_url: str) -> dict[str, Any]:
        self.tokens_issued += 1
        secret = self.credentials.salesforce_client_secret.encode()
        digest = hashlib.sha256(f"{self.credentials.salesforce_client_id}:{self.tokens_issued}".encode()).hexdigest()
        token = f"00DDg0000000001!AQ{digest[:48]}"
        self.calls_by_token[token] = 0
        issued_at = str(int(time.time() * 1000))
        signature = base64.b64encode(hmac.new(secret, f"{instance_url}{issued_at}".encode(), "sha256").digest())
        return {
            "access_token": token,
            "instance_url": instance_url,
            "id": f"{instance_url}/id/00DDg0000000001AAA/{salesforce_id('User', 1)}",
            "token_type": "Bearer",
            "issued_at": issued_at,
            "signature": signature.decode(),
            "scope": "api",
        }


def _session_expired() -> SandboxResponse:
    return errors(401, "INVALID_SESSION_ID", "Session expired or invalid")
