"""Fault injection for the emulated APIs: configurable per run and per endpoint.

The server (``sandbox.server``) applies the transport faults (rate limits, server errors, timeouts,
connection resets, latency) before a request reaches an app, asking the app for the error body in
its own API's shape. Apps apply the faults only they can: token expiry after N calls, per-record
write failures, and daily-limit exhaustion.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field, replace


@dataclass(frozen=True)
class FaultProfile:
    # share of requests answered "rate limited" (HubSpot 429; Salesforce's 403 REQUEST_LIMIT_EXCEEDED is daily_limit)
    rate_429: float = 0.0
    rate_5xx: float = 0.0  # share answered 500/502/503
    rate_timeout: float = 0.0  # share that stall past the client's read timeout (the server sleeps timeout_seconds)
    rate_reset: float = 0.0  # share whose connection is closed without an answer
    latency_ms: float = 0.0  # added to every request
    timeout_seconds: float = 3.0
    token_expiry_after: int | None = None  # the access token expires after this many authenticated calls
    write_failure_rate: float = 0.0  # per-record share of writes refused (locked row, validation)
    daily_limit: int | None = None  # overrides the emulated daily API limit
    endpoints: tuple[str, ...] = ()  # path prefixes the rates apply to; empty means every endpoint
    seed: int = 0

    def applies_to(self, path: str) -> bool:
        return not self.endpoints or any(path.startswith(p) for p in self.endpoints)


PROFILES: dict[str, FaultProfile] = {
    "none": FaultProfile(),
    "flaky": FaultProfile(rate_429=0.10, rate_5xx=0.05),
    "slow": FaultProfile(latency_ms=50.0),
    "chaos": FaultProfile(
        rate_429=0.10, rate_5xx=0.05, rate_reset=0.01, token_expiry_after=500, write_failure_rate=0.05
    ),
}


def profile(name: str, **overrides: object) -> FaultProfile:
    """A named profile (``none``, ``flaky``, ``slow``, ``chaos``) with optional field overrides."""
    try:
        base = PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown fault profile {name!r}; choose one of {', '.join(PROFILES)}") from None
    return replace(base, **overrides)  # type: ignore[arg-type]


@dataclass
class FaultState:
    """A profile plus the seeded random stream and counters that decide each injected fault."""

    profile: FaultProfile = field(default_factory=FaultProfile)
    _rng: random.Random = field(default_factory=random.Random, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        self._rng.seed(self.profile.seed)

    def set(self, new: FaultProfile) -> None:
        with self._lock:
            self.profile = new
            self._rng.seed(new.seed)

    def roll(self, share: float) -> bool:
        """True with probability ``share`` (deterministic for a given seed and call order)."""
        if share <= 0:
            return False
        with self._lock:
            return self._rng.random() < share
