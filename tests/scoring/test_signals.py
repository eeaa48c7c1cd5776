"""Signals over the store: exact figures on the small book, on SQLite and PostgreSQL, and point-in-time."""

from __future__ import annotations

import math

import pytest
from sqlalchemy import Connection, Engine, event, text

from core.config.scoring import ScoringConfig
from scoring.signals import SignalFrame, compute_signals
from tests.scoring.conftest import T, add_future_rows

CONFIG = ScoringConfig()


def _frame(engine: Engine, **kwargs: object) -> SignalFrame:
    with engine.connect() as conn:
        return compute_signals(conn, CONFIG, T, **kwargs)  # type: ignore[arg-type]


def _by_name(frame: SignalFrame) -> dict[str, dict[str, float | None]]:
    return {a.name or "": frame.row(i) for i, a in enumerate(frame.accounts)}


def test_every_family_gives_the_hand_worked_figures_for_account_a(small_book: Engine) -> None:
    a = _by_name(_frame(small_book))["Acme Corp"]
    expected = {
        "days_since_two_way_touch": 10.0, "touches_90d": 2.0, "meetings_90d": 1.0,
        "tickets_30d": 1.0, "tickets_90d": 3.0, "open_high_priority_tickets": 1.0, "escalations_90d": 1.0,
        "median_resolution_hours": 60.0,
        "nps_latest": 3.0, "nps_180d": -100.0, "csat_avg_180d": 4.0, "detractor_90d": 1.0,
        "seat_utilization": 0.4, "usage_trend": -0.2, "feature_adoption": 0.5,
        "days_overdue": 45.0, "overdue_share_of_arr": 0.25, "failed_payments_180d": 2.0,
        "intent_expansion": 80.0, "intent_risk": None,
        "thread_count": 2.0, "seniority_levels_engaged": 2.0, "departments_engaged": 2.0,
        "exec_sponsor_engaged": 1.0, "exec_meeting_180d": 1.0, "days_since_exec_touch": 10.0,
        "champion_gone": 0.0, "single_threaded": 0.0, "lonely_client": 0.0, "expansion_signal": 1.0,
        "days_to_renewal": 120.0, "tenure_days": 882.0, "arr": 120_000.0,
    }
    got = {k: a[k] for k in expected}
    assert got == pytest.approx(expected, abs=1e-9)
    # c1: CEO, one meeting 10d ago, 1 of 12 buckets: 1.0 x (.35 x .5^(10/45) + .2 x (1-e^(-1/8)) + .15/12
    #     + .3 x (1-e^(-1/4))) = 0.402396. c2: engineer (0.35), inbound email 40d ago, outbound 100d ago:
    #     0.35 x (.35 x .5^(40/45) + .2 x (1-e^(-2/8)) + .15 x 2/12 + .3 x (1-e^(-0.6/4))) = 0.105013.
    # c3 left and does not count. Capital = 100 x (1 - e^(-(0.402396 + 0.105013) / 1.5)).
    assert a["relationship_capital"] == pytest.approx(100 * (1 - math.exp(-(0.402396 + 0.105013) / 1.5)), abs=1e-4)
    assert a["relationship_capital"] == pytest.approx(28.6999, abs=1e-4)


def test_a_champion_who_went_quiet_and_a_lonely_client(small_book: Engine) -> None:
    frame = _frame(small_book)
    b = _by_name(frame)["Beta GmbH"]
    assert (b["days_since_two_way_touch"], b["touches_90d"], b["thread_count"]) == (150.0, 0.0, 0.0)
    assert (b["champion_gone"], b["lonely_client"], b["single_threaded"]) == (1.0, 1.0, 0.0)
    pos = [a.name for a in frame.accounts].index("Beta GmbH")
    champion = frame.champions[pos]
    assert (champion.name, champion.prior_touches, champion.gone) == ("Dee Mgr", 3, "stopped engaging")
    # No data is missing data, not zero: Beta has no surveys, usage or invoices.
    assert (b["nps_latest"], b["seat_utilization"], b["days_overdue"]) == (None, None, None)


