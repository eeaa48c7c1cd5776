"""The schedule of runs: APScheduler 3 with the YAML's cron or interval, read in its time zone.

One job, never overlapping itself (``max_instances=1``), missed fires collapsed into one (``coalesce``),
and a late fire still run within ``misfire_grace_seconds``. Which replica runs is decided by the lease
(``agent.lease``), not here.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from core.config.runtime import ScheduleConfig
from core.errors import ConfigError

JOB_ID = "health-agent-run"


def make_trigger(schedule: ScheduleConfig, *, start: datetime | None = None) -> CronTrigger | IntervalTrigger:
    """The trigger for ``schedule``: ``interval_minutes`` when set, else the five-field ``cron``.

    ``start``: when an interval counts from (default: when the scheduler starts).
    """
    zone = ZoneInfo(schedule.timezone)
    if schedule.interval_minutes is not None:
        return IntervalTrigger(minutes=schedule.interval_minutes, timezone=zone, start_date=start)
    if not schedule.cron:
        raise ConfigError("schedule: set either cron or interval_minutes")
    try:
        return CronTrigger.from_crontab(schedule.cron, timezone=zone)
    except ValueError as exc:
        raise ConfigError(f"schedule.cron: {schedule.cron!r} is not a valid cron expression ({exc})") from exc


def next_fire_times(schedule: ScheduleConfig, after: datetime, count: int = 3) -> list[datetime]:
    """The next ``count`` fire times strictly after ``after`` (aware), in the schedule's time zone."""
    trigger = make_trigger(schedule, start=after)
    times: list[datetime] = []
    previous: datetime | None = None
    now = after
    while len(times) < count:
        fire = trigger.get_next_fire_time(previous, now)
        if fire is None:
            break
        if fire > after:
            times.append(fire)
        previous = fire
        now = fire
    return times


def build_scheduler(
    schedule: ScheduleConfig,
    job: Callable[[], Any],
    *,
    now: Callable[[], datetime] | None = None,
) -> BackgroundScheduler:
    """A background scheduler with one job on ``schedule``; with ``run_at_start`` its first fire is right away.

    In the background so the main thread stays free for signals and the shutdown grace period.
    ``now``: the clock for the first fire (tests freeze it).
    """
    zone = ZoneInfo(schedule.timezone)
    scheduler = BackgroundScheduler(timezone=zone)
    options: dict[str, Any] = {
        "id": JOB_ID,
        "name": "health-agent run",
        "max_instances": 1,
        "coalesce": True,
        "misfire_grace_time": schedule.misfire_grace_seconds,
        "replace_existing": True,
    }
    if schedule.run_at_start:
        options["next_run_time"] = (now or (lambda: datetime.now(zone)))()
    scheduler.add_job(job, make_trigger(schedule), **options)
    return scheduler
