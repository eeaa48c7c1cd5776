"""TLS trust for every connector: the default store plus ``HEALTH_AGENT_CA_BUNDLE`` (corporate proxies, the sandbox).

requests lets ``REQUESTS_CA_BUNDLE``/``CURL_CA_BUNDLE`` silently override a Session's ``verify``
(``Session.merge_environment_settings``). ``TrustingSession`` keeps its own ``verify`` when one is set,
while still honouring proxy variables, so the configured bundle always applies.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Any

import certifi
import requests

from core.errors import ConfigError


def combined_ca_bundle(extra: Path | str | None) -> str | None:
    """A CA file trusting the default roots plus ``extra``; None when there is no extra CA.

    The default roots are requests' own (certifi), plus the file named by REQUESTS_CA_BUNDLE or
    CURL_CA_BUNDLE when set, so a machine's corporate roots keep working. The combined file is
    written once per content into the temp folder.
    """
    if not extra:
        return None
    extra_path = Path(extra)
    try:
        extra_pem = extra_path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"HEALTH_AGENT_CA_BUNDLE: cannot read {extra_path} ({exc.strerror})") from None
    if b"-----BEGIN CERTIFICATE-----" not in extra_pem:
        raise ConfigError(f"HEALTH_AGENT_CA_BUNDLE: {extra_path} holds no PEM certificate")
    parts = [Path(certifi.where()).read_bytes()]
    for var in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        env_path = os.environ.get(var)
        if env_path and Path(env_path).is_file():
            parts.append(Path(env_path).read_bytes())
    parts.append(extra_pem)
    content = b"\n".join(parts)
    target = Path(tempfile.gettempdir()) / f"health-agent-ca-{hashlib.sha256(content).hexdigest()[:16]}.pem"
    if not target.exists():
        tmp = target.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_bytes(content)
        tmp.replace(target)
    return str(target)


class TrustingSession(requests.Session):
    """A Session whose own ``verify`` (a CA path) wins over REQUESTS_CA_BUNDLE/CURL_CA_BUNDLE."""

    def merge_environment_settings(self, url: Any, proxies: Any, stream: Any, verify: Any, cert: Any) -> Any:
        if (verify is None or verify is True) and isinstance(self.verify, str):
            verify = self.verify
        return super().merge_environment_settings(url, proxies, stream, verify, cert)


def make_session(ca_bundle: Path | str | None) -> requests.Session:
    """A requests Session trusting the default roots plus ``ca_bundle`` (when given)."""
    session = TrustingSession()
    bundle = combined_ca_bundle(ca_bundle)
    if bundle:
        session.verify = bundle
    return session
