"""Flags: single-threaded, lonely client, champion gone, expansion signal; each with the reason it is on or off.

Flags are computed over the whole frame (a lonely client is judged against its tier in the portfolio) and kept
as 0/1 signal columns, so a scorecard can also use them as boolean measures.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from core.config.scoring import FLAG_NAMES, ScoringConfig
from scoring.signals import SignalFrame


@dataclass(frozen=True)
class FlagState:
    on: bool
    reason: str


def _tier_key(tier: str | None) -> str:
    return tier or "(no tier)"


def expected_touches(frame: SignalFrame) -> np.ndarray:
    """Touches per period an account's tier and ARR warrant: tier median x sqrt(ARR / tier median ARR)."""
    touches = frame.values["touches_period"]
    arr = frame.values["arr"]
    by_tier: dict[str, list[int]] = {}
    for pos, acc in enumerate(frame.accounts):
        by_tier.setdefault(_tier_key(acc.tier), []).append(pos)
    expected = np.zeros(len(frame))
    for positions in by_tier.values():
        idx = np.array(positions)
        median_touches = float(np.median(touches[idx]))
        arrs = arr[idx]
        known = arrs[~np.isnan(arrs)]
        median_arr = float(np.median(known)) if known.size else math.nan
        if median_arr and not math.isnan(median_arr):
            scale = np.clip(np.sqrt(np.nan_to_num(arrs, nan=median_arr) / median_arr), 0.5, 2.0)
        else:
            scale = np.ones(len(idx))
        expected[idx] = median_touches * scale
    return expected


def apply_flags(frame: SignalFrame, config: ScoringConfig) -> None:
    """Add the four flag columns (0/1) to the frame."""
    v = frame.values
    f = config.flags
    arr = np.nan_to_num(v["arr"], nan=0.0)
    few_threads = v["thread_count"] <= f.single_threaded.max_threads
    v["single_threaded"] = (few_threads & (arr > f.single_threaded.min_arr)).astype(float)
    frame.expected_touches = expected_touches(frame)
    lonely = f.lonely_client
    since = v["days_since_touch"]
    quiet = np.isnan(since) | (np.nan_to_num(since, nan=0.0) > lonely.max_days_without_touch)
    neglected = v["touches_period"] < lonely.share_of_expected * frame.expected_touches
    v["lonely_client"] = (quiet | neglected).astype(float)
    ex = f.expansion_signal
    surge = np.nan_to_num(v["intent_expansion"], nan=-1.0) >= ex.min_intent_score
    seats = np.nan_to_num(v["seat_utilization"], nan=0.0) > ex.seat_utilization_above
    growth = np.nan_to_num(v["usage_trend"], nan=0.0) > ex.usage_growth_above
    v["expansion_signal"] = (surge | seats | growth).astype(float)


def _n(value: float, digits: int = 0) -> str:
    return f"{value:,.{digits}f}"


def flag_states(frame: SignalFrame, pos: int, config: ScoringConfig,
                values: dict[str, float | None] | None = None) -> dict[str, FlagState]:
    """Each flag's state for one account and, on or off, the reason in plain language."""
    v = values if values is not None else frame.row(pos)
    f = config.flags
    out: dict[str, FlagState] = {}
    threads = int(v["thread_count"] or 0)
    arr = v["arr"] or 0.0
    st = f.single_threaded
    if v["single_threaded"]:
        days = config.relationship.engaged_days
        why = f"{threads} engaged contact(s) in {days}d on ARR {_n(arr)} (> {_n(st.min_arr)})"
    elif threads > st.max_threads:
        why = f"{threads} engaged contacts in {config.relationship.engaged_days}d (> {st.max_threads})"
    else:
        why = f"ARR {_n(arr)} is not above {_n(st.min_arr)}"
    out["single_threaded"] = FlagState(bool(v["single_threaded"]), why)

    lc = f.lonely_client
    touches = int(v["touches_period"] or 0)
    expected = float(frame.expected_touches[pos]) if len(frame.expected_touches) else 0.0
    since = v["days_since_touch"]
    if since is None:
        why = "no touch on record"
    elif since > lc.max_days_without_touch:
        why = f"no touch in {since:.0f}d (limit {lc.max_days_without_touch}d)"
    elif touches < lc.share_of_expected * expected:
        why = (f"{touches} touches in {lc.period_days}d, below {lc.share_of_expected:.0%} of the {expected:.1f} "
               f"its tier and ARR warrant")
    else:
        why = f"{touches} touches in {lc.period_days}d against {expected:.1f} expected; last touch {since:.0f}d ago"
    out["lonely_client"] = FlagState(bool(v["lonely_client"]), why)

    champ = frame.champions.get(pos)
    if champ is None:
        days = config.relationship.engaged_days
        why = f"no contact had {f.champion_gone.min_prior_touches}+ touches before the last {days}d"
    elif champ.gone:
        why = f"champion {champ.name} ({champ.prior_touches} earlier touches) {champ.gone}"
    else:
        why = f"champion {champ.name} still engaged"
    out["champion_gone"] = FlagState(bool(v["champion_gone"]), why)

    ex = f.expansion_signal
    reasons = []
    if (v["intent_expansion"] or -1) >= ex.min_intent_score:
        reasons.append(f"intent surge {v['intent_expansion']:.0f} on expansion topics")
    if (v["seat_utilization"] or 0) > ex.seat_utilization_above:
        reasons.append(f"seat utilization {v['seat_utilization']:.0%}")
    if (v["usage_trend"] or 0) > ex.usage_growth_above:
        reasons.append(f"usage up {v['usage_trend']:.0%}")
    if not reasons:
        reasons.append(
            f"no intent surge >= {ex.min_intent_score:.0f}, seats <= {ex.seat_utilization_above:.0%}, "
            f"usage growth <= {ex.usage_growth_above:.0%}"
        )
    out["expansion_signal"] = FlagState(bool(v["expansion_signal"]), "; ".join(reasons))
    assert tuple(out) == FLAG_NAMES
    return out
