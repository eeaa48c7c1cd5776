"""``health-agent start``: the long-running service around ``run_once``.

The scheduler fires the run; each run first takes the lease (so one replica runs at a time), keeps it
renewed, and releases it when done. On SIGTERM or SIGINT the service stops taking new work, asks the run
in flight to stop between batches (``should_stop``), waits up to ``schedule.shutdown_grace_seconds`` for it
to commit, releases the lease and returns exit code 0.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from types import FrameType

from sqlalchemy import Engine, select, update

from agent.health import HealthServer, Readiness
from agent.lease import LeaseKeeper, RunLease
from agent.metrics import AgentMetrics
from agent.report import RunReport
from agent.run import Steps, run_once
from agent.scheduler import build_scheduler
from agent.settings import Settings
from core.config import AgentConfig
from store.models import Run

log = logging.getLogger(__name__)


class Service:
    """Scheduler + lease + health endpoint. ``serve()`` blocks until a stop signal and returns the exit code."""

    def __init__(
        self,
        config: AgentConfig,
        settings: Settings,
        engine: Engine,
        *,
        steps: Steps | None = None,
        metrics: AgentMetrics | None = None,
        lease: RunLease | None = None,
    ) -> None:
        self.config = config
        self.settings = settings
        self.engine = engine
        self.steps = steps
        self.metrics = metrics or AgentMetrics()
        self.lease = lease or RunLease(engine, ttl_seconds=config.schedule.lease_ttl_seconds)
        self.stopping = threading.Event()
        self.idle = threading.Event()
        self.idle.set()
        self.current_run: str | None = None
        self.abandoned = False  # a run thread outlived the grace period
        self.metrics.restore(*_last_reports(engine))
        self.scheduler = build_scheduler(config.schedule, self.run_job)
        self.health: HealthServer | None = None
        if config.observability.listen:
            readiness = Readiness(engine, lambda: bool(self.scheduler.running) and not self.stopping.is_set())
            self.health = HealthServer(config.observability.listen, metrics=self.metrics, readiness=readiness)

    def run_job(self) -> None:
        """One scheduled fire: take the lease or skip, run once while renewing it, release it."""
        if self.stopping.is_set():
            return
        if not self.lease.try_acquire():
            log.info("another replica holds the run lease; skipping this fire")
            return
        self.idle.clear()
        run_id = str(uuid.uuid4())
        self.current_run = run_id
        try:
            with LeaseKeeper(self.lease) as keeper:
                self.metrics.running.set(1)
                report = run_once(
                    self.config, self.settings, engine=self.engine, trigger="schedule", run_id=run_id,
                    should_stop=lambda: self.stopping.is_set() or keeper.lost.is_set(), steps=self.steps,
                )
            self.metrics.observe_run(report)
        finally:
            self.metrics.running.set(0)
            self.lease.release()
            self.current_run = None
            self.idle.set()

    def request_stop(self, signum: int | None = None, _frame: FrameType | None = None) -> None:
        """Stop taking new work and ask the run in flight to stop between batches."""
        if not self.stopping.is_set():
            name = signal.Signals(signum).name if signum else "stop"
            log.info("%s received: finishing the batch in flight, then stopping", name)
        self.stopping.set()

    def serve(self, *, install_signals: bool = True, ready: Callable[[], None] | None = None) -> int:
        """Run until a stop is requested; 0 when the service stopped cleanly."""
        if install_signals:
            signal.signal(signal.SIGTERM, self.request_stop)
            signal.signal(signal.SIGINT, self.request_stop)
        if self.health is not None:
            self.health.start()
        self.scheduler.start()
        log.info("health-agent started; schedule %s (%s)", self._describe_schedule(), self.config.schedule.timezone)
        if ready is not None:
            ready()
        while not self.stopping.wait(1.0):
            pass
        return self._shutdown()

    def _shutdown(self) -> int:
        self.scheduler.shutdown(wait=False)  # no new fires
        grace = self.config.schedule.shutdown_grace_seconds
        if not self.idle.wait(max(grace - 1, 1)):
            run_id = self.current_run
            log.warning("the run in flight did not stop within %s s; marking it interrupted", grace)
            if run_id:
                with self.engine.begin() as conn:
                    conn.execute(
                        update(Run)
                        .where(Run.id == run_id, Run.status == "running")
                        .values(status="interrupted", finished_at=datetime.now(UTC), error="shutdown grace expired")
                    )
            self.lease.release()
            self.abandoned = True
        if self.health is not None:
            self.health.stop()
        log.info("health-agent stopped")
        return 0

    def exit_process(self, code: int) -> int:
        """Return ``code``; when a run thread outlived the grace period, end the process now with it.

        The scheduler's worker threads are joined at interpreter exit, so a stuck run would otherwise keep
        the process alive past the grace period (and past Kubernetes' terminationGracePeriodSeconds).
        """
        if self.abandoned:
            logging.shutdown()
            os._exit(code)
        return code

    def _describe_schedule(self) -> str:
        s = self.config.schedule
        return f"every {s.interval_minutes} min" if s.interval_minutes else f"cron {s.cron!r}"


def _last_reports(engine: Engine) -> tuple[RunReport | None, RunReport | None]:
    """The newest finished run and the newest succeeded one, from the store."""
    finished = select(Run.report).where(Run.status.not_in(("running",))).order_by(Run.started_at.desc()).limit(1)
    succeeded = select(Run.report).where(Run.status == "succeeded").order_by(Run.started_at.desc()).limit(1)
    with engine.connect() as conn:
        rows = [conn.execute(query).scalar() for query in (finished, succeeded)]
    reports = []
    for row in rows:
        try:
            reports.append(RunReport.model_validate(row) if row else None)
        except ValueError:  # a report stored by an older version: not worth failing the start for
            reports.append(None)
    return reports[0], reports[1]
