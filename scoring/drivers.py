"""Plain-language drivers: what each signal value means to a person, and a summary that fits 255 characters.

For example ``42 (down 14 in 30d): NPS detractor (3/10); 2 open P1/P2 tickets; no exec contact in 120d``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

DRIVERS_MAX = 255


def _count(n: float, one: str, many: str) -> str:
    k = round(n)
    return f"{k} {one if k == 1 else many}"


def _nps(v: float) -> str:
    kind = "detractor" if v <= 6 else ("passive" if v <= 8 else "promoter")
    return f"NPS {kind} ({v:.0f}/10)"


def _days_since(what: str) -> Callable[[float], str]:
    return lambda v: f"no {what} in {v:.0f}d" if v >= 30 else f"{what} {v:.0f}d ago"


def _trend(v: float) -> str:
    return f"usage {'down' if v < 0 else 'up'} {abs(v):.0%}"


_PHRASES: dict[str, Callable[[float], str]] = {
    "nps_latest": _nps,
    "nps_180d": lambda v: f"NPS {v:+.0f} over 180d",
    "csat_avg_180d": lambda v: f"CSAT {v:.1f}/5",
    "detractor_90d": lambda v: "NPS detractor in 90d" if v else "no detractor in 90d",
    "open_high_priority_tickets": lambda v: _count(v, "open P1/P2 ticket", "open P1/P2 tickets"),
    "tickets_30d": lambda v: _count(v, "ticket in 30d", "tickets in 30d"),
    "tickets_90d": lambda v: _count(v, "ticket in 90d", "tickets in 90d"),
    "escalations_90d": lambda v: _count(v, "escalation in 90d", "escalations in 90d"),
    "median_resolution_hours": lambda v: f"median ticket resolution {v:.0f}h",
    "seat_utilization": lambda v: f"{v:.0%} of seats active",
    "usage_trend": _trend,
    "feature_adoption": lambda v: f"{v:.0%} feature adoption",
    "days_overdue": lambda v: f"invoice {v:.0f}d overdue" if v > 0 else "no overdue invoice",
    "overdue_share_of_arr": lambda v: f"{v:.0%} of ARR overdue",
    "failed_payments_180d": lambda v: _count(v, "failed payment in 180d", "failed payments in 180d"),
    "days_since_two_way_touch": _days_since("two-way touch"),
    "days_since_exec_touch": _days_since("exec contact"),
    "touches_90d": lambda v: _count(v, "touch in 90d", "touches in 90d"),
    "meetings_90d": lambda v: _count(v, "meeting in 90d", "meetings in 90d"),
    "exec_meeting_180d": lambda v: "exec meeting in 180d" if v else "no exec meeting in 180d",
    "relationship_capital": lambda v: f"relationship capital {v:.0f}/100",
    "thread_count": lambda v: _count(v, "engaged contact", "engaged contacts"),
    "seniority_levels_engaged": lambda v: _count(v, "seniority level engaged", "seniority levels engaged"),
    "departments_engaged": lambda v: _count(v, "department engaged", "departments engaged"),
    "exec_sponsor_engaged": lambda v: "exec sponsor engaged" if v else "no exec sponsor engaged",
    "single_threaded": lambda v: "single-threaded" if v else "multi-threaded",
    "lonely_client": lambda v: "lonely client" if v else "attention in line with tier",
    "champion_gone": lambda v: "champion gone" if v else "champion in place",
    "expansion_signal": lambda v: "expansion signal" if v else "no expansion signal",
    "intent_expansion": lambda v: f"expansion intent {v:.0f}/100",
    "intent_risk": lambda v: f"competitor intent {v:.0f}/100",
    "days_to_renewal": lambda v: f"renewal in {v:.0f}d",
    "tenure_days": lambda v: f"customer for {v:.0f}d",
    "arr": lambda v: f"ARR {v:,.0f}",
}


def phrase(signal: str, raw: float | str | None, label: str | None = None) -> str:
    """One signal value in plain language, e.g. ``nps_latest`` 3 -> ``NPS detractor (3/10)``."""
    if raw is not None and not isinstance(raw, str):
        fn = _PHRASES.get(signal)
        if fn is not None:
            return fn(raw)
    name = label or signal.removeprefix("custom.").replace("_", " ")
    if raw is None:
        return f"{name}: no data"
    if isinstance(raw, str):
        return f"{name}: {raw}"
    return f"{name} {raw:g}"


def headline(score: float, delta: float | None, days: int | None) -> str:
    """``42 (down 14 in 30d)``, ``42 (flat over 30d)`` or ``42``."""
    if delta is None or days is None:
        return f"{score:.0f}"
    if round(delta) == 0:
        return f"{score:.0f} (flat over {days}d)"
    return f"{score:.0f} ({'up' if delta > 0 else 'down'} {abs(delta):.0f} in {days}d)"


@dataclass(frozen=True)
class Driver:
    """One measure's pull on the score: ``impact`` points gained (+) or lost (-) against a neutral 50."""

    text: str
    impact: float


def summarize(head: str, first: Sequence[str], drivers: Sequence[Driver], last: Sequence[str] = (),
              limit: int = DRIVERS_MAX) -> str:
    """``head: clause; clause; ...`` with as many clauses as fit in ``limit`` characters.

    ``first`` clauses (an override) come before the drivers and ``last`` ones (low confidence) after; room
    for ``first`` and ``last`` is kept before drivers are added; a driver that does not fit is left out whole.
    """
    reserve = sum(map(len, last)) + 2 * len(last)
    parts: list[str] = []
    budget = limit - len(head) - 2  # room for "; ".join(parts)
    used = 0  # len("; ".join(parts))

    def add(clause: str, room: int) -> None:
        nonlocal used
        length = used + (2 if parts else 0) + len(clause)
        if length + room <= budget:
            parts.append(clause)
            used = length

    for clause in first:
        add(clause, reserve)
    for clause in dict.fromkeys(d.text for d in drivers):
        if clause not in parts:
            add(clause, reserve)
    for clause in last:
        add(clause, 0)
    return f"{head}: {'; '.join(parts)}" if parts else head
