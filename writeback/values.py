"""Score outputs -> CRM field values, and the canonical form values are stored and compared in.

A value has one canonical, JSON-encodable form per output kind (numbers rounded, booleans as bool,
times as ``YYYY-MM-DDTHH:MM:SSZ`` UTC), whatever shape a CRM hands it back in (HubSpot sends every
property as a string; Salesforce sends ``2026-01-05T12:00:00.000+0000``). The plan compares and the
ledger stores canonical values only, so a value read back from the CRM equals the one written.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from functools import lru_cache
from typing import Any

from core.config.writeback import OUTPUTS, OutputKind

Canonical = str | float | int | bool | None

DECIMALS = 1  # scores, deltas, capital and coverage percent are written with one decimal
DRIVERS_MAX_CHARS = 255


@dataclass(frozen=True)
class ScoreRow:
    """One account's latest score joined to the account: everything the plan and the task rules read."""

    account_id: int
    crm: str  # accounts.source: salesforce | hubspot
    record_id: str  # accounts.external_id
    account_name: str
    owner_id: str | None
    renewal_date: date | None
    scored_at: datetime
    score: float  # points 0-100
    band: str
    previous_band: str | None  # the band of this account's previous score, None on its first
    coverage: float  # share 0-1
    low_confidence: bool
    trend_delta: float | None  # points against trend_days ago
    trend_days: int | None
    direction: str | None  # up | down | flat
    relationship_capital: float | None
    thread_count: int | None
    flags: dict[str, bool] = field(default_factory=dict)
    drivers: str = ""

    @property
    def band_changed(self) -> bool:
        return self.previous_band is not None and self.previous_band != self.band

    def days_to_renewal(self, today: date) -> int | None:
        """Days from ``today`` to the next renewal (negative when past), None when unknown."""
        return None if self.renewal_date is None else (self.renewal_date - today).days


def output_values(row: ScoreRow) -> dict[str, Canonical]:
    """Every output of one score, in canonical form (keys are ``OUTPUTS`` names)."""
    values: dict[str, Canonical] = {
        "score": row.score,
        "band": row.band,
        "trend": row.direction,
        "delta": row.trend_delta,
        "drivers": row.drivers,
        "coverage": row.coverage * 100.0,
        "relationship_capital": row.relationship_capital,
        "thread_count": row.thread_count,
        "low_confidence": row.low_confidence,
        "scored_at": row.scored_at,  # type: ignore[dict-item]  # canonicalized below
    }
    for name in ("single_threaded", "lonely_client", "champion_gone", "expansion_signal"):
        values[name] = bool(row.flags.get(name, False))
    return {name: canonical(OUTPUTS[name][0], value) for name, value in values.items()}


def canonical(kind: OutputKind, value: Any) -> Canonical:
    """The canonical form of a value of ``kind``, from a Python value or a CRM's answer (None stays None)."""
    if value is None or value == "":
        return None
    if kind == "number":
        return round(float(value), DECIMALS)
    if kind == "integer":
        return round(float(value))
    if kind == "boolean":
        if isinstance(value, str):
            return value.strip().lower() in ("true", "1", "yes")
        return bool(value)
    if kind == "datetime":
        return _utc_text(value)
    text = str(value)
    return text[:DRIVERS_MAX_CHARS]


def _utc_text(value: Any) -> str:
    if isinstance(value, (int, float)) or (isinstance(value, str) and value.isdigit()):
        moment = datetime.fromtimestamp(int(value) / 1000, UTC)  # HubSpot sends epoch milliseconds
    elif isinstance(value, datetime):
        moment = value
    else:
        text = str(value).strip().replace("Z", "+00:00")
        if len(text) >= 5 and text[-5] in "+-" and text[-3] != ":":  # Salesforce's +0000
            text = text[:-2] + ":" + text[-2:]
        moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def differs(kind: OutputKind, old: Canonical, new: Canonical, min_delta: float = 0.0) -> bool:
    """True when ``new`` should replace ``old``: any change, except numeric changes smaller than ``min_delta``."""
    if old is None or new is None:
        return old != new
    if kind in ("number", "integer") and isinstance(old, (int, float)) and isinstance(new, (int, float)):
        return abs(float(new) - float(old)) >= max(min_delta, 1e-9)
    return old != new


def encode(value: Canonical) -> str:
    """How a canonical value is kept in the store (JSON text)."""
    return json.dumps(value, ensure_ascii=False)


@lru_cache(maxsize=65_536)  # stored values repeat a lot (flags, bands, rounded scores); values are immutable
def decode(text: str | None) -> Canonical:
    """A stored value back to its canonical form."""
    if text is None:
        return None
    decoded: Canonical = json.loads(text)
    return decoded


def to_csv_cell(value: Canonical) -> str:
    """A canonical value as a Bulk API 2.0 CSV cell (``#N/A`` clears a field)."""
    if value is None:
        return "#N/A"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
