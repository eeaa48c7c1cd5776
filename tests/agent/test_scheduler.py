"""The schedule, driven by a frozen clock: the trigger's next fire times in the configured time zone."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from agent.scheduler import JOB_ID, build_scheduler, make_trigger, next_fire_times
from core.config.runtime import ScheduleConfig
from core.errors import ConfigError

BERLIN = ZoneInfo("Europe/Berlin")


def test_cron_fires_in_its_own_time_zone_across_the_dst_change() -> None:
    schedule = ScheduleConfig(cron="30 2 * * *", timezone="Europe/Berlin")
    # 2026-03-29: Berlin skips 02:00-03:00 (CET -> CEST); APScheduler moves that fire to the next valid time.
    times = next_fire_times(schedule, datetime(2026, 3, 27, 12, 0, tzinfo=UTC), count=4)
    assert [t.astimezone(UTC).isoformat() for t in times] == [
        "2026-03-28T01:30:00+00:00",  # 02:30 CET
        "2026-03-29T01:30:00+00:00",  # 03:30 CEST: 02:30 does not exist that night
        "2026-03-30T00:30:00+00:00",  # 02:30 CEST
        "2026-03-31T00:30:00+00:00",
    ]


def test_every_six_hours_cron_from_a_frozen_clock() -> None:
    schedule = ScheduleConfig(cron="0 */6 * * *", timezone="UTC")
    times = next_fire_times(schedule, datetime(2026, 1, 5, 7, 59, 59, tzinfo=UTC), count=3)
    assert [t.isoformat() for t in times] == [
        "2026-01-05T12:00:00+00:00", "2026-01-05T18:00:00+00:00", "2026-01-06T00:00:00+00:00",
    ]


def test_interval_counts_from_the_start() -> None:
    schedule = ScheduleConfig(cron=None, interval_minutes=90, timezone="UTC")
    times = next_fire_times(schedule, datetime(2026, 1, 5, 8, 0, tzinfo=UTC), count=3)
    assert [t.isoformat() for t in times] == [
        "2026-01-05T09:30:00+00:00", "2026-01-05T11:00:00+00:00", "2026-01-05T12:30:00+00:00",
    ]


def test_scheduler_job_never_overlaps_coalesces_and_runs_at_start() -> None:
    frozen = datetime(2026, 1, 5, 8, 0, tzinfo=BERLIN)
    schedule = ScheduleConfig(cron="15 * * * *", timezone="Europe/Berlin", misfire_grace_seconds=120)
    scheduler = build_scheduler(schedule, lambda: None, now=lambda: frozen)
    scheduler.start(paused=True)
    try:
        job = scheduler.get_job(JOB_ID)
        assert (job.max_instances, job.coalesce, job.misfire_grace_time) == (1, True, 120)
        assert job.next_run_time == frozen
        assert str(job.trigger.timezone) == "Europe/Berlin"
    finally:
        scheduler.shutdown(wait=False)


def test_without_run_at_start_the_first_fire_is_the_trigger_s() -> None:
    schedule = ScheduleConfig(cron="0 3 * * *", timezone="UTC", run_at_start=False)
    scheduler = build_scheduler(schedule, lambda: None)
    scheduler.start(paused=True)
    try:
        nxt = scheduler.get_job(JOB_ID).next_run_time
        assert (nxt.hour, nxt.minute) == (3, 0)
    finally:
        scheduler.shutdown(wait=False)


def test_a_bad_cron_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"schedule\.cron"):
        make_trigger(ScheduleConfig(cron="61 * * * *"))
