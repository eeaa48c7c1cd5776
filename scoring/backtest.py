"""Backtest scorecards against real outcomes: score each account N days before its renewal closed, using only
data dated before that moment, and measure how well the score ranked the churns (AUC, lift, calibration).

Outcomes are closed renewal deals (won = renewed, lost = churned) and a mapped churn field on the account
(``churned`` with ``churned_at``). Scoring moments are snapped back to the Monday before (00:00 UTC), so outcomes
share moments and the backtest runs one signal pass per week of history; a snapped moment is only earlier,
never later, than ``days_before`` before the outcome.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import Engine, Table, and_, not_, select

from core.config.scoring import PercentileNormalization, Scorecard, ScoringConfig
from scoring.scorecard import CardResult, apply_scorecard, assign_scorecards
from scoring.signals import compute_signals
from store.models import Account, Deal

ACC: Table = Account.__table__  # type: ignore[assignment]
DEAL: Table = Deal.__table__  # type: ignore[assignment]


@dataclass(frozen=True)
class Outcome:
    account_id: int
    outcome_date: date
    churned: bool
    how: str  # renewal_won | renewal_lost | churn_field


@dataclass
class Observation:
    """One outcome scored as of ``as_of``, by every scorecard; ``points`` per scorecard, per measure (NaN = skipped)."""

    outcome: Outcome
    as_of: datetime
    tier: str | None
    assigned: str
    scores: dict[str, float]
    points: dict[str, np.ndarray]
    has_data: dict[str, np.ndarray]
    attributes_dated: bool = True  # ARR, tier and renewal date as they were at as_of (else as first synced)


def undated(observations: Sequence[Observation]) -> int:
    """Outcomes scored with today's ARR, tier and renewal date: the store has no snapshot of them that old."""
    return sum(1 for o in observations if not o.attributes_dated)


def load_outcomes(engine: Engine) -> list[Outcome]:
    """Closed renewals (won/lost) and mapped churn dates, oldest first; one outcome per account and date."""
    out: dict[tuple[int, date], Outcome] = {}
    with engine.connect() as conn:
        renewals = select(ACC.c.id, DEAL.c.close_date, DEAL.c.is_won).select_from(
            DEAL.join(ACC, and_(ACC.c.source == DEAL.c.source, ACC.c.external_id == DEAL.c.account_external_id))
        ).where(DEAL.c.kind == "renewal", DEAL.c.is_closed, DEAL.c.close_date.is_not(None), not_(DEAL.c.is_deleted))
        for r in conn.execute(renewals):
            key = (r.id, r.close_date)
            lost = not r.is_won
            if key not in out or lost:
                out[key] = Outcome(r.id, r.close_date, lost, "renewal_lost" if lost else "renewal_won")
        churns = select(ACC.c.id, ACC.c.churned_at).where(ACC.c.churned.is_(True), ACC.c.churned_at.is_not(None))
        for c in conn.execute(churns):
            if not any(k[0] == c.id and abs((k[1] - c.churned_at).days) <= 31 and o.churned for k, o in out.items()):
                out[(c.id, c.churned_at)] = Outcome(c.id, c.churned_at, True, "churn_field")
    return sorted(out.values(), key=lambda o: (o.outcome_date, o.account_id))


def scoring_moment(outcome_date: date, days_before: int) -> datetime:
    """``days_before`` days before the outcome, snapped back to Monday 00:00 UTC."""
    d = outcome_date - timedelta(days=days_before)
    d -= timedelta(days=d.weekday())
    return datetime(d.year, d.month, d.day, tzinfo=UTC)


def needs_portfolio(config: ScoringConfig) -> bool:
    """True when a score depends on other accounts (percentile normalization, the lonely-client flag)."""
    return any(
        isinstance(m.normalization, PercentileNormalization) or m.signal == "lonely_client"
        for card in config.scorecards
        for m in card.measures
    )


def collect_observations(engine: Engine, config: ScoringConfig, days_before: int = 90,
                         outcomes: Sequence[Outcome] | None = None) -> list[Observation]:
    """Score every outcome's account as of its scoring moment with every scorecard (one signal pass per moment)."""
    outcomes = list(outcomes) if outcomes is not None else load_outcomes(engine)
    by_moment: dict[datetime, list[Outcome]] = defaultdict(list)
    for o in outcomes:
        by_moment[scoring_moment(o.outcome_date, days_before)].append(o)
    portfolio = needs_portfolio(config)
    observations: list[Observation] = []
    for moment in sorted(by_moment):
        # Accounts that existed then, deleted ones too (a churned account may be deleted today); only the
        # outcomes' accounts unless a measure ranks accounts against the portfolio.
        ids = None if portfolio else sorted({o.account_id for o in by_moment[moment]})
        with engine.connect() as conn:
            frame = compute_signals(conn, config, moment, include_deleted=True, account_ids=ids, attributes_as_of=True)
        pos = {a.id: i for i, a in enumerate(frame.accounts)}
        assignment = assign_scorecards(config, frame.accounts)
        results: list[CardResult] = [apply_scorecard(card, frame, np.arange(len(frame))) for card in config.scorecards]
        for o in by_moment[moment]:
            p = pos.get(o.account_id)
            if p is None:
                continue  # the account did not exist yet at the moment
            observations.append(Observation(
                outcome=o, as_of=moment, tier=frame.accounts[p].tier,
                assigned=config.scorecards[int(assignment[p])].name,
                scores={r.card.name: float(r.score[p]) for r in results},
                points={r.card.name: r.points[p].copy() for r in results},
                has_data={r.card.name: r.has_data[p].copy() for r in results},
                attributes_dated=frame.accounts[p].attributes_dated,
            ))
    return observations


