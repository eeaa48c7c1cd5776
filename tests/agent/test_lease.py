"""The run lease: one holder at a time, renewals, expiry of a dead holder, on SQLite and PostgreSQL."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine

from agent.lease import LeaseKeeper, RunLease
from store.db import make_engine
from store.migrate import upgrade

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


class FrozenClock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def _pair(engine: Engine, clock: FrozenClock, ttl: float = 60) -> tuple[RunLease, RunLease]:
    return (
        RunLease(engine, holder="replica-a", ttl_seconds=ttl, clock=clock),
        RunLease(engine, holder="replica-b", ttl_seconds=ttl, clock=clock),
    )


def test_second_replica_cannot_take_a_held_lease(store_engine: Engine) -> None:
    clock = FrozenClock(T0)
    a, b = _pair(store_engine, clock)
    assert a.try_acquire() is True
    assert b.try_acquire() is False
    assert a.current_holder() == ("replica-a", T0 + timedelta(seconds=60))


def test_holder_reacquires_its_own_lease_and_extends_it(store_engine: Engine) -> None:
    clock = FrozenClock(T0)
    a, _ = _pair(store_engine, clock)
    assert a.try_acquire() is True
    clock.advance(30)
    assert a.try_acquire() is True
    assert a.current_holder() == ("replica-a", T0 + timedelta(seconds=90))


def test_dead_holder_loses_the_lease_when_it_expires(store_engine: Engine) -> None:
    clock = FrozenClock(T0)
    a, b = _pair(store_engine, clock)
    assert a.try_acquire()
    clock.advance(59)
    assert b.try_acquire() is False
    clock.advance(1)
    assert b.try_acquire() is True
    assert a.renew() is False
    assert b.current_holder() == ("replica-b", T0 + timedelta(seconds=120))


def test_renewal_keeps_the_lease_past_its_first_ttl(store_engine: Engine) -> None:
    clock = FrozenClock(T0)
    a, b = _pair(store_engine, clock)
    assert a.try_acquire()
    clock.advance(50)
    assert a.renew() is True
    clock.advance(50)
    assert b.try_acquire() is False


def test_release_lets_another_replica_in_at_once(store_engine: Engine) -> None:
    clock = FrozenClock(T0)
    a, b = _pair(store_engine, clock)
    assert a.try_acquire()
    b.release()  # not the holder: nothing happens
    assert b.try_acquire() is False
    a.release()
    assert a.current_holder() is None
    assert b.try_acquire() is True


def test_keeper_flags_a_lost_lease(store_engine: Engine) -> None:
    clock = FrozenClock(T0)
    a, b = _pair(store_engine, clock, ttl=10)
    assert a.try_acquire()
    clock.advance(11)
    assert b.try_acquire()
    with LeaseKeeper(a, every_seconds=0.01) as keeper:
        assert keeper.lost.wait(5)


_WORKER = textwrap.dedent(
    """
    import json, sys, time
    from agent.lease import RunLease
    from store.db import make_engine

    url, holder, cycles, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    engine = make_engine(url)
    lease = RunLease(engine, holder=holder, ttl_seconds=30)
    spans = []
    while len(spans) < cycles:
        if not lease.try_acquire():
            time.sleep(0.005)
            continue
        start = time.time()
        time.sleep(0.03)  # the "run" while holding the lease
        spans.append([start, time.time()])
        lease.release()
        time.sleep(0.005)
    json.dump(spans, open(out, "w"))
    """
)


@pytest.mark.postgres
@pytest.mark.slow
def test_two_processes_never_hold_the_lease_at_once_on_postgresql(database_url: str, tmp_path: Path) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("the two-process test is for PostgreSQL, where replicas share one database")
    engine = make_engine(database_url)
    upgrade(engine)
    engine.dispose()
    outs = [tmp_path / "a.json", tmp_path / "b.json"]
    procs = [
        subprocess.Popen([sys.executable, "-c", _WORKER, database_url, name, "15", str(out)])
        for name, out in zip(["replica-a", "replica-b"], outs, strict=True)
    ]
    for proc in procs:
        assert proc.wait(timeout=60) == 0
    spans = sorted(
        (start, end, who) for who, out in enumerate(outs) for start, end in json.loads(out.read_text())
    )
    assert len(spans) == 30
    assert {who for _, _, who in spans} == {0, 1}
    overlaps = [(x, y) for x, y in itertools.pairwise(spans) if y[0] < x[1]]
    assert overlaps == []


@pytest.mark.postgres
@pytest.mark.slow
def test_a_killed_replica_loses_the_lease_when_it_expires_on_postgresql(database_url: str) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("replicas share a PostgreSQL store")
    engine = make_engine(database_url)
    upgrade(engine)
    holder = textwrap.dedent(
        """
        import sys, time
        from agent.lease import RunLease
        from store.db import make_engine
        assert RunLease(make_engine(sys.argv[1]), holder="doomed", ttl_seconds=5).try_acquire()
        print("held", flush=True)
        time.sleep(60)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", holder, database_url], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    proc.kill()
    proc.wait(timeout=10)
    survivor = RunLease(engine, holder="survivor", ttl_seconds=30)
    assert survivor.try_acquire() is False  # the dead replica's lease has not expired yet
    deadline = time.monotonic() + 15
    while not survivor.try_acquire():
        assert time.monotonic() < deadline, "the dead replica's lease never expired"
        time.sleep(0.1)
    held = survivor.current_holder()
    assert held is not None and held[0] == "survivor"
    engine.dispose()
