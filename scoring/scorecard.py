"""Scorecards applied to a signal frame: normalization to points, missing-data policies, weights, coverage.

Everything here works on whole columns (numpy), one scorecard at a time, over the accounts it applies to.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from core.config.scoring import (
    BooleanNormalization,
    CategoricalNormalization,
    LinearNormalization,
    Measure,
    Normalization,
    PercentileNormalization,
    Scorecard,
    ScoringConfig,
    TieredNormalization,
)
from scoring.signals import AccountRow, SignalFrame

NEUTRAL_POINTS = 50.0


def linear_points(raw: np.ndarray, norm: LinearNormalization) -> np.ndarray:
    """0 points at ``bad``, 100 at ``good``, linear between and clamped outside; NaN stays NaN."""
    return np.asarray(np.clip((raw - norm.bad) / (norm.good - norm.bad), 0.0, 1.0) * 100.0, dtype=float)


def tiered_points(raw: np.ndarray, norm: TieredNormalization) -> np.ndarray:
    """The points of the last tier whose ``at_least`` the value reaches, ``below`` under the first tier."""
    bounds = np.array([t.at_least for t in norm.tiers])
    points = np.array([norm.below, *[t.points for t in norm.tiers]])
    idx = np.searchsorted(bounds, np.nan_to_num(raw, nan=-np.inf), side="right")
    out: np.ndarray = np.array(points[idx], dtype=float)
    out[np.isnan(raw)] = np.nan
    return out


def percentile_points(raw: np.ndarray, norm: PercentileNormalization) -> np.ndarray:
    """The share (0-100) of the other accounts with data that this value beats; ties count half."""
    out = np.full(raw.shape, np.nan)
    known = ~np.isnan(raw)
    values = raw[known]
    if values.size == 0:
        return out
    if values.size == 1:
        out[known] = 50.0
        return out
    ordered = np.sort(values)
    below = np.searchsorted(ordered, values, side="left")
    equal = np.searchsorted(ordered, values, side="right") - below
    pct = (below + (equal - 1) / 2.0) / (values.size - 1) * 100.0
    out[known] = pct if norm.higher_is_better else 100.0 - pct
    return out


def boolean_points(raw: np.ndarray, norm: BooleanNormalization) -> np.ndarray:
    out = np.where(raw > 0, norm.true_points, norm.false_points).astype(float)
    out[np.isnan(raw)] = np.nan
    return out


def categorical_points(raw: list[str | None], norm: CategoricalNormalization) -> np.ndarray:
    lookup = {k.lower(): v for k, v in norm.points.items()}
    default = np.nan if norm.default is None else norm.default
    return np.array([np.nan if v is None else lookup.get(v.lower(), default) for v in raw], dtype=float)


def normalize(raw: np.ndarray | list[str | None], norm: Normalization) -> np.ndarray:
    """Raw signal values -> points 0-100 (NaN where there is no data)."""
    if isinstance(norm, CategoricalNormalization):
        if isinstance(raw, np.ndarray):
            return categorical_points([None if np.isnan(x) else f"{x:g}" for x in raw], norm)
        return categorical_points(raw, norm)
    assert isinstance(raw, np.ndarray), "a text signal needs a categorical normalization"
    if isinstance(norm, LinearNormalization):
        return linear_points(raw, norm)
    if isinstance(norm, TieredNormalization):
        return tiered_points(raw, norm)
    if isinstance(norm, PercentileNormalization):
        return percentile_points(raw, norm)
    return boolean_points(raw, norm)


def nominal_shares(card: Scorecard) -> np.ndarray:
    """Each measure's share of the scorecard's weight (sums to 1): group share x share within the group."""
    if not card.groups:
        w = np.array([m.weight for m in card.measures])
        return np.asarray(w / w.sum(), dtype=float)
    group_total = sum(card.groups[g] for g in {m.group for m in card.measures if m.group})
    shares = []
    for m in card.measures:
        in_group = sum(x.weight for x in card.measures if x.group == m.group)
        shares.append(card.groups[m.group or ""] / group_total * m.weight / in_group)
    return np.array(shares)


def matches(card: Scorecard, account: AccountRow) -> bool:
    w = card.when
    if w.tiers and (account.tier or "") not in w.tiers:
        return False
    if w.min_arr is not None and (account.arr is None or account.arr < w.min_arr):
        return False
    return not (w.max_arr is not None and (account.arr is None or account.arr > w.max_arr))


def assign_scorecards(config: ScoringConfig, accounts: list[AccountRow]) -> np.ndarray:
    """Index of the scorecard for each account: the first whose ``when`` matches, else the last one."""
    last = len(config.scorecards) - 1
    out = np.full(len(accounts), last, dtype=int)
    for pos, acc in enumerate(accounts):
        for i, card in enumerate(config.scorecards):
            if matches(card, acc):
                out[pos] = i
                break
    return out


@dataclass
class CardResult:
    """One scorecard over its accounts: rows are accounts (``positions`` in the frame), columns are measures."""

    card: Scorecard
    positions: np.ndarray
    raw: list[np.ndarray | list[str | None]]  # per measure, the raw values of these accounts
    points: np.ndarray  # after the missing-data policy; NaN where skipped
    has_data: np.ndarray  # bool
    shares: np.ndarray  # nominal share per measure (sums to 1)
    weights: np.ndarray  # effective weight per account and measure (rows sum to 1, or 0 with nothing used)
    score: np.ndarray  # 0-100
    coverage: np.ndarray  # 0-1

    @cached_property
    def share_list(self) -> list[float]:
        return [float(x) for x in self.shares]


def _missing_points(m: Measure) -> float:
    return {"skip": np.nan, "neutral": NEUTRAL_POINTS, "worst": 0.0}[m.missing]


def apply_scorecard(card: Scorecard, frame: SignalFrame, positions: np.ndarray) -> CardResult:
    """Score the accounts at ``positions`` with ``card``: points per measure, re-weighted over what has data."""
    n, k = len(positions), len(card.measures)
    points = np.full((n, k), np.nan)
    has_data = np.zeros((n, k), dtype=bool)
    raws: list[np.ndarray | list[str | None]] = []
    for j, m in enumerate(card.measures):
        raw: np.ndarray | list[str | None]
        if m.signal in frame.categories:
            cats = frame.categories[m.signal]
            raw = [cats[int(p)] for p in positions]
        else:
            raw = frame.values[m.signal][positions]
        raws.append(raw)
        pts = normalize(raw, m.normalization)
        known = ~np.isnan(pts)
        has_data[:, j] = known
        points[:, j] = np.where(known, pts, _missing_points(m))
    shares = nominal_shares(card)
    used = ~np.isnan(points)
    weights = np.where(used, shares, 0.0)
    total = weights.sum(axis=1, keepdims=True)
    weights = np.divide(weights, total, out=np.zeros_like(weights), where=total > 0)
    score = np.where(total[:, 0] > 0, (np.nan_to_num(points) * weights).sum(axis=1), NEUTRAL_POINTS)
    coverage = (has_data * shares).sum(axis=1)
    return CardResult(card, positions, raws, points, has_data, shares, weights, score, coverage)
