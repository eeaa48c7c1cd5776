"""score_accounts end to end on the small book: figures, history rows, trend, hysteresis, override, confidence."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import Engine, select, update

from core.config.scoring import ScoringConfig
from scoring.engine import score_accounts
from store.models import Account, ScoreHistory
from tests.scoring.conftest import T

CONFIG = ScoringConfig()


def _history(engine: Engine) -> list[ScoreHistory]:
    from sqlalchemy.orm import Session

    with Session(engine) as session:
        return list(session.scalars(select(ScoreHistory).order_by(ScoreHistory.as_of, ScoreHistory.account_id)))


def test_scores_bands_and_flags_are_the_same_on_every_backend(small_book: Engine) -> None:
    result = score_accounts(small_book, CONFIG, run_id="run-1", as_of=T)
    a, b = result.accounts
    assert (a.name, a.score, a.band, a.coverage, a.low_confidence) == ("Acme Corp", 46.51, "yellow", 0.9833, False)
    assert (a.thread_count, a.relationship_capital, a.days_to_renewal) == (2, 28.7, 120)
    assert a.flags == {"single_threaded": False, "lonely_client": False, "champion_gone": False,
                       "expansion_signal": True}
    # Beta has data for 27.5% of the weight: two-way touch 150d (0 points, 6.67%), no touches (0, 3.33%),
    # capital 6.26 (13.9 points, 6.67%), no engaged contact (0, 3.33%), no tickets (100, 7.5%).
    assert b.score == pytest.approx((6.667 * (6.26 / 45 * 100) + 7.5 * 100) / 27.5, abs=0.05)
    assert (b.band, b.coverage, b.low_confidence) == ("red", 0.275, True)
    assert b.drivers == ("31: no two-way touch in 150d; relationship capital 6/100; 0 touches in 90d; champion Dee "
                         "Mgr stopped engaging; lonely client; 0 engaged contacts; low confidence (28% of weight "
                         "has data)")
    assert result.band_counts == {"red": 1, "yellow": 1, "green": 0}
    assert result.movers == []


def test_a_run_writes_one_history_row_per_account_with_every_measure(small_book: Engine) -> None:
    score_accounts(small_book, CONFIG, run_id="run-1", as_of=T)
    rows = _history(small_book)
    assert [(r.run_id, r.score, r.band, r.computed_band) for r in rows] == [
        ("run-1", 46.51, "yellow", "yellow"), ("run-1", 30.65, "red", "red")]
    a = rows[0]
    assert [m["name"] for m in a.measures] == [m.name for m in CONFIG.scorecards[0].measures]
    nps = next(m for m in a.measures if m["name"] == "nps_latest")
    assert nps == {"name": "nps_latest", "signal": "nps_latest", "raw": 3.0, "points": pytest.approx(14.29, abs=0.01),
                   "weight": 0.06, "contribution": pytest.approx(0.8719, abs=0.01), "missing": False}
    assert sum(m["contribution"] for m in a.measures) == pytest.approx(a.score, abs=0.05)
    assert a.flags["expansion_signal"] == {"on": True, "reason": "intent surge 80 on expansion topics"}
    assert a.signals["days_overdue"] == 45.0
    assert (a.thread_count, a.trend_delta, a.direction, a.override_band) == (2, None, None, None)
    assert len(a.drivers) <= 255


def test_trend_compares_with_the_score_trend_days_ago_and_dry_runs_write_nothing(small_book: Engine) -> None:
    score_accounts(small_book, CONFIG, run_id="run-1", as_of=T - timedelta(days=30))
    later = score_accounts(small_book, CONFIG, run_id="run-2", as_of=T, persist=False)
    past = {r.account_id: r.score for r in _history(small_book)}
    for s in later.accounts:
        assert s.trend_delta == pytest.approx(s.score - past[s.account_id], abs=0.01)
        assert s.previous_band is not None
    assert len(_history(small_book)) == 2
    acme = later.accounts[0]
    assert acme.drivers.startswith(f"{acme.score:.0f} (") and "in 30d)" in acme.drivers


def test_a_band_held_by_hysteresis_then_released(small_book: Engine) -> None:
    config = CONFIG.model_copy(update={"bands": [
        CONFIG.bands[0].model_copy(update={"min_score": 0}),
        CONFIG.bands[1].model_copy(update={"min_score": 45}),  # Acme (46.51) sits 1.5 points above yellow
        CONFIG.bands[2].model_copy(update={"min_score": 70})]})
    score_accounts(small_book, config, run_id="r0", as_of=T)
    with small_book.begin() as conn:  # the last run had Acme red
        conn.execute(update(ScoreHistory).where(ScoreHistory.account_id == 1).values(computed_band="red", band="red"))
    held = score_accounts(small_book, config, run_id="r1", as_of=T, persist=False).accounts[0]
    assert (held.band, held.computed_band, held.previous_band) == ("red", "red", "red")
    released = score_accounts(small_book, config.model_copy(update={"hysteresis_points": 1.0}), run_id="r2",
                              as_of=T, persist=False).accounts[0]
    assert (released.band, released.previous_band) == ("yellow", "red")


def test_a_csm_override_sets_the_band_until_it_expires_and_the_summary_says_so(small_book: Engine) -> None:
    with small_book.begin() as conn:
        conn.execute(update(Account).where(Account.external_id == "001A")
                     .values(override_band="Green", override_until=date(2026, 6, 10)))
    during = score_accounts(small_book, CONFIG, run_id="r1", as_of=T).accounts[0]
    assert (during.band, during.computed_band) == ("green", "yellow")
    assert during.drivers.startswith("47: band set to green by a CSM until 2026-06-10; ")
    assert _history(small_book)[0].override_band == "green"
    after = score_accounts(small_book, CONFIG, run_id="r2", as_of=T + timedelta(days=10)).accounts[0]
    assert after.band == after.computed_band
    assert "CSM" not in after.drivers
    result = score_accounts(small_book, CONFIG, run_id="r3", as_of=T + timedelta(days=11), persist=False)
    assert result.movers == []


def test_mapped_custom_fields_score_as_numeric_and_categorical_signals(small_book: Engine) -> None:
    with small_book.begin() as conn:
        conn.execute(update(Account).where(Account.external_id == "001A")
                     .values(extra={"Customer_Tier__c": "Gold", "Usage_Score__c": "72.5"}))
        conn.execute(update(Account).where(Account.external_id == "001B").values(extra={"Customer_Tier__c": "Tin"}))
    config = ScoringConfig.model_validate({
        "custom_signals": {"customer_tier": {"field": "Customer_Tier__c", "kind": "categorical"},
                           "usage_score": {"field": "Usage_Score__c"}},
        "scorecards": [{"name": "custom", "measures": [
            {"name": "tier", "signal": "custom.customer_tier",
             "normalization": {"kind": "categorical", "points": {"gold": 100, "silver": 60}, "default": 20}},
            {"name": "usage_score", "signal": "custom.usage_score",
             "normalization": {"kind": "linear", "bad": 0, "good": 100}},
        ]}],
    })
    a, b = score_accounts(small_book, config, run_id="r1", as_of=T).accounts
    assert a.score == pytest.approx((100 + 72.5) / 2)
    assert a.coverage == 1.0
    assert (b.score, b.coverage) == (20.0, 0.5)  # Tin is not listed: the default; no usage score: skipped
    a_row = _history(small_book)[0]
    assert [(m["name"], m["raw"], m["points"]) for m in a_row.measures] == [
        ("tier", "Gold", 100.0), ("usage_score", 72.5, 72.5)]


def _stored(account: int, days_ago: float, score: float, band: str = "yellow") -> dict[str, object]:
    """A score_history row dated days_ago before T."""
    at = T - timedelta(days=days_ago)
    return {"run_id": f"r{score}", "account_id": account, "scored_at": at, "as_of": at, "scorecard": "default",
            "score": score, "band": band, "computed_band": band, "coverage": 1.0, "flags": {},
            "measures": {}, "signals": {}, "drivers": ""}


def test_history_gives_each_account_its_latest_score_at_or_before_each_moment(small_book: Engine) -> None:
    """Later rows are not seen, a tie on as_of goes to the row stored last, and the account filter holds."""
    from sqlalchemy import insert

    from scoring.engine import load_history

    row = _stored
    with small_book.begin() as conn:
        ids = conn.execute(select(Account.id).order_by(Account.id)).scalars().all()
        a, b, quiet = ids[0], ids[1], ids[2]
        conn.execute(insert(ScoreHistory), [
            row(a, 40, 50.0, "yellow"), row(a, 30, 55.0, "yellow"), row(a, 30, 56.0, "yellow"),  # a tie at 30 days
            row(a, 1, 80.0, "green"), row(a, -1, 99.0, "green"),  # after as_of: never seen
            row(b, 10, 30.0, "red"),
        ])
        history = load_history(conn, T, 30)
        assert {k: (v.score, v.band) for k, v in history.previous.items()} == {a: (80.0, "green"), b: (30.0, "red")}
        assert {k: v.score for k, v in history.trend_base.items()} == {a: 56.0}
        assert history.previous[a].as_of == T - timedelta(days=1)
        only_b = load_history(conn, T, 30, account_ids=[b, quiet])
        assert set(only_b.previous) == {b} and only_b.trend_base == {}


def test_retention_deletes_old_scores_but_keeps_each_accounts_latest(small_book: Engine) -> None:
    from sqlalchemy import insert

    from scoring.engine import prune_history

    with small_book.begin() as conn:
        a, b, c = conn.execute(select(Account.id).order_by(Account.id)).scalars().all()[:3]
        conn.execute(insert(ScoreHistory), [
            _stored(a, 500, 1.0), _stored(a, 450, 2.0), _stored(a, 10, 3.0),  # the two old ones go
            _stored(b, 500, 4.0),  # old, but b's latest: stays
            _stored(c, 500, 5.0), _stored(c, 500, 6.0),  # both c's latest (one moment): stay
        ])
    assert prune_history(small_book, T - timedelta(days=400), batch=1) == 2  # one row per transaction
    assert sorted(h.score for h in _history(small_book)) == [3.0, 4.0, 5.0, 6.0]
    assert prune_history(small_book, T - timedelta(days=400)) == 0


def test_a_run_prunes_history_past_the_configured_days_and_a_partial_run_does_not(small_book: Engine) -> None:
    from sqlalchemy import insert

    with small_book.begin() as conn:
        a = conn.execute(select(Account.id).order_by(Account.id)).scalars().first()
        assert a is not None
        conn.execute(insert(ScoreHistory), [_stored(a, 30, 10.0)])
    keep_all = CONFIG.model_copy(update={"history_keep_days": None})
    assert score_accounts(small_book, keep_all, run_id="r1", as_of=T).history_pruned == 0
    assert score_accounts(small_book, CONFIG, run_id="r2", as_of=T, account_ids=[a]).history_pruned == 0
    short = CONFIG.model_copy(update={"history_keep_days": 31})
    result = score_accounts(small_book, short, run_id="r3", as_of=T + timedelta(days=2))
    assert result.history_pruned == 1  # the 32-day-old row; r1 and r2 are newer than 31 days
    assert 10.0 not in {h.score for h in _history(small_book)}


def test_history_must_outlive_the_trend() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match=r"history_keep_days \(30\) must be more than trend_days \(30\)"):
        ScoringConfig(history_keep_days=30)
    assert ScoringConfig(history_keep_days=None).history_keep_days is None
