"""Relationship strength after Introhive: per contact from recency, frequency, regularity and intimacy, by seniority.

Every component only grows with more contact: more touches raise frequency and intimacy (a sum of touches
weighted by how close each interaction is: meeting > call > two-way email > one-way email), a later last
touch raises recency, and touches in new periods raise regularity. So more recent or more frequent contact
never lowers a contact's strength. The two-way ratio is reported, and enters through those weights.
The computation is vectorized over per-contact aggregates (one array element per contact): ``contact_strengths``
in numpy, for the contacts an explanation lists, and ``strength_sql``, the same formula as a SQL expression, for
the sums over a whole portfolio that scoring computes in the database.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import ColumnElement, case, func, literal

from core.config.scoring import RelationshipConfig


@dataclass(frozen=True)
class ContactTouches:
    """One contact's touches within the relationship window, aggregated in SQL."""

    days_since_last: float  # days before as_of of the latest touch
    meetings: int
    calls: int
    two_way_emails: int  # inbound (the customer wrote)
    one_way_emails: int  # outbound (we wrote)
    active_buckets: int  # how many of the window's periods had a touch

    @property
    def touches(self) -> int:
        return self.meetings + self.calls + self.two_way_emails + self.one_way_emails


@dataclass(frozen=True)
class StrengthParts:
    """Each component is 0-1; ``strength`` (0-1) = seniority weight x the weighted mean of the components."""

    recency: float
    frequency: float
    regularity: float
    intimacy: float
    two_way_ratio: float
    seniority_weight: float
    strength: float


@dataclass(frozen=True)
class StrengthArrays:
    """The same components for many contacts at once."""

    recency: np.ndarray
    frequency: np.ndarray
    regularity: np.ndarray
    intimacy: np.ndarray
    two_way_ratio: np.ndarray
    seniority_weight: np.ndarray
    strength: np.ndarray

    def part(self, i: int) -> StrengthParts:
        return StrengthParts(
            float(self.recency[i]), float(self.frequency[i]), float(self.regularity[i]), float(self.intimacy[i]),
            float(self.two_way_ratio[i]), float(self.seniority_weight[i]), float(self.strength[i]),
        )


def seniority_weights(levels: np.ndarray | list[str], rc: RelationshipConfig) -> np.ndarray:
    """The configured weight of each seniority level (unknown levels weigh as ``unknown``)."""
    table = rc.seniority.model_dump()
    return np.array([table.get(level, rc.seniority.unknown) for level in levels], dtype=float)


def contact_strengths(days_since_last: np.ndarray, meetings: np.ndarray, calls: np.ndarray, two_way_emails: np.ndarray,
                      one_way_emails: np.ndarray, active_buckets: np.ndarray, seniority_weight: np.ndarray,
                      rc: RelationshipConfig) -> StrengthArrays:
    """Strength (0-1) and its components for each contact (arrays of equal length)."""
    touches = meetings + calls + two_way_emails + one_way_emails
    days = np.where(np.isnan(days_since_last), float(rc.window_days), np.maximum(days_since_last, 0.0))
    recency = np.where(touches > 0, 0.5 ** (days / rc.recency_half_life_days), 0.0)
    frequency = 1.0 - np.exp(-touches / rc.frequency_scale)
    regularity = np.minimum(1.0, active_buckets / rc.regularity_buckets)
    w = rc.intimacy
    weighted = meetings * w.meeting + calls * w.call + two_way_emails * w.two_way_email
    weighted = weighted + one_way_emails * w.one_way_email
    intimacy = 1.0 - np.exp(-weighted / rc.intimacy_scale)
    two_way = np.divide(meetings + calls + two_way_emails, touches, out=np.zeros(len(touches)), where=touches > 0)
    cw = rc.components
    total = cw.recency + cw.frequency + cw.regularity + cw.intimacy
    base = (cw.recency * recency + cw.frequency * frequency + cw.regularity * regularity + cw.intimacy * intimacy)
    return StrengthArrays(recency, frequency, regularity, intimacy, two_way, seniority_weight,
                          seniority_weight * base / total)


def strength_sql(days_since_last: ColumnElement[Any], meetings: ColumnElement[Any], calls: ColumnElement[Any],
                 two_way_emails: ColumnElement[Any], one_way_emails: ColumnElement[Any],
                 active_buckets: ColumnElement[Any], level: ColumnElement[Any], levels: Sequence[str],
                 rc: RelationshipConfig) -> ColumnElement[Any]:
    """``contact_strengths(...).strength`` as a SQL expression over per-contact aggregates (``level``: a code, the
    position of the contact's seniority in ``levels``); no touch is no strength.

    ``exp`` and ``power`` are SQL math functions: PostgreSQL's, and SQLite's when it was built with them (else
    ``store.db`` provides them). Every constant is a float, so that no division is an integer one on SQLite.
    """

    def f(x: float) -> ColumnElement[Any]:
        return literal(float(x))

    touches = meetings + calls + two_way_emails + one_way_emails
    days = case((days_since_last > 0, days_since_last), else_=f(0))
    recency = case((touches > 0, func.power(f(0.5), days / f(rc.recency_half_life_days))), else_=f(0))
    frequency = f(1) - func.exp(-touches / f(rc.frequency_scale))
    regularity = case((active_buckets >= rc.regularity_buckets, f(1)),
                      else_=active_buckets / f(rc.regularity_buckets))
    w = rc.intimacy
    weighted = (meetings * f(w.meeting) + calls * f(w.call) + two_way_emails * f(w.two_way_email)
                + one_way_emails * f(w.one_way_email))
    intimacy = f(1) - func.exp(-weighted / f(rc.intimacy_scale))
    cw = rc.components
    total = cw.recency + cw.frequency + cw.regularity + cw.intimacy
    base = (f(cw.recency) * recency + f(cw.frequency) * frequency + f(cw.regularity) * regularity
            + f(cw.intimacy) * intimacy)
    weights = seniority_weights(list(levels), rc)
    weight = case({k: f(x) for k, x in enumerate(weights)}, value=level, else_=f(rc.seniority.unknown))
    return weight * base / f(total)


def contact_strength(t: ContactTouches, seniority: str, rc: RelationshipConfig) -> StrengthParts:
    """A contact's relationship strength (0-1) and its components."""

    def one(x: float) -> np.ndarray:
        return np.array([x], dtype=float)

    arrays = contact_strengths(
        one(t.days_since_last), one(t.meetings), one(t.calls), one(t.two_way_emails), one(t.one_way_emails),
        one(t.active_buckets), seniority_weights([seniority], rc), rc,
    )
    return arrays.part(0)


def relationship_capital(strength_sum: float, rc: RelationshipConfig) -> float:
    """Account relationship capital, 0-100 points, saturating in the summed strength of its live contacts."""
    return 100.0 * (1.0 - math.exp(-max(0.0, strength_sum) / rc.capital_scale))
