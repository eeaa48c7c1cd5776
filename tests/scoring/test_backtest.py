"""The default sandbox book through the loader: backtest AUC of the shipped scorecard, and calibration."""

from __future__ import annotations

import io
import json
import sqlite3
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console
from sqlalchemy import Engine, func, select

from agent.commands import backtest as backtest_command
from agent.commands import calibrate as calibrate_command
from agent.context import CommandContext
from agent.settings import Settings
from core.config.loader import parse_config
from core.config.scoring import ScoringConfig
from sandbox.book import Book, build_book
from sandbox.ids import salesforce_id
from sandbox.store_loader import load_book
from scoring.backtest import Observation, auc, collect_observations, report_from, riskiest_decile_lift, scoring_moment
from scoring.calibrate import calibrate_scorecard, held_out
from store.db import make_engine
from store.migrate import upgrade
from store.models import AccountLink, Activity, Ticket

ANCHOR = date(2026, 11, 1)
CONFIG = ScoringConfig()


@pytest.fixture(scope="module")
def book(tmp_path_factory: pytest.TempPathFactory) -> Book:
    return build_book(300, 7, anchor=ANCHOR, cache_dir=tmp_path_factory.mktemp("book"))


@pytest.fixture(scope="module")
def loaded(book: Book, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Engine, dict[str, int]]]:
    engine = make_engine(f"sqlite:///{tmp_path_factory.mktemp('store') / 'store.db'}")
    upgrade(engine)
    counts = load_book(book, engine)
    yield engine, counts
    engine.dispose()


@pytest.fixture(scope="module")
def observations(loaded: tuple[Engine, dict[str, int]]) -> list[Observation]:
    return collect_observations(loaded[0], CONFIG, days_before=90)


def test_the_loader_maps_every_book_row_and_links_non_crm_records(book: Book,
                                                                  loaded: tuple[Engine, dict[str, int]]) -> None:
    engine, counts = loaded
    with sqlite3.connect(book.path) as raw:
        for table in ("accounts", "users", "contacts", "activities", "deals", "tickets", "survey_responses",
                      "intent_signals", "usage", "invoices"):
            assert counts[table] == raw.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0], table
        meeting_n, = raw.execute("SELECT n FROM activities WHERE kind = 'meeting' ORDER BY n LIMIT 1").fetchone()
        urgent = raw.execute("SELECT COUNT(*) FROM tickets WHERE priority IN ('urgent', 'high')").fetchone()[0]
        usage_rows = raw.execute("SELECT COUNT(*) FROM usage u JOIN accounts a ON a.n = u.account_n "
                                 "WHERE a.is_deleted = 0").fetchone()[0]
    with engine.connect() as conn:
        meeting = conn.execute(select(Activity.direction, Activity.activity_type)
                               .where(Activity.external_id == salesforce_id("Event", meeting_n))).one()
        assert tuple(meeting) == ("two_way", "meeting")
        assert conn.execute(select(func.count()).where(Ticket.priority.in_(["p1", "p2"]))).scalar_one() == urgent
        linked_usage = conn.execute(select(func.count()).where(AccountLink.entity == "usage_metrics")).scalar_one()
        assert linked_usage == usage_rows
    assert counts["account_links"] > counts["usage"]


def test_the_shipped_scorecard_predicts_churn_with_auc_of_at_least_0_80(observations: list[Observation]) -> None:
    report = report_from(observations, CONFIG.scorecards, 90)
    print(json.dumps(report.to_dict()["overall"]))
    assert report.overall.outcomes > 200 and report.overall.churned > 20
    assert report.overall.auc is not None and report.overall.auc >= 0.80
    assert report.overall.lift is not None and report.overall.lift >= 2.0
    assert {s.name for s in report.by_segment} == {"tier=enterprise", "tier=mid_market", "tier=smb"}
    rates = [c.churn_rate for c in report.overall.calibration]
    assert rates[0] > rates[-1]


