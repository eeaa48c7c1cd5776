"""Fit scorecard weights from outcomes and propose (never apply) a new scorecard.

The backtest's observations give, for each outcome, every measure's points as of N days before it. A
regularized (L2) logistic regression of churn on those points is fitted on a training split of accounts
(every outcome of one account falls on the same side), and held-out AUC is reported for the current weights,
the fitted model, and the proposed scorecard (the fitted coefficients turned into non-negative weights).
scikit-learn is an optional extra (``pip install crm-health-agent[calibrate]``).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from ruamel.yaml import YAML
from sqlalchemy import Engine

from core.config.scoring import Scorecard, ScoringConfig
from core.errors import ConfigError
from scoring.backtest import Observation, auc, collect_observations, undated

HELD_OUT_SHARE = 0.3
MIN_OUTCOMES = 20


@dataclass(frozen=True)
class WeightChange:
    measure: str
    current_share: float  # of the scorecard's weight, 0-1
    proposed_share: float
    coefficient: float  # change in log-odds of churn per 100 points of the measure


@dataclass
class CalibrationReport:
    scorecard: str
    train_outcomes: int
    held_out_outcomes: int
    held_out_churned: int
    auc_current: float | None
    auc_fitted: float | None
    auc_proposed: float | None
    weights: list[WeightChange]
    proposed: Scorecard
    yaml_text: str
    note: str
    output: Path | None = None
    current_attributes: int = 0  # outcomes scored with today's ARR, tier and renewal date (BacktestReport.undated)

    @property
    def improves(self) -> bool:
        return None not in (self.auc_current, self.auc_proposed) and self.auc_proposed > self.auc_current  # type: ignore[operator]

    def to_dict(self) -> dict[str, Any]:
        def r(v: float | None) -> float | None:
            return None if v is None else round(v, 4)

        return {
            "scorecard": self.scorecard, "train_outcomes": self.train_outcomes,
            "held_out_outcomes": self.held_out_outcomes, "held_out_churned": self.held_out_churned,
            "held_out_auc": {"current": r(self.auc_current), "fitted": r(self.auc_fitted),
                             "proposed": r(self.auc_proposed)},
            "improves": self.improves,
            "outcomes_with_current_attributes": self.current_attributes,
            "weights": [{"measure": w.measure, "current": r(w.current_share), "proposed": r(w.proposed_share),
                         "coefficient": r(w.coefficient)} for w in self.weights],
            "output": str(self.output) if self.output else None,
        }


def held_out(account_id: int) -> bool:
    """A stable, account-level split: about 30% of accounts are held out."""
    return (account_id * 2654435761 % 2**32) / 2**32 < HELD_OUT_SHARE


def _weighted_scores(points: np.ndarray, shares: np.ndarray) -> np.ndarray:
    """Scores from points (NaN = skipped) and nominal shares, re-weighted over the measures with points."""
    w = np.where(np.isnan(points), 0.0, shares)
    total = w.sum(axis=1, keepdims=True)
    w = np.divide(w, total, out=np.zeros_like(w), where=total > 0)
    return np.asarray(np.where(total[:, 0] > 0, (np.nan_to_num(points) * w).sum(axis=1), 50.0), dtype=float)


def _current_shares(card: Scorecard) -> np.ndarray:
    from scoring.scorecard import nominal_shares

    return nominal_shares(card)


def proposed_scorecard(card: Scorecard, shares: np.ndarray) -> Scorecard:
    """The scorecard with flat, fitted weights (percent, one decimal); measures fitted to 0 are left out."""
    data = card.model_dump(mode="json", exclude_none=True)
    data["groups"] = {}
    measures = []
    for m, share in zip(data["measures"], shares, strict=True):
        weight = round(float(share) * 100, 1)
        if weight > 0:
            m.pop("group", None)
            m["weight"] = weight
            measures.append(m)
    data["measures"] = measures
    data["name"] = card.name
    return Scorecard.model_validate(data)


def scorecard_yaml(cards: list[Scorecard], notes: list[str]) -> str:
    """A configuration file holding only the proposed scorecards (valid on its own: ``health-agent validate``)."""
    yaml = YAML()
    yaml.default_flow_style = False
    buf = io.StringIO()
    for note in notes:
        buf.write(f"# Proposed by `health-agent calibrate`: {note}.\n")
    buf.write("# Review it, then copy the scorecards into `scoring.scorecards` of your configuration by hand.\n")
    dumped = [card.model_dump(mode="json", exclude_none=True) for card in cards]
    yaml.dump({"version": 1, "scoring": {"scorecards": dumped}}, buf)
    return buf.getvalue()


def calibrate_scorecard(observations: list[Observation], card: Scorecard, *, c: float = 1.0) -> CalibrationReport:
    """Fit weights for one scorecard from its observations (each outcome's measure points)."""
    try:
        from sklearn.linear_model import LogisticRegression
    except ImportError:  # pragma: no cover - depends on the installed extras
        raise ConfigError("calibrate needs scikit-learn: pip install 'crm-health-agent[calibrate]'") from None
    obs = [o for o in observations if card.name in o.points]
    if len(obs) < MIN_OUTCOMES:
        raise ConfigError(f"scorecard {card.name!r}: {len(obs)} outcomes; calibrate needs at least {MIN_OUTCOMES}")
    points = np.array([o.points[card.name] for o in obs])
    y = np.array([o.outcome.churned for o in obs])
    test = np.array([held_out(o.outcome.account_id) for o in obs])
    train = ~test
    if len(set(y[train])) < 2 or len(set(y[test])) < 2:
        raise ConfigError("calibrate needs churned and renewed outcomes on both sides of the held-out split")
    # Skipped measures get the training mean, so they pull neither way.
    means = np.array([np.nanmean(col) if np.any(~np.isnan(col)) else 50.0 for col in points[train].T])
    x = np.where(np.isnan(points), means, points) / 100.0
    model = LogisticRegression(C=c, max_iter=1000)
    model.fit(x[train], y[train])
    coef = model.coef_[0]
    fitted_health = -model.decision_function(x[test])
    current = _current_shares(card)
    protective = np.clip(-coef, 0.0, None)
    proposed_shares = protective / protective.sum() if protective.sum() > 0 else current
    proposed = proposed_scorecard(card, proposed_shares)
    current_scores = np.array([o.scores[card.name] for o in obs])
    churn_test = list(y[test])
    auc_current = auc(list(current_scores[test]), churn_test)
    auc_fitted = auc(list(fitted_health), churn_test)
    auc_proposed = auc(list(_weighted_scores(points[test], proposed_shares)), churn_test)
    weights = [WeightChange(m.name, float(cs), float(ps), float(k))
               for m, cs, ps, k in zip(card.measures, current, proposed_shares, coef, strict=True)]
    note = (f"{card.name}: held-out AUC {auc_proposed or 0:.3f} against {auc_current or 0:.3f} for the current "
            f"weights, {int(test.sum())} held-out outcomes")
    return CalibrationReport(
        scorecard=card.name, train_outcomes=int(train.sum()), held_out_outcomes=int(test.sum()),
        held_out_churned=int(y[test].sum()), auc_current=auc_current, auc_fitted=auc_fitted,
        auc_proposed=auc_proposed, weights=weights, proposed=proposed,
        yaml_text=scorecard_yaml([proposed], [note]), note=note,
        current_attributes=undated(obs),
    )


def run_calibration(engine: Engine, config: ScoringConfig, days_before: int = 90,
                    output: Path | None = None) -> list[CalibrationReport]:
    """Calibrate every scorecard that has enough outcomes; write the proposals to ``output`` when given."""
    observations = collect_observations(engine, config, days_before)
    reports = []
    for card in config.scorecards:
        mine = [o for o in observations if o.assigned == card.name]
        if len(mine) >= MIN_OUTCOMES:
            reports.append(calibrate_scorecard(mine, card))
    if not reports:
        raise ConfigError(f"no scorecard has {MIN_OUTCOMES}+ renewal outcomes to calibrate on")
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        text = scorecard_yaml([r.proposed for r in reports], [r.note for r in reports])
        output.write_text(text, encoding="utf-8")
        for r in reports:
            r.output = output
    return reports
