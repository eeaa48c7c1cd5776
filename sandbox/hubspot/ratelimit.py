"""HubSpot's API limits for a private app: a ten-second rolling window, a daily count, and search's own limit.

Defaults are the Professional tier (190 per 10 s, 625,000 per day) and 5 search requests per second.
Time comes from an injected clock (epoch seconds), so tests never sleep.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

TEN_SECONDS = 10.0
INTERVAL_MS = 10_000

MESSAGES = {
    "TEN_SECONDLY_ROLLING": "You have reached your ten_secondly_rolling limit.",
    "DAILY": "You have reached your daily limit.",
    "SECONDLY": "You have reached your secondly limit.",
}


@dataclass(frozen=True)
class Verdict:
    """The outcome of counting one request: the policy it broke (None when allowed) and the headers to send."""

    policy: str | None
    headers: dict[str, str]


class RateLimits:
    """Counts requests against the ten-second rolling window, the daily limit and the search limit."""

    def __init__(
        self,
        *,
        ten_second: int = 190,
        daily: int = 625_000,
        search_per_second: int = 5,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.ten_second = ten_second
        self.daily = daily
        self.search_per_second = search_per_second
        self._clock = clock
        self._lock = threading.Lock()
        self._window: deque[float] = deque()
        self._search_window: deque[float] = deque()
        self._day = -1
        self._daily_used = 0

    def configure(
        self, *, ten_second: int | None = None, daily: int | None = None, search_per_second: int | None = None
    ) -> None:
        """Change the limits (requests per 10 s, per UTC day, search requests per second)."""
        with self._lock:
            if ten_second is not None:
                self.ten_second = ten_second
            if daily is not None:
                self.daily = daily
            if search_per_second is not None:
                self.search_per_second = search_per_second

    def reset(self) -> None:
        with self._lock:
            self._window.clear()
            self._search_window.clear()
            self._daily_used = 0

    def count(self, *, is_search: bool, daily_limit: int | None = None) -> Verdict:
        """Count one authenticated request; a refused request is not counted."""
        daily = daily_limit if daily_limit is not None else self.daily
        with self._lock:
            now = self._advance()
            policy: str | None = None
            if self._daily_used >= daily:
                policy = "DAILY"
            elif len(self._window) >= self.ten_second:
                policy = "TEN_SECONDLY_ROLLING"
            elif is_search and len(self._search_window) >= self.search_per_second:
                policy = "SECONDLY"
            else:
                self._daily_used += 1
                self._window.append(now)
                if is_search:
                    self._search_window.append(now)
            return Verdict(policy, self._headers(daily))

    def headers(self, *, daily_limit: int | None = None) -> dict[str, str]:
        """The X-HubSpot-RateLimit-* headers as they stand, without counting a request."""
        with self._lock:
            self._advance()
            return self._headers(daily_limit if daily_limit is not None else self.daily)

    def _advance(self) -> float:
        """Drop what left the windows and start a new daily count on a new UTC day; the current time."""
        now = self._clock()
        day = int(now // 86_400)
        if day != self._day:
            self._day = day
            self._daily_used = 0
        while self._window and self._window[0] <= now - TEN_SECONDS:
            self._window.popleft()
        while self._search_window and self._search_window[0] <= now - 1.0:
            self._search_window.popleft()
        return now

    def _headers(self, daily: int) -> dict[str, str]:
        return {
            "X-HubSpot-RateLimit-Daily": str(daily),
            "X-HubSpot-RateLimit-Daily-Remaining": str(max(daily - self._daily_used, 0)),
            "X-HubSpot-RateLimit-Interval-Milliseconds": str(INTERVAL_MS),
            "X-HubSpot-RateLimit-Max": str(self.ten_second),
            "X-HubSpot-RateLimit-Remaining": str(max(self.ten_second - len(self._window), 0)),
        }
