"""Normalizations, missing-data policies, weights and coverage: exact points on small columns."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from core.config.scoring import (
    BooleanNormalization,
    CategoricalNormalization,
    LinearNormalization,
    PercentileNormalization,
    Scorecard,
    TieredNormalization,
)
from scoring.scorecard import apply_scorecard, assign_scorecards, nominal_shares, normalize
from scoring.signals import AccountRow, SignalFrame

NAN = float("nan")


def _pts(raw: list[float], norm: object) -> list[float]:
    return [round(float(x), 6) if not np.isnan(x) else NAN for x in normalize(np.array(raw, dtype=float), norm)]  # type: ignore[arg-type]


def test_linear_is_clamped_and_works_in_both_directions() -> None:
    higher_better = LinearNormalization(kind="linear", bad=2, good=9)
    assert _pts([0, 2, 5.5, 9, 12], higher_better) == [0, 0, 50, 100, 100]
    lower_better = LinearNormalization(kind="linear", bad=60, good=0)
    assert _pts([90, 60, 15, 0, -5], lower_better) == [0, 0, 75, 100, 100]


def test_missing_raw_values_stay_missing_under_every_numeric_normalization() -> None:
    for norm in (
        LinearNormalization(kind="linear", bad=0, good=1),
        TieredNormalization(kind="tiered", tiers=[{"at_least": 0, "points": 10}]),
        PercentileNormalization(kind="percentile"),
        BooleanNormalization(kind="boolean"),
    ):
        assert np.isnan(_pts([NAN], norm)[0])


def test_tiered_takes_the_last_tier_reached_and_below_under_the_first() -> None:
    norm = TieredNormalization(kind="tiered", below=5, tiers=[
        {"at_least": 1, "points": 40}, {"at_least": 3, "points": 70}, {"at_least": 10, "points": 100}])
    assert _pts([0, 1, 2.9, 3, 9.99, 10, 50], norm) == [5, 40, 40, 70, 70, 100, 100]


def test_percentile_ranks_within_the_segment_with_ties_counting_half() -> None:
    norm = PercentileNormalization(kind="percentile")
    assert _pts([10, 20, 20, 40, NAN], norm)[:4] == [0, 50, 50, 100]
    assert _pts([10, 20, 30], PercentileNormalization(kind="percentile", higher_is_better=False)) == [100, 50, 0]
    assert _pts([7], norm) == [50]


def test_boolean_and_categorical_maps() -> None:
    assert _pts([1, 0], BooleanNormalization(kind="boolean", true_points=0, false_points=100)) == [0, 100]
    cat = CategoricalNormalization(kind="categorical", points={"Strategic": 100, "At Risk": 0}, default=40)
    assert list(normalize(["strategic", "AT RISK", "other", None], cat)[:3]) == [100, 0, 40]
    assert np.isnan(normalize([None], cat)[0])


def _card(missing: str, groups: dict[str, float] | None = None) -> Scorecard:
    measures = [
        {"name": "nps", "signal": "nps_latest", "normalization": {"kind": "linear", "bad": 0, "good": 10},
         "weight": 3, "missing": missing, "group": "g1" if groups else None},
        {"name": "seats", "signal": "seat_utilization", "normalization": {"kind": "linear", "bad": 0, "good": 1},
         "weight": 1, "group": "g2" if groups else None},
    ]
    return Scorecard.model_validate({"name": "t", "groups": groups or {}, "measures": measures})


def _frame(nps: list[float], seats: list[float]) -> SignalFrame:
    accounts = [AccountRow(i, "salesforce", f"a{i}", f"A{i}", None, None, None, None, None, None, None)
                for i in range(len(nps))]
    return SignalFrame(datetime(2026, 1, 1, tzinfo=UTC), accounts,
                       {"nps_latest": np.array(nps, dtype=float), "seat_utilization": np.array(seats, dtype=float)})


@pytest.mark.parametrize(
    ("missing", "score", "coverage"),
    [("skip", 80.0, 0.25), ("neutral", 57.5, 0.25), ("worst", 20.0, 0.25)],
)
def test_missing_data_policies_reweight_neutralize_or_punish(missing: str, score: float, coverage: float) -> None:
    # Account 0 has both measures (nps 6 -> 60 points, seats 0.8 -> 80); account 1 has no NPS.
    result = apply_scorecard(_card(missing), _frame([6, NAN], [0.8, 0.8]), np.array([0, 1]))
    assert result.score[0] == pytest.approx(0.75 * 60 + 0.25 * 80)
    assert (result.score[1], result.coverage[1]) == (pytest.approx(score), pytest.approx(coverage))
    assert result.coverage[0] == pytest.approx(1.0)


def test_group_weights_split_before_measure_weights() -> None:
    card = _card("skip", {"g1": 1, "g2": 3})
    assert list(nominal_shares(card)) == pytest.approx([0.25, 0.75])
    result = apply_scorecard(card, _frame([6], [0.8]), np.array([0]))
    assert result.score[0] == pytest.approx(0.25 * 60 + 0.75 * 80)


def test_an_account_without_any_data_scores_neutral_with_zero_coverage() -> None:
    result = apply_scorecard(_card("skip"), _frame([NAN], [NAN]), np.array([0]))
    assert (result.score[0], result.coverage[0]) == (50.0, 0.0)


def test_the_first_matching_scorecard_is_chosen_else_the_last() -> None:
    ent = Scorecard.model_validate({"name": "ent", "when": {"tiers": ["Enterprise"], "min_arr": 100_000},
                                    "measures": _card("skip").model_dump()["measures"]})
    rest = _card("skip")
    from core.config.scoring import ScoringConfig

    config = ScoringConfig(scorecards=[ent, rest])
    accounts = [AccountRow(1, "s", "1", None, None, "enterprise", 200_000.0, None, None, None, None),
                AccountRow(2, "s", "2", None, None, "enterprise", 50_000.0, None, None, None, None),
                AccountRow(3, "s", "3", None, None, None, None, None, None, None, None)]
    assert list(assign_scorecards(config, accounts)) == [0, 1, 1]
