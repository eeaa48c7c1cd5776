"""The HubSpot owners stream against the emulator: every owner listed on a backfill, then at most once per
``owners_refresh_hours`` (the time of the last listing kept in ``sync_state.cursor_token``), counted on the request
ledger. Each run builds a new connector, as a new process would."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine

from connectors.credentials import Credentials
from connectors.hubspot.client import HubSpotClient
from connectors.hubspot.streams import HubSpotConnector
from core.config.runtime import LimitsConfig
from core.config.sources import HubSpotSourceConfig, StreamConfig
from sandbox.runtime import Sandbox
from store.sync import StreamReport, pull_stream

LIMITS = LimitsConfig(http={"backoff_base_seconds": 0.001})
OTHER_STREAMS = ("companies", "contacts", "deals", "tickets", "calls", "emails", "meetings", "notes")
FIRST_RUN = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def _pull(sandbox: Sandbox, engine: Engine, at: datetime, refresh_hours: float) -> tuple[StreamReport, int]:
    """One run of the owners stream alone at ``at``: its report and the owners calls the emulator received."""
    config = HubSpotSourceConfig(enabled=True, owners_refresh_hours=refresh_hours,
                                 streams={n: StreamConfig(enabled=False) for n in OTHER_STREAMS})
    client = HubSpotClient(Credentials.from_env(sandbox.env()), limits=LIMITS)
    connector = HubSpotConnector(client, config, now=lambda: at)
    (owners,) = connector.streams()
    ledger = sandbox.ledger("hubspot")
    ledger.clear()
    report = pull_stream(engine, connector, owners, run_id=at.isoformat(), limits=LIMITS)
    assert report.error is None
    return report, ledger.count("GET", "/crm/v3/owners")


def test_a_second_run_within_the_refresh_window_makes_no_owners_call(sandbox: Sandbox, store_engine: Engine) -> None:
    engine = store_engine
    first, first_calls = _pull(sandbox, engine, FIRST_RUN, 24)
    assert (first_calls, first.api_calls, first.notes) == (1, 1, [])
    assert first.records > 0
    second, second_calls = _pull(sandbox, engine, FIRST_RUN + timedelta(hours=23), 24)
    assert (second_calls, second.api_calls, second.records) == (0, 0, 0)
    assert second.notes == ["owners refresh skipped: the last one was at 2026-11-02T09:00:00+00:00, "
                            "the next is due at 2026-11-03T09:00:00+00:00"]
    assert second.cursor_after == first.cursor_after


def test_a_run_after_the_refresh_window_lists_every_owner_again(sandbox: Sandbox, store_engine: Engine) -> None:
    engine = store_engine
    _pull(sandbox, engine, FIRST_RUN, 24)
    _pull(sandbox, engine, FIRST_RUN + timedelta(hours=12), 24)
    due, calls = _pull(sandbox, engine, FIRST_RUN + timedelta(hours=24), 24)
    assert (calls, due.api_calls, due.records, due.notes) == (1, 1, 0, [])
    # The window restarts at that listing: a run 23 hours later lists nothing.
    _, later_calls = _pull(sandbox, engine, FIRST_RUN + timedelta(hours=47), 24)
    assert later_calls == 0


def test_a_zero_refresh_period_lists_owners_on_every_run(sandbox: Sandbox, store_engine: Engine) -> None:
    calls = [_pull(sandbox, store_engine, FIRST_RUN + timedelta(minutes=m), 0)[1] for m in (0, 1, 2)]
    assert calls == [1, 1, 1]