def test_deleted_accounts_are_not_scored_and_deleted_activities_are_not_activity(small_book: Engine) -> None:
    frame = _frame(small_book)
    assert [a.name for a in frame.accounts] == ["Acme Corp", "Beta GmbH"]
    # The deleted meeting 5 days ago would have made the last two-way touch 5 days.
    assert _by_name(frame)["Acme Corp"]["days_since_two_way_touch"] == 10.0


def test_no_signal_sees_data_dated_at_or_after_as_of(small_book: Engine) -> None:
    before = _frame(small_book)
    add_future_rows(small_book)
    after = _frame(small_book)
    assert [a.id for a in after.accounts] == [a.id for a in before.accounts]
    for name in before.values:
        assert after.values[name] == pytest.approx(before.values[name], nan_ok=True), name
    assert after.champions == before.champions


def test_explicit_account_ids_limit_the_frame(small_book: Engine) -> None:
    full = _frame(small_book)
    only_a = _frame(small_book, account_ids=[full.accounts[0].id])
    assert [a.name for a in only_a.accounts] == ["Acme Corp"]
    assert only_a.row(0)["median_resolution_hours"] == 60.0


def test_the_relationship_family_on_its_own_connection_gives_the_same_frame(small_book: Engine) -> None:
    """PostgreSQL: the whole family in a thread; a SQLite file: its query run ahead in a thread, read afterwards."""
    with small_book.connect() as conn:
        everyone = [a.id for a in compute_signals(conn, CONFIG, T).accounts]
    alone = _frame(small_book, detail_for=everyone)
    together = _frame(small_book, parallel=True, detail_for=everyone)
    assert _by_name(together) == _by_name(alone)
    assert together.champions == alone.champions
    assert together.contacts == alone.contacts and alone.contacts


@pytest.mark.parametrize("failing", ["support", "load_accounts"])
def test_a_failing_family_beside_the_relationship_query_gives_back_both_connections(
    small_book: Engine, monkeypatch: pytest.MonkeyPatch, failing: str
) -> None:
    """A family failing, or reading the accounts failing while the relationship query has already started (on the
    whole portfolio it starts first): the error is the caller's, no thread waits on, no connection stays out."""
    from scoring import signals

    def broken(*_: object, **__: object) -> None:
        raise RuntimeError(f"{failing} failed")

    if failing == "support":
        monkeypatch.setattr(signals._Builder, "support", broken)
    else:
        monkeypatch.setattr(signals, "load_accounts", broken)
    with pytest.raises(RuntimeError, match=f"{failing} failed"):
        _frame(small_book, parallel=True)
    assert small_book.pool.checkedout() == 0  # type: ignore[attr-defined]


def test_parallel_runs_on_one_connection_for_sqlite_in_memory() -> None:
    from store.db import make_engine
    from store.migrate import upgrade
    from tests.scoring.conftest import build_small_book

    engine = make_engine("sqlite://")  # one shared connection: a second one would be another, empty database
    upgrade(engine)
    build_small_book(engine)
    assert _by_name(_frame(engine, parallel=True))["Acme Corp"]["thread_count"] == 2.0


def test_regularity_periods_end_exactly_at_their_bounds(store_engine: Engine) -> None:
    """Period k holds touches more than k and at most k + 1 period lengths before as_of; a touch exactly at the
    window's start is in the last period. Four touches here fall in three periods: 0, 1 and 11."""
    from datetime import timedelta

    from core.records import AccountRecord, ActivityType, ContactRecord
    from tests.scoring.conftest import SF, _act, store

    length = timedelta(days=CONFIG.relationship.window_days / CONFIG.relationship.regularity_buckets)
    window = timedelta(days=CONFIG.relationship.window_days)
    tick = timedelta(microseconds=1)
    store(store_engine,
          AccountRecord(source=SF, external_id="001R", name="Regular", source_created_at=T - 2 * window),
          ContactRecord(source=SF, external_id="r1", account_external_id="001R", first_name="Rae", last_name="R"),
          *[_act(f"r{i}", ActivityType.CALL, T - ago, "001R", ("r1",))
            for i, ago in enumerate([length - tick, length, 2 * length - tick, window])])
    frame = _frame(store_engine, detail_for=[1])
    (contact,) = frame.contacts[0]
    assert contact.touches == 4
    assert contact.parts.regularity == 3 / CONFIG.relationship.regularity_buckets