def test_every_outcome_is_scored_at_least_days_before_it_and_on_a_monday(observations: list[Observation]) -> None:
    for o in observations:
        assert (o.outcome.outcome_date - o.as_of.date()).days >= 90
        assert o.as_of.weekday() == 0 and o.as_of == scoring_moment(o.outcome.outcome_date, 90)


def test_calibration_improves_held_out_auc_and_proposes_a_valid_scorecard(observations: list[Observation]) -> None:
    report = calibrate_scorecard(observations, CONFIG.scorecards[0])
    print(json.dumps(report.to_dict()["held_out_auc"]))
    assert report.auc_proposed is not None and report.auc_current is not None
    assert report.auc_proposed > report.auc_current
    assert report.improves
    assert abs(sum(w.proposed_share for w in report.weights) - 1.0) < 1e-9
    proposed = parse_config(report.yaml_text, file="proposed.yaml").scoring.scorecards[0]
    assert proposed.name == "default" and not proposed.groups
    assert len({o.outcome.account_id for o in observations if held_out(o.outcome.account_id)}) > 30
    # The sandbox book is first synced after its outcomes: every one is scored with today's ARR, tier and renewal
    # date, and the report says so.
    undated = sum(1 for o in observations if not o.attributes_dated)
    assert report.current_attributes == undated == report.train_outcomes + report.held_out_outcomes
    assert report.to_dict()["outcomes_with_current_attributes"] == undated


def test_the_sandbox_configuration_keeps_the_scorecard_with_the_sandbox_intent_topics() -> None:
    sandbox = parse_config((Path(__file__).resolve().parents[2] / "config" / "sandbox.yaml").read_text(),
                           env={}).scoring
    assert sandbox.scorecards == CONFIG.scorecards
    assert sandbox.intent.expansion_topics != CONFIG.intent.expansion_topics


def test_auc_and_lift_on_known_rankings() -> None:
    assert auc([10, 20, 30, 40], [True, True, False, False]) == 1.0
    assert auc([10, 20, 30, 40], [False, False, True, True]) == 0.0
    assert auc([10, 10, 30, 30], [True, False, True, False]) == 0.5
    assert auc([1, 2], [False, False]) is None
    scores = list(np.arange(20, dtype=float))
    churned = [i < 2 for i in range(20)]  # the two lowest of twenty churned: 10% overall, 100% in the bottom decile
    assert riskiest_decile_lift(scores, churned) == pytest.approx(10.0)


def _ctx(engine: Engine, tmp_path: Path, as_json: bool) -> tuple[CommandContext, io.StringIO]:
    config = tmp_path / "agent.yaml"
    config.write_text("version: 1\n")
    out = io.StringIO()
    return CommandContext(settings=Settings(), config_path=config, database_url=str(engine.url), as_json=as_json,
                          console=Console(file=out, width=160)), out