def auc(scores: Sequence[float], churned: Sequence[bool]) -> float | None:
    """Probability that a churned account scored lower than a renewed one (ties half); None without both kinds."""
    s = np.asarray(scores, dtype=float)
    y = np.asarray(churned, dtype=bool)
    pos, neg = s[y], s[~y]
    if pos.size == 0 or neg.size == 0:
        return None
    order = np.argsort(np.concatenate([pos, neg]), kind="mergesort")
    values = np.concatenate([pos, neg])[order]
    ranks = np.empty(values.size)
    i = 0
    while i < values.size:  # average ranks over ties
        j = i
        while j + 1 < values.size and values[j + 1] == values[i]:
            j += 1
        ranks[i : j + 1] = (i + j) / 2.0 + 1.0
        i = j + 1
    full = np.empty(values.size)
    full[order] = ranks
    rank_sum_pos = full[: pos.size].sum()
    # AUC of "higher score = renewed": U statistic of the renewed group.
    u_pos = rank_sum_pos - pos.size * (pos.size + 1) / 2.0
    return float(1.0 - u_pos / (pos.size * neg.size))


def riskiest_decile_lift(scores: Sequence[float], churned: Sequence[bool]) -> float | None:
    """Churn rate in the lowest-scored 10% over the overall churn rate."""
    s = np.asarray(scores, dtype=float)
    y = np.asarray(churned, dtype=float)
    if s.size == 0 or y.mean() == 0:
        return None
    k = max(1, math.ceil(s.size / 10))
    riskiest = np.argsort(s, kind="mergesort")[:k]
    return float(y[riskiest].mean() / y.mean())


@dataclass(frozen=True)
class CalibrationRow:
    low: float
    high: float
    accounts: int
    mean_score: float
    churn_rate: float


def calibration_table(scores: Sequence[float], churned: Sequence[bool], bins: int = 5) -> list[CalibrationRow]:
    """Observed churn rate by score range (equal-width bins over 0-100)."""
    s = np.asarray(scores, dtype=float)
    y = np.asarray(churned, dtype=float)
    edges = np.linspace(0, 100, bins + 1)
    rows = []
    for i in range(bins):
        mask = (s >= edges[i]) & ((s < edges[i + 1]) if i < bins - 1 else (s <= edges[i + 1]))
        if mask.any():
            rows.append(CalibrationRow(float(edges[i]), float(edges[i + 1]), int(mask.sum()), float(s[mask].mean()),
                                       float(y[mask].mean())))
    return rows


@dataclass
class SegmentReport:
    name: str
    outcomes: int
    churned: int
    auc: float | None
    lift: float | None
    calibration: list[CalibrationRow]

    def to_dict(self) -> dict[str, Any]:
        return {
            "segment": self.name, "outcomes": self.outcomes, "churned": self.churned,
            "auc": None if self.auc is None else round(self.auc, 4),
            "riskiest_decile_lift": None if self.lift is None else round(self.lift, 3),
            "calibration": [
                {"scores": f"{c.low:.0f}-{c.high:.0f}", "accounts": c.accounts, "mean_score": round(c.mean_score, 1),
                 "churn_rate": round(c.churn_rate, 3)}
                for c in self.calibration
            ],
        }


def segment_report(name: str, scores: Sequence[float], churned: Sequence[bool]) -> SegmentReport:
    return SegmentReport(name, len(scores), int(sum(churned)), auc(scores, churned),
                         riskiest_decile_lift(scores, churned), calibration_table(scores, churned))


@dataclass
class BacktestReport:
    days_before: int
    overall: SegmentReport  # each account scored by its assigned scorecard
    by_segment: list[SegmentReport]
    by_scorecard: list[SegmentReport]  # every scorecard applied to every outcome
    observations: list[Observation] = field(repr=False, default_factory=list)

    @property
    def undated(self) -> int:
        return undated(self.observations)

    def to_dict(self) -> dict[str, Any]:
        return {
            "days_before": self.days_before,
            "outcomes_with_current_attributes": self.undated,
            "overall": self.overall.to_dict(),
            "by_segment": [s.to_dict() for s in self.by_segment],
            "by_scorecard": [s.to_dict() for s in self.by_scorecard],
        }


def report_from(observations: list[Observation], scorecards: Sequence[Scorecard], days_before: int) -> BacktestReport:
    churned = [o.outcome.churned for o in observations]
    overall = segment_report("all", [o.scores[o.assigned] for o in observations], churned)
    tiers = sorted({o.tier or "(no tier)" for o in observations})
    by_segment = []
    for tier in tiers:
        sub = [o for o in observations if (o.tier or "(no tier)") == tier]
        by_segment.append(segment_report(f"tier={tier}", [o.scores[o.assigned] for o in sub],
                                         [o.outcome.churned for o in sub]))
    by_card = [segment_report(f"scorecard={c.name}", [o.scores[c.name] for o in observations], churned)
               for c in scorecards]
    return BacktestReport(days_before, overall, by_segment, by_card, observations)


def run_backtest(engine: Engine, config: ScoringConfig, days_before: int = 90,
                 segment: str | None = None) -> BacktestReport:
    """Backtest the configured scorecards; ``segment`` limits to one tier (``enterprise`` or ``tier=enterprise``)."""
    outcomes = load_outcomes(engine)
    if segment:
        wanted = segment.split("=", 1)[-1].strip().lower()
        with engine.connect() as conn:  # lowercased as load_accounts does (SQL's lower() folds only A-Z on SQLite)
            in_segment = {id_ for id_, tier in conn.execute(select(ACC.c.id, ACC.c.tier).where(ACC.c.tier.is_not(None)))
                          if tier.lower() == wanted}
        outcomes = [o for o in outcomes if o.account_id in in_segment]
    return report_from(collect_observations(engine, config, days_before, outcomes), config.scorecards, days_before)