def test_a_period_ends_at_its_exact_length_not_at_a_rounded_microsecond(store_engine: Engine) -> None:
    """With 11 periods a period is 2,866,909,090,909.09 microseconds. A touch that many whole microseconds before
    as_of is still in period 0 (a bound rounded to the microsecond put it in period 1); one microsecond more is in
    period 1."""
    from datetime import timedelta

    from core.records import AccountRecord, ActivityType, ContactRecord
    from tests.scoring.conftest import SF, _act, store

    config = CONFIG.model_copy(update={"relationship": CONFIG.relationship.model_copy(
        update={"regularity_buckets": 11})})
    window_us = config.relationship.window_days * 86_400_000_000
    assert window_us % 11 == 1  # the length has a fraction of a microsecond below a half
    whole = timedelta(microseconds=window_us // 11)
    tick = timedelta(microseconds=1)
    store(store_engine,
          AccountRecord(source=SF, external_id="001E", name="Edge", source_created_at=T - timedelta(days=800)),
          ContactRecord(source=SF, external_id="e1", account_external_id="001E", first_name="In", last_name="Zero"),
          ContactRecord(source=SF, external_id="e2", account_external_id="001E", first_name="In", last_name="One"),
          _act("z1", ActivityType.CALL, T - tick, "001E", ("e1", "e2")),
          _act("z2", ActivityType.CALL, T - whole, "001E", ("e1",)),
          _act("z3", ActivityType.CALL, T - whole - tick, "001E", ("e2",)))
    with store_engine.connect() as conn:
        frame = compute_signals(conn, config, T, detail_for=[1])
    regularity = {c.name: c.parts.regularity for c in frame.contacts[0]}
    assert regularity == {"In Zero": 1 / 11, "In One": 2 / 11}


def test_touches_in_distant_periods_each_count_once_with_the_most_periods(store_engine: Engine) -> None:
    """With 36 periods, touches in periods 0, 16, 31 and 35 (two in 35) make 4 active periods on both backends:
    PostgreSQL counts them as the bits of a 64-bit OR (``_Builder.distinct_small``), which must not overflow."""
    from datetime import timedelta

    from core.records import AccountRecord, ActivityType, ContactRecord
    from tests.scoring.conftest import SF, _act, store

    config = CONFIG.model_copy(update={"relationship": CONFIG.relationship.model_copy(
        update={"regularity_buckets": 36})})
    length = timedelta(days=config.relationship.window_days / 36)
    half = length / 2
    store(store_engine,
          AccountRecord(source=SF, external_id="001D", name="Distant", source_created_at=T - timedelta(days=800)),
          ContactRecord(source=SF, external_id="d1", account_external_id="001D", first_name="Di", last_name="D"),
          *[_act(f"d{i}", ActivityType.MEETING, T - (k * length + half), "001D", ("d1",))
            for i, k in enumerate([0, 16, 31, 35, 35])])
    with store_engine.connect() as conn:
        frame = compute_signals(conn, config, T, detail_for=[1])
    (contact,) = frame.contacts[0]
    assert contact.touches == 5
    assert contact.parts.regularity == 4 / 36


@pytest.mark.parametrize("count", [0, 1, 4, 5, 6, 17])
def test_the_row_stream_gives_every_row_once_across_partition_bounds(
    store_engine: Engine, monkeypatch: pytest.MonkeyPatch, count: int
) -> None:
    """The row SQLAlchemy reads ahead comes first, alone, the rest straight from the driver's cursor (server-side on
    PostgreSQL) STREAM_ROWS at a time: no row may be lost or repeated at either seam."""
    from sqlalchemy import Table, insert, literal_column, select

    from scoring import signals
    from store.models import Account

    monkeypatch.setattr(signals, "STREAM_ROWS", 5)
    table: Table = Account.__table__  # type: ignore[assignment]
    with store_engine.begin() as conn:
        if count:
            conn.execute(insert(table), [{"source": "salesforce", "external_id": f"A{i:03d}", "name": f"n{i}",
                                          "synced_at": T} for i in range(count)])
    with store_engine.connect() as conn:
        builder = signals._Builder(conn, CONFIG, T, [], set(), subset=False)
        stmt = select(table.c.external_id, literal_column("1.5"), table.c.name).order_by(table.c.external_id)
        partitions = list(builder.rows_in_partitions(stmt))
    rows = [tuple(r) for part in partitions for r in part]
    assert rows == [(f"A{i:03d}", 1.5, f"n{i}") for i in range(count)]
    assert [len(p) for p in partitions] == ([1] if count else []) + [min(5, count - k) for k in range(1, count, 5)]
    assert all(isinstance(p[0], tuple) for p in partitions)  # plain tuples, as numpy reads them


def test_the_champion_is_the_most_touched_before_the_engaged_window_ties_to_the_lowest_contact_id(
    store_engine: Engine,
) -> None:
    """Relationship sums are computed in SQL, the champion packed in one integer: it must decode to the right
    contact (ties: the lowest id), its touch count and why it is gone. Departments count once whatever their case."""
    from core.records import AccountRecord, ActivityType, ContactRecord, Direction
    from tests.scoring.conftest import SF, _act, ago, store

    store(store_engine,
          AccountRecord(source=SF, external_id="001T", name="Tie", source_created_at=ago(900)),
          *[ContactRecord(source=SF, external_id=f"t{k}", account_external_id="001T", first_name=f"T{k}",
                          last_name="X", department=dept, has_left=k == 2, source_updated_at=ago(400))
            for k, dept in ((1, "Sales"), (2, "sales"), (3, "SALES"), (4, "Support"))],
          # t1 and t2: four touches each before the engaged window (90 days); t2 left. t3: three, and a recent one.
          *[_act(f"a{k}-{i}", ActivityType.EMAIL, ago(120 + i), "001T", (f"t{k}",), Direction.OUTBOUND)
            for k, n in ((2, 4), (1, 4), (3, 3)) for i in range(n)],
          _act("recent-1", ActivityType.CALL, ago(3), "001T", ("t1", "t3")),
          _act("recent-4", ActivityType.MEETING, ago(4), "001T", ("t4",), Direction.TWO_WAY))
    frame = _frame(store_engine)
    ids = {name: i for i, name in enumerate(a.name for a in frame.accounts)}
    champion = frame.champions[ids["Tie"]]
    assert (champion.name, champion.prior_touches, champion.gone) == ("T1 X", 4, None)  # t1 (id 1) before t2
    row = _by_name(frame)["Tie"]
    assert (row["champion_gone"], row["thread_count"], row["departments_engaged"]) == (0.0, 3.0, 2.0)
    store(store_engine, _act("recent-1", ActivityType.CALL, ago(3), "001T", ("t3",)))  # t1 went quiet
    frame = _frame(store_engine)
    champion = frame.champions[ids["Tie"]]
    assert (champion.name, champion.prior_touches, champion.gone) == ("T1 X", 4, "stopped engaging")
    assert _by_name(frame)["Tie"]["champion_gone"] == 1.0


def test_intent_topics_match_whatever_the_case_of_a_to_z_and_the_spaces_around(store_engine: Engine) -> None:
    """The same on SQLite and PostgreSQL: A-Z without case (as ``fold_case`` does the configured topics), other
    letters as written."""
    from core.config.scoring import IntentConfig
    from core.records import AccountRecord, IntentSignalRecord
    from tests.scoring.conftest import SF, ago, link, store

    config = CONFIG.model_copy(update={"intent": IntentConfig(expansion_topics=["  Add Seats ", "Über Plan"],
                                                              risk_topics=["CRM Migration"])})
    assert config.intent.expansion_topics == ["add seats", "Über plan"]
    store(store_engine,
          AccountRecord(source=SF, external_id="001A", name="Acme", domain="acme.com", source_created_at=ago(900)),
          IntentSignalRecord(source="intent", external_id="i1", domain="acme.com", topic=" ADD seats", score=40,
                             observed_at=ago(2)),
          IntentSignalRecord(source="intent", external_id="i2", domain="acme.com", topic="über PLAN", score=90,
                             observed_at=ago(2)),  # ü is not Ü: not the configured topic
          IntentSignalRecord(source="intent", external_id="i4", domain="acme.com", topic="ÜBER PLAN", score=60,
                             observed_at=ago(2)),
          IntentSignalRecord(source="intent", external_id="i3", domain="acme.com", topic="crm migration", score=55,
                             observed_at=ago(3)))
    link(store_engine, "intent_signals", ["i1", "i2", "i3", "i4"], "001A")
    with store_engine.connect() as conn:
        row = compute_signals(conn, config, T).row(0)
    assert (row["intent_expansion"], row["intent_risk"]) == (60.0, 55.0)


def test_a_relationship_window_shorter_than_180_days_still_sees_exec_meetings_in_180_days(
    store_engine: Engine,
) -> None:
    """exec_meeting_180d has its own window: with a 90-day relationship window, a meeting with the CEO 120 days
    ago counts for it and for nothing else (no strength, no thread, no champion, no days since an exec touch)."""
    from core.config.scoring import RelationshipConfig
    from core.records import AccountRecord, ActivityType, ContactRecord, Direction, Seniority
    from tests.scoring.conftest import SF, _act, ago, store

    store(store_engine,
          AccountRecord(source=SF, external_id="001W", name="Window", source_created_at=ago(900)),
          ContactRecord(source=SF, external_id="w1", account_external_id="001W", first_name="Wes", last_name="Ceo",
                        seniority=Seniority.C_LEVEL),
          ContactRecord(source=SF, external_id="w2", account_external_id="001W", first_name="Ida", last_name="Ic",
                        seniority=Seniority.INDIVIDUAL),
          *[_act(f"w1-{i}", ActivityType.MEETING, ago(days), "001W", ("w1",), Direction.TWO_WAY)
            for i, days in enumerate((120, 130, 140))],
          _act("w2-1", ActivityType.CALL, ago(10), "001W", ("w2",)))
    short = CONFIG.model_copy(update={"relationship": RelationshipConfig(window_days=90, engaged_days=30)})
    with store_engine.connect() as conn:
        frame = compute_signals(conn, short, T, detail_for=[1])
    row = frame.row(0)
    assert (row["exec_meeting_180d"], row["exec_sponsor_engaged"], row["days_since_exec_touch"]) == (1.0, 0.0, None)
    assert (row["thread_count"], row["seniority_levels_engaged"]) == (1.0, 1.0)
    assert [c.name for c in frame.contacts[0]] == ["Ida Ic"]  # the only contact touched in the window
    alone = frame.contacts[0][0].parts.strength  # w2's strength is the whole capital: w1 adds none
    assert row["relationship_capital"] == pytest.approx(100 * (1 - math.exp(-alone / 1.5)), abs=1e-9)
    assert 0 not in frame.champions
    with store_engine.connect() as conn:  # the default 365-day window sees the meetings as touches too
        assert compute_signals(conn, CONFIG, T).row(0)["days_since_exec_touch"] == 120.0


def test_listed_accounts_of_two_sources_with_the_same_external_id_read_only_their_own_rows(
    store_engine: Engine,
) -> None:
    """A listed frame (explain, backtests) filters each source's ids apart: the HubSpot account 'X1' sees none of
    the Salesforce 'X1''s touches, and both listed together see their own."""
    from core.records import AccountRecord, ActivityType, ContactRecord
    from tests.scoring.conftest import _act, ago, store

    store(store_engine, *[AccountRecord(source=src, external_id="X1", name=f"X1 {src}", source_created_at=ago(900))
                          for src in ("salesforce", "hubspot")],
          ContactRecord(source="salesforce", external_id="c1", account_external_id="X1", first_name="Sal"),
          *[_act(f"s{i}", ActivityType.CALL, ago(5 + i), "X1", ("c1",)) for i in range(3)])
    with store_engine.connect() as conn:
        ids = {a.source: a.id for a in compute_signals(conn, CONFIG, T).accounts}
        hubspot = compute_signals(conn, CONFIG, T, account_ids=[ids["hubspot"]], detail_for=[ids["hubspot"]])
        both = compute_signals(conn, CONFIG, T, account_ids=sorted(ids.values()), detail_for=sorted(ids.values()))
    assert (hubspot.row(0)["touches_90d"], hubspot.row(0)["thread_count"], hubspot.contacts) == (0.0, 0.0, {})
    assert {a.source: both.row(i)["touches_90d"] for i, a in enumerate(both.accounts)} == {
        "salesforce": 3.0, "hubspot": 0.0}
    assert [c.name for details in both.contacts.values() for c in details] == ["Sal"]


@pytest.mark.parametrize("parallel", [False, True])
@pytest.mark.parametrize("period_days", [90, 30])
def test_engagement_counts_touches_alone_and_the_lonely_client_period_in_its_own_window(
    store_engine: Engine, parallel: bool, period_days: int,
) -> None:
    """Notes and tasks are no touch: an account with nothing else has no last touch and zero touches. The
    lonely-client period is its own window when it is not the 90 days of ``touches_90d`` (the query leaves out a
    column that would repeat that one)."""
    from core.config.scoring import FlagsConfig, LonelyClientFlag
    from core.records import AccountRecord, ActivityType, Direction
    from tests.scoring.conftest import SF, _act, ago, store

    store(store_engine,
          AccountRecord(source=SF, external_id="001N", name="Notes", source_created_at=ago(900)),
          AccountRecord(source=SF, external_id="001E", name="Emails", source_created_at=ago(900)),
          _act("n1", ActivityType.NOTE, ago(5), "001N", ()),
          _act("n2", ActivityType.TASK, ago(6), "001N", ()),
          _act("e1", ActivityType.EMAIL, ago(20), "001E", (), Direction.OUTBOUND),
          _act("e2", ActivityType.MEETING, ago(60), "001E", (), Direction.TWO_WAY),
          _act("e3", ActivityType.NOTE, ago(2), "001E", ()))
    config = CONFIG.model_copy(update={"flags": FlagsConfig(lonely_client=LonelyClientFlag(period_days=period_days))})
    with store_engine.connect() as conn:
        frame = compute_signals(conn, config, T, parallel=parallel)
    pos = {a.name: i for i, a in enumerate(frame.accounts)}
    v = frame.values
    notes, emails = pos["Notes"], pos["Emails"]
    assert math.isnan(v["days_since_touch"][notes]) and math.isnan(v["days_since_two_way_touch"][notes])
    assert (v["touches_90d"][notes], v["meetings_90d"][notes], v["touches_period"][notes]) == (0.0, 0.0, 0.0)
    assert (v["days_since_touch"][emails], v["days_since_two_way_touch"][emails]) == (20.0, 60.0)
    assert (v["touches_90d"][emails], v["meetings_90d"][emails]) == (2.0, 1.0)
    assert v["touches_period"][emails] == (2.0 if period_days == 90 else 1.0)


def test_a_champion_without_a_name_is_named_by_email_else_by_id(store_engine: Engine) -> None:
    """The champion's name comes with the relationship query's row: first and last name, else the email, else
    ``contact <id>``, as explain names contacts."""
    from core.records import AccountRecord, ActivityType, ContactRecord, Direction
    from tests.scoring.conftest import SF, _act, ago, store

    store(store_engine,
          *[AccountRecord(source=SF, external_id=f"001{k}", name=k, source_created_at=ago(900)) for k in "EINLB"],
          ContactRecord(source=SF, external_id="ce", account_external_id="001E", email="pat@example.com"),
          ContactRecord(source=SF, external_id="ci", account_external_id="001I"),
          ContactRecord(source=SF, external_id="cn", account_external_id="001N", first_name="Ann", last_name=""),
          ContactRecord(source=SF, external_id="cl", account_external_id="001L", last_name="Lee", email="x@y.z"),
          ContactRecord(source=SF, external_id="cb", account_external_id="001B", first_name="Bo", last_name="Yu"),
          *[_act(f"{c}-{i}", ActivityType.EMAIL, ago(120 + i), f"001{k}", (c,), Direction.INBOUND)
            for k, c in (("E", "ce"), ("I", "ci"), ("N", "cn"), ("L", "cl"), ("B", "cb")) for i in range(3)])
    for parallel in (False, True):
        with store_engine.connect() as conn:
            frame = compute_signals(conn, CONFIG, T, parallel=parallel)
            contact_id = conn.execute(text("SELECT id FROM contacts WHERE external_id = 'ci'")).scalar_one()
        names = {frame.accounts[pos].name: c.name for pos, c in frame.champions.items()}
        assert names == {"E": "pat@example.com", "I": f"contact {contact_id}", "N": "Ann", "L": "Lee", "B": "Bo Yu"}


def test_sqlite_without_aggregate_filters_gives_the_same_frame(small_book: Engine, monkeypatch: pytest.MonkeyPatch,
                                                               database_url: str) -> None:
    """Counts are ``count(*) FILTER (WHERE ...)``; SQLite before 3.30 has no FILTER and gets sums of a CASE."""
    if not database_url.startswith("sqlite"):
        pytest.skip("the fallback is for SQLite only")
    with small_book.connect() as conn:
        from scoring.signals import _has_filter

        assert _has_filter(conn)
        filtered = compute_signals(conn, CONFIG, T, parallel=True)
        monkeypatch.setattr(small_book.dialect.dbapi, "sqlite_version_info", (3, 29, 0))
        assert not _has_filter(conn)
        summed = compute_signals(conn, CONFIG, T, parallel=True)
    for name in filtered.values:
        assert summed.values[name] == pytest.approx(filtered.values[name], nan_ok=True), name
    assert summed.champions == filtered.champions


def test_the_systems_sqlite_gives_the_same_frame_as_the_bundled_one(small_book: Engine, database_url: str) -> None:
    """The store's SQLite engines use pysqlite3's SQLite where it is installed (``store.db.sqlite_driver``);
    Python's own sqlite3, with the system's SQLite, gives the same signals from the same file."""
    import sqlite3

    from store.db import make_engine

    if not database_url.startswith("sqlite"):
        pytest.skip("the SQLite driver's choice")
    system = make_engine(database_url, module=sqlite3)
    try:
        driver: object = system.dialect.dbapi
        assert driver is sqlite3
        for parallel in (False, True):
            bundled, own = _frame(small_book, parallel=parallel), _frame(system, parallel=parallel)
            for name in bundled.values:
                assert own.values[name] == pytest.approx(bundled.values[name], nan_ok=True), name
            assert own.champions == bundled.champions
    finally:
        system.dispose()


def test_relationship_sums_are_grouped_without_a_sort_where_sqlite_keeps_subquery_order(
        small_book: Engine, database_url: str) -> None:
    """On SQLite 3.51 the per-contact rows are stated in the order their GROUP BY gives them, and the per-account
    sums read them so: the plan has no sort but the one for the whole result (``sorted_ahead``)."""
    from scoring.signals import _Builder

    if not database_url.startswith("sqlite"):
        pytest.skip("a SQLite plan")
    with small_book.connect() as conn:
        builder = _Builder(conn, CONFIG, T, [], set(), subset=False)
        stmt = builder.relationship_statement(sorted_ahead=True)
        if not builder.orders_kept:  # SQLite before 3.51 would sort an ordered subquery again: none is ordered
            assert str(stmt.compile(conn)).count("ORDER BY") == 1
            return

        def explained(*args: object) -> tuple[str, object]:
            return "EXPLAIN QUERY PLAN " + str(args[2]), args[3]

        event.listen(conn, "before_cursor_execute", explained, retval=True)
        plan = [row[3] for row in conn.execute(stmt)]
    assert [step for step in plan if "TEMP B-TREE FOR GROUP BY" in step or "TEMP B-TREE FOR ORDER BY" in step] == [
        "USE TEMP B-TREE FOR ORDER BY"]


def test_days_to_renewal_is_the_sooner_of_the_accounts_date_and_its_next_renewal_deal(store_engine: Engine) -> None:
    """A renewal date already past counts for nothing; a renewal deal closing on or after as_of does; tenure counts
    from the account's creation in the CRM, and is unknown without it."""
    from datetime import UTC, date, datetime

    from core.records import AccountRecord, DealKind, DealRecord
    from tests.scoring.conftest import SF, store

    created = datetime(2026, 5, 2, 12, tzinfo=UTC)
    store(store_engine,
          AccountRecord(source=SF, external_id="past+deal", name="P", renewal_date=date(2026, 5, 1),
                        source_created_at=created),
          AccountRecord(source=SF, external_id="past", name="Q", renewal_date=date(2026, 5, 1)),
          AccountRecord(source=SF, external_id="own-sooner", name="R", renewal_date=date(2026, 6, 11), arr=5.0),
          *[DealRecord(source=SF, external_id=f"d-{x}", account_external_id=x, kind=DealKind.RENEWAL,
                       close_date=date(2026, 7, 1)) for x in ("past+deal", "own-sooner")])
    frame = _frame(store_engine)
    got = {a.name: (frame.row(i)["days_to_renewal"], frame.row(i)["tenure_days"], frame.row(i)["arr"])
           for i, a in enumerate(frame.accounts)}
    assert got == {"P": (30.0, 29.5, None), "Q": (None, None, None), "R": (10.0, None, 5.0)}


def test_the_relationship_connection_gives_hash_tables_room_for_its_transaction_only(
    small_book: Engine, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL: hash memory becomes HASH_MEMORY_MB (as a multiple of work_mem, within 1000), never less than it
    was, until the transaction ends; the relationship family's own connection gets it."""
    if not database_url.startswith("postgresql"):
        pytest.skip("a PostgreSQL setting")
    from scoring import signals

    def multiplier(conn: Connection) -> float:
        return float(conn.exec_driver_sql("SELECT current_setting('hash_mem_multiplier')").scalar_one())

    with small_book.connect() as conn:
        before = multiplier(conn)
        for work_mem, expected in (("4MB", 16.0), ("64kB", 1000.0), ("1GB", before)):
            conn.exec_driver_sql(f"SET work_mem = '{work_mem}'")
            signals._roomy_hashes(conn)
            assert multiplier(conn) == expected
            conn.rollback()
            assert multiplier(conn) == before
    calls: list[Connection] = []
    original = signals._roomy_hashes

    def recorded(conn: Connection) -> None:
        calls.append(conn)
        original(conn)

    monkeypatch.setattr(signals, "_roomy_hashes", recorded)
    assert _by_name(_frame(small_book, parallel=True))["Acme Corp"]["thread_count"] == 2.0
    assert len(calls) == 1


def test_postgresql_before_14_counts_distinct_values_the_same(small_book: Engine, database_url: str,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """``bit_count`` came with PostgreSQL 14; before it, the small distinct counts are ``count(DISTINCT ...)``."""
    if not database_url.startswith("postgresql"):
        pytest.skip("a PostgreSQL fallback")
    from scoring.signals import _Builder

    def relationship_sql() -> str:
        with small_book.connect() as conn:
            return str(_Builder(conn, CONFIG, T, [], set(), subset=False).relationship_statement().compile(conn))

    counted = _frame(small_book, detail_for=[1, 2, 3])
    sql = relationship_sql()
    assert sql.count("bit_count") == 2 and sql.count("DISTINCT") == 1  # departments
    monkeypatch.setattr(small_book.dialect, "server_version_info", (13, 12))
    sql = relationship_sql()
    assert "bit_count" not in sql and sql.count("DISTINCT") == 3
    fallback = _frame(small_book, detail_for=[1, 2, 3])
    assert _by_name(fallback) == _by_name(counted)
    assert fallback.contacts == counted.contacts
