"""The service under SIGTERM: stop taking work, stop the run between batches, release the lease, exit 0."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from store.db import make_engine
from store.migrate import upgrade
from store.models import Lease, Run

ROOT = Path(__file__).resolve().parents[2]


def _wait_for_running_run(engine: Engine, proc: subprocess.Popen[bytes], timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        with engine.connect() as conn:
            run_id = conn.execute(select(Run.id).where(Run.status == "running")).scalar()
        if run_id:
            return run_id
        time.sleep(0.05)
    raise AssertionError("the service never started a run")


def _start(url: str, mode: str, grace: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.agent.service_worker", url, mode, str(grace)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_stop_signal_ends_the_run_between_batches_releases_the_lease_and_exits_0(tmp_path: Path, sig: signal.Signals) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    engine = make_engine(url)
    upgrade(engine)
    proc = _start(url, "cooperative", grace=10)
    run_id = _wait_for_running_run(engine, proc)
    with engine.connect() as conn:
        assert conn.execute(select(Lease.name)).scalars().all() == ["run"]
    sent = time.monotonic()
    proc.send_signal(sig)
    assert proc.wait(timeout=10) == 0
    assert time.monotonic() - sent < 10
    with engine.connect() as conn:
        assert conn.execute(select(Run.status).where(Run.id == run_id)).scalar() == "interrupted"
        assert conn.execute(select(Lease.name)).scalars().all() == []


@pytest.mark.slow
def test_a_run_that_ignores_the_stop_is_cut_off_at_the_grace_period(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    engine = make_engine(url)
    upgrade(engine)
    proc = _start(url, "stuck", grace=3)
    run_id = _wait_for_running_run(engine, proc)
    sent = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == 0
    assert time.monotonic() - sent <= 3.5
    with engine.connect() as conn:
        status, error = conn.execute(select(Run.status, Run.error).where(Run.id == run_id)).one()
        assert (status, error) == ("interrupted", "shutdown grace expired")
        assert conn.execute(select(Lease.name)).scalars().all() == []