def test_the_backtest_command_reports_auc_per_segment(loaded: tuple[Engine, dict[str, int]], tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    ctx, _ = _ctx(loaded[0], tmp_path, as_json=True)
    assert backtest_command.run(ctx, days_before=90, segment="tier=enterprise") == 0
    data = json.loads(capsys.readouterr().out)
    assert [s["segment"] for s in data["by_segment"]] == ["tier=enterprise"]
    assert data["outcomes_with_current_attributes"] == data["overall"]["outcomes"]  # first synced after them
    text_ctx, out = _ctx(loaded[0], tmp_path, as_json=False)
    assert backtest_command.run(text_ctx, days_before=90, segment="tier=enterprise") == 0
    assert (f"Note: {data['overall']['outcomes']} of {data['overall']['outcomes']} outcomes were scored with today's "
            "ARR, tier and renewal date") in " ".join(out.getvalue().split())
    assert data["overall"]["outcomes"] == data["by_segment"][0]["outcomes"] > 0


def test_the_calibrate_command_writes_a_proposal_and_changes_nothing(loaded: tuple[Engine, dict[str, int]],
                                                                     tmp_path: Path) -> None:
    ctx, out = _ctx(loaded[0], tmp_path, as_json=False)
    before = (tmp_path / "agent.yaml").read_text()
    assert calibrate_command.run(ctx, output=tmp_path / "proposed.yaml", days_before=90) == 0
    assert "held-out AUC: current" in out.getvalue()
    assert f"proposal written to {tmp_path / 'proposed.yaml'}; nothing was applied." in out.getvalue()
    assert "outcomes were scored with today's ARR, tier and renewal date" in " ".join(out.getvalue().split())
    assert parse_config((tmp_path / "proposed.yaml").read_text()).scoring.scorecards[0].name == "default"
    assert (tmp_path / "agent.yaml").read_text() == before


def test_a_runs_results_are_what_explain_shows_for_every_account(loaded: tuple[Engine, dict[str, int]]) -> None:
    """The run's path (``summaries``: history rows, no per-measure phrasing) and ``detail`` agree on every account
    of the default book: score, band, flags, drivers, and each measure's raw value, points and contribution."""
    from datetime import UTC, datetime

    from scoring.engine import History, score_frame
    from scoring.signals import compute_signals

    engine = loaded[0]
    as_of = datetime(2026, 10, 1, tzinfo=UTC)
    with engine.connect() as conn:
        frame = compute_signals(conn, CONFIG, as_of)
    fs = score_frame(frame, CONFIG, History({}, {}))
    dry = fs.summaries(range(len(frame)), "run-x", as_of, rows=False)  # a dry run builds no history rows
    assert fs.detail(len(frame) - 1).score == dry[-1][0]  # detail after a dry pass rebuilds full columns
    summaries = fs.summaries(range(len(frame)), "run-x", as_of)
    assert [score for score, _ in dry] == [score for score, _ in summaries]
    assert all(row == {} for _, row in dry)
    assert len(summaries) == len(frame) > 250
    lowered = 0
    for pos, (score, row) in enumerate(summaries):
        detail = fs.detail(pos)
        assert score == detail.score
        assert row["measures"] == [
            {"name": m.name, "signal": m.signal, "raw": m.raw, "points": None if m.points is None else round(m.points, 2),
             "weight": round(m.weight, 4), "contribution": round(m.contribution, 2), "missing": m.missing}
            for m in detail.measures
        ]
        # Stored signals are rounded to 4 digits by numpy, which may differ from round() in the last digit.
        assert row["signals"] == pytest.approx({k: v for k, v in detail.signals.items() if v is not None}, abs=1e-4)
        assert row["flags"] == {n: {"on": f.on, "reason": f.reason} for n, f in detail.flags.items()}
        assert (row["score"], row["band"], row["drivers"]) == (score.score, score.band, score.drivers)
        lowered += score.drivers.count(";") > 0
    assert lowered > len(frame) // 2  # most accounts have drivers to show


def test_signals_in_shares_equal_one_process_on_the_default_book(loaded: tuple[Engine, dict[str, int]]) -> None:
    """Every family, champions and explained contacts: three worker shares give the very frame one process
    gives."""
    from datetime import UTC, datetime

    from scoring.signals import compute_signals
    from tests.scoring.test_partitions import assert_same_frame

    engine = loaded[0]
    as_of = datetime(2026, 10, 1, tzinfo=UTC)
    with engine.connect() as conn:
        one = compute_signals(conn, CONFIG, as_of)
        detail = [a.id for a in one.accounts[::50]]
        one = compute_signals(conn, CONFIG, as_of, detail_for=detail)
        shared = compute_signals(conn, CONFIG, as_of, detail_for=detail, workers=3)
    assert len(one.accounts) > 250
    assert len(one.champions) > 100 and len(one.contacts) == len(detail)
    assert_same_frame(one, shared)


def test_a_segment_matches_tiers_in_any_case_beyond_a_z_too(store_engine: Engine) -> None:
    """The segment is compared with the account's tier lowercased as scorecards see it (Python's lower(), every
    letter), not by SQL's lower(), which on SQLite folds only A-Z."""
    from core.records import AccountRecord, DealKind, DealRecord
    from scoring.backtest import run_backtest
    from tests.scoring.conftest import SF, store

    store(store_engine,
          *[AccountRecord(source=SF, external_id=f"00{k}", name=f"A{k}", tier=tier, source_created_at=date(2024, 1, 1))
            for k, tier in ((1, "ÉLITE"), (2, "élite"), (3, "smb"))],
          *[DealRecord(source=SF, external_id=f"d{k}", account_external_id=f"00{k}", kind=DealKind.RENEWAL,
                       is_closed=True, is_won=k != 1, close_date=date(2026, 3, 2)) for k in (1, 2, 3)])
    assert run_backtest(store_engine, ScoringConfig(), segment="tier=Élite").overall.outcomes == 2
    assert run_backtest(store_engine, ScoringConfig(), segment="smb").overall.outcomes == 1


def test_the_backtest_sees_arr_tier_and_renewal_date_as_they_were_before_the_outcome(store_engine: Engine) -> None:
    """A CRM that zeroes ARR and drops the tier once an account churns must not tell the backtest the outcome; an
    account the store first saw after the scoring moment is scored with today's values, and the report says so."""
    from datetime import UTC, datetime

    from core.records import AccountRecord, DealKind, DealRecord
    from scoring.backtest import run_backtest
    from scoring.signals import compute_signals
    from store.upsert import upsert_records
    from tests.scoring.conftest import SF, store

    def sync(ext: str, edited: datetime, **fields: object) -> None:
        with store_engine.begin() as conn:
            upsert_records(conn, [AccountRecord(source=SF, external_id=ext, name=ext, source_updated_at=edited,
                                                source_created_at=datetime(2024, 1, 1, tzinfo=UTC), **fields)])

    sync("001C", datetime(2025, 1, 1, tzinfo=UTC), arr=120_000.0, tier="enterprise", renewal_date=date(2026, 4, 30))
    sync("001C", datetime(2026, 4, 1, tzinfo=UTC), arr=0.0, tier=None, renewal_date=None)  # churned
    sync("001N", datetime(2026, 4, 1, tzinfo=UTC), arr=50_000.0, tier="smb")  # first seen after the moment
    store(store_engine, *[DealRecord(source=SF, external_id=f"d{x}", account_external_id=x, kind=DealKind.RENEWAL,
                                     is_closed=True, is_won=x == "001N", close_date=date(2026, 5, 4))
                          for x in ("001C", "001N")])
    moment = datetime(2026, 2, 2, tzinfo=UTC)  # 91 days before, snapped to Monday
    with store_engine.connect() as conn:
        then = compute_signals(conn, ScoringConfig(), moment, attributes_as_of=True)
        now = compute_signals(conn, ScoringConfig(), moment)
    assert [(a.arr, a.tier, a.renewal_date, a.attributes_dated) for a in then.accounts] == [
        (120_000.0, "enterprise", date(2026, 4, 30), True), (50_000.0, "smb", None, False)]
    assert (then.row(0)["arr"], then.row(0)["days_to_renewal"]) == (120_000.0, 87.0)
    assert (now.row(0)["arr"], now.row(0)["days_to_renewal"]) == (0.0, 91.0)  # today's: ARR zeroed, the deal's date
    report = run_backtest(store_engine, ScoringConfig(), days_before=90)
    assert [o.tier for o in report.observations] == ["enterprise", "smb"]
    assert (report.overall.outcomes, report.undated, report.to_dict()["outcomes_with_current_attributes"]) == (2, 1, 1)
