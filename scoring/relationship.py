"""Relationship strength after Introhive: per contact from recency, frequency, regularity and intimacy, by seniority.

Every component only grows with more contact: more touches raise frequency and intimacy (a sum of touches
weighted by how close each interaction is: meeting > call > two-way email > one-way email), a later last
touch raises recency, and touches in new periods raise regularity. So more recent or more frequent contact
never lowers a contact's strength. The two-way ratio is reported, and enters through those weights.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

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


def contact_strength(t: ContactTouches, seniority: str, rc: RelationshipConfig) -> StrengthParts:
    """A contact's relationship strength (0-1) and its components."""
    days = max(0.0, t.days_since_last) if not math.isnan(t.days_since_last) else float(rc.window_days)
    recency = 0.5 ** (days / rc.recency_half_life_days) if t.touches else 0.0
    frequency = 1.0 - math.exp(-t.touches / rc.frequency_scale)
    regularity = min(1.0, t.active_buckets / rc.regularity_buckets)
    w = rc.intimacy
    weighted = t.meetings * w.meeting + t.calls * w.call + t.two_way_emails * w.two_way_email
    weighted += t.one_way_emails * w.one_way_email
    intimacy = 1.0 - math.exp(-weighted / rc.intimacy_scale)
    two_way_ratio = (t.meetings + t.calls + t.two_way_emails) / t.touches if t.touches else 0.0
    cw = rc.components
    total = cw.recency + cw.frequency + cw.regularity + cw.intimacy
    base = cw.recency * recency + cw.frequency * frequency + cw.regularity * regularity + cw.intimacy * intimacy
    base /= total
    seniority_weight = float(getattr(rc.seniority, seniority, rc.seniority.unknown))
    return StrengthParts(recency, frequency, regularity, intimacy, two_way_ratio, seniority_weight,
                         seniority_weight * base)


def relationship_capital(strength_sum: float, rc: RelationshipConfig) -> float:
    """Account relationship capital, 0-100 points, saturating in the summed strength of its live contacts."""
    return 100.0 * (1.0 - math.exp(-max(0.0, strength_sum) / rc.capital_scale))
