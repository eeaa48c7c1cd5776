"""The agent's CLI commands in-process: status (runs, cursors, API usage, failing streams) and run --once."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import Engine, insert
from typer.testing import CliRunner

from agent.cli import app
from store.models import SyncState
from tests.agent.helpers import T0, add_run

runner = CliRunner()


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "agent.yaml"
    path.write_text(
        "version: 1\nschedule: {cron: '0 */6 * * *', timezone: UTC}\n"
        f"observability: {{listen: '', report_dir: '{tmp_path / 'reports'}'}}\n",
        encoding="utf-8",
    )
    return path


def _url(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=False)


def test_status_json_lists_runs_cursors_usage_and_failing_streams(store_engine: Engine, config_file: Path) -> None:
    report = {
        "duration_seconds": 12.5,
        "streams": [{"source": "salesforce", "stream": "tasks", "records": 40, "error": None},
                    {"source": "hubspot", "stream": "calls", "records": 0, "error": "HubSpot answered 500"}],
        "api": [{"system": "salesforce", "calls": 31, "retries": 2, "remaining": 14000, "daily_limit": 15000, "reserve": 3000}],
        "writeback": {"fields_written": 7, "tasks_created": 1},
    }
    add_run(store_engine, "run-a", minutes=0, status="partial", report=report)
    with store_engine.begin() as conn:
        conn.execute(insert(SyncState).values(source="hubspot", stream="calls", cursor=T0, records_synced=10,
                                              last_error="HubSpot answered 500", updated_at=T0))
        conn.execute(insert(SyncState).values(source="salesforce", stream="tasks", cursor=T0, records_synced=40,
                                              last_success_at=T0, updated_at=T0))
    result = runner.invoke(app, ["status", "--json", "--config", str(config_file), "--database-url", _url(store_engine)])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["runs"] == [{
        "id": "run-a", "started_at": T0.isoformat(), "status": "partial", "trigger": "cli", "dry_run": False,
        "seconds": 12.5, "records": 40, "failing_streams": ["hubspot/calls"], "fields_written": 7, "tasks_created": 1,
        "error": None,
    }]
    assert [(c["source"], c["stream"], c["records_synced"]) for c in payload["cursors"]] == [
        ("hubspot", "calls", 10), ("salesforce", "tasks", 40),
    ]
    assert [c["stream"] for c in payload["failing_streams"]] == ["calls"]
    assert payload["api_usage"] == report["api"]
    assert len(payload["next_runs"]) == 3


def test_status_as_text_shows_the_tables(store_engine: Engine, config_file: Path) -> None:
    add_run(store_engine, "run-b", status="succeeded", report={"streams": [], "api": []})
    result = runner.invoke(app, ["status", "--config", str(config_file), "--database-url", _url(store_engine)])
    assert result.exit_code == 0, result.output
    for title in ("Recent runs", "Cursors", "API usage", "Next scheduled runs"):
        assert title in result.stdout


def test_run_once_with_no_sources_succeeds_and_prints_its_report(
    store_engine: Engine, config_file: Path, tmp_path: Path
) -> None:
    result = runner.invoke(app, ["run", "--once", "--config", str(config_file), "--database-url", _url(store_engine)])
    assert result.exit_code == 0, result.output
    assert "(cli): succeeded" in result.stdout
    assert "Scored 0 accounts" in result.stdout
    assert len(list((tmp_path / "reports").glob("run-*.html"))) == 1


def test_run_without_once_is_a_usage_error(config_file: Path) -> None:
    assert runner.invoke(app, ["run", "--config", str(config_file)]).exit_code == 2


def test_run_once_refuses_while_another_replica_holds_the_lease(store_engine: Engine, config_file: Path) -> None:
    from agent.lease import RunLease

    assert RunLease(store_engine, holder="replica-b:42", ttl_seconds=300).try_acquire()
    result = runner.invoke(app, ["run", "--once", "--config", str(config_file), "--database-url", _url(store_engine)])
    assert result.exit_code == 1
    assert "another run is in progress (replica-b:42" in result.stderr


def test_sandbox_describe_prints_the_book_figures(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["sandbox", "serve", "--describe", "--json", "--accounts", "20", "--seed", "3"])
    assert result.exit_code == 0, result.output
    figures = json.loads(result.stdout)
    assert (figures["accounts"], figures["seed"], figures["records"]["accounts"]) == (20, 3, 20)
    assert (tmp_path / "data" / "sandbox" / "book").is_dir()


def test_sandbox_refuses_an_unknown_fault_profile() -> None:
    result = runner.invoke(app, ["sandbox", "serve", "--faults", "gremlins"])
    assert result.exit_code == 2
    assert "unknown fault profile 'gremlins'" in result.stderr
