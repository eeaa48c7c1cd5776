"""Signals in shares of the portfolio, one process each: the same frame as one process, and nothing lost when a
worker cannot help. On SQLite and PostgreSQL (worker processes open the store themselves)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import numpy as np
import pytest
from sqlalchemy import Engine, select

from core.config.scoring import ScoringConfig
from core.records import AccountRecord
from scoring import partitions
from scoring.signals import ACC, SignalFrame, _Builder, compute_signals, load_accounts
from store.db import make_engine
from tests.scoring.conftest import SF, T, store

CONFIG = ScoringConfig()


def _frame(engine: Engine, **kwargs: object) -> SignalFrame:
    with engine.connect() as conn:
        return compute_signals(conn, CONFIG, T, **kwargs)  # type: ignore[arg-type]


def assert_same_frame(one: SignalFrame, shared: SignalFrame) -> None:
    """Every column, category, champion and explained contact, account by account."""
    assert [a.id for a in shared.accounts] == [a.id for a in one.accounts]
    assert shared.signal_names() == one.signal_names()
    np.testing.assert_array_equal(shared.matrix(), one.matrix())  # NaN equals NaN here
    assert shared.categories == one.categories
    assert shared.champions == one.champions
    assert shared.contacts == one.contacts


def _with_more_accounts(engine: Engine) -> None:
    """External ids whose order differs between Python (code points) and a linguistic collation (PostgreSQL's
    default), so a share's key range is only right if it comes from the database's own order."""
    created = datetime(2024, 1, 1, tzinfo=UTC)
    store(engine, *[AccountRecord(source=source, external_id=ext, name=f"{source} {ext}", source_created_at=created)
                    for source in (SF, "hubspot") for ext in ("a-2", "A1", "b", "B_3", "_z", "10", "9", "é1", "e2")])


def test_shares_give_the_same_frame_as_one_process(small_book: Engine) -> None:
    _with_more_accounts(small_book)
    detail = [a.id for a in _frame(small_book).accounts[:2]]
    one = _frame(small_book, detail_for=detail)
    for workers in (2, 3):
        assert_same_frame(one, _frame(small_book, workers=workers, detail_for=detail))
    assert one.champions and one.contacts  # the book has both, so their merge was checked


def test_each_share_reads_exactly_its_accounts_in_the_databases_key_order(small_book: Engine) -> None:
    _with_more_accounts(small_book)
    with small_book.connect() as conn:
        accounts = load_accounts(conn, T)
        b = _Builder(conn, CONFIG, T, accounts, set(), subset=False)
        jobs = partitions.plan_shares(b, 3)
        assert len(jobs) == 3
        keyed: list[int] = []
        linked: list[int] = []
        for job in jobs:
            in_range = set(conn.execute(select(ACC.c.id).where(job.key_range.contains(ACC.c.source,
                                                                                      ACC.c.external_id))).scalars())
            assert {a.id for a in job.keyed} == in_range & set(b.pos)  # what the database puts in the range
            assert all(job.id_range[0] <= a.id <= job.id_range[1] for a in job.linked)
            keyed += [a.id for a in job.keyed]
            linked += [a.id for a in job.linked]
    assert sorted(keyed) == sorted(linked) == sorted(b.pos)  # every account in exactly one share of each kind


def test_a_failing_worker_costs_time_not_data(small_book: Engine, monkeypatch: pytest.MonkeyPatch,
                                              caplog: pytest.LogCaptureFixture) -> None:
    one = _frame(small_book)
    # The worker gets a store it cannot open (nothing listens on port 1): the caller computes its share.
    monkeypatch.setattr(partitions, "_worker_url", lambda conn: "postgresql+psycopg://u:pw@127.0.0.1:1/none")
    with caplog.at_level(logging.WARNING, logger="scoring.partitions"):
        shared = _frame(small_book, workers=2)
    assert_same_frame(one, shared)
    assert "a scoring worker failed" in caplog.text and "computing its share of 1 accounts here" in caplog.text
    assert ":pw@" not in caplog.text


def test_no_worker_processes_at_all_still_gives_the_frame(small_book: Engine, monkeypatch: pytest.MonkeyPatch,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    def refuse() -> None:
        raise OSError("no semaphores here")

    monkeypatch.setattr(partitions, "_context", refuse)
    with caplog.at_level(logging.WARNING, logger="scoring.partitions"):
        shared = _frame(small_book, workers=2)
    assert_same_frame(_frame(small_book), shared)
    assert "scoring workers could not start (no semaphores here)" in caplog.text


def test_shares_of_a_frame_without_accounts(small_book: Engine) -> None:
    """Accounts in the store, none of them existing yet at as_of: an empty frame, as in one process."""
    with small_book.connect() as conn:
        frame = compute_signals(conn, CONFIG, datetime(2000, 1, 1, tzinfo=UTC), workers=2)
    assert frame.accounts == [] and frame.matrix().shape[0] == 0


def test_how_many_shares(small_book: Engine) -> None:
    with small_book.connect() as conn:
        assert partitions.worker_count(conn, 4, subset=False) == 3  # never more shares than accounts
        assert partitions.worker_count(conn, 2, subset=False) == 2
        assert partitions.worker_count(conn, 2, subset=True) == 1  # an explicit set (explain, backtest)
        assert partitions.worker_count(conn, 1, subset=False) == 1


def test_an_in_memory_store_is_never_shared() -> None:
    from store.migrate import upgrade
    from tests.scoring.conftest import build_small_book

    engine = make_engine("sqlite://")  # one shared connection: another process would open another, empty database
    upgrade(engine)
    build_small_book(engine)
    with engine.connect() as conn:
        assert partitions.worker_count(conn, 4, subset=False) == 1
    assert _frame(engine, workers=4).row(0)["thread_count"] == 2.0
