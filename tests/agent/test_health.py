"""The health endpoint: liveness, readiness (store, scheduler, last run) and Prometheus metrics."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine

from agent.health import HealthServer, Readiness, parse_listen
from agent.metrics import AgentMetrics
from agent.report import ApiUsage, RunReport, ScoringSummary, StreamSummary, WritebackSummary, WriteFailure
from core.errors import ConfigError
from store.db import make_engine
from tests.agent.helpers import T0, add_run


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:  # noqa: S310 - loopback test server
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


@pytest.fixture
def serve() -> Iterator[Callable[..., HealthServer]]:
    servers: list[HealthServer] = []

    def start(engine: Engine, metrics: AgentMetrics | None = None, alive: bool = True) -> HealthServer:
        server = HealthServer("127.0.0.1:0", metrics=metrics or AgentMetrics(), readiness=Readiness(engine, lambda: alive))
        servers.append(server.start())
        return server

    yield start
    for s in servers:
        s.stop()


def _report(status: str) -> RunReport:
    return RunReport(
        run_id="r1", status=status, started_at=T0, finished_at=T0 + timedelta(seconds=42),
        streams=[
            StreamSummary(source="salesforce", stream="accounts", records=300, rejected=2),
            StreamSummary(source="salesforce", stream="tasks", records=5000, error="boom"),
            StreamSummary(source="hubspot", stream="companies", records=120),
        ],
        api=[ApiUsage(system="salesforce", calls=31, retries=3), ApiUsage(system="hubspot", calls=12)],
        scoring=ScoringSummary(accounts=420, bands=["red", "yellow", "green"], band_counts={"red": 40, "yellow": 80, "green": 300}),
        writeback=WritebackSummary(fields_written=900, tasks_created=17, failures=[WriteFailure(crm="hubspot", record_id="9", error="x")]),
    )


def test_metrics_are_scraped_and_parse_with_exact_values(store_engine: Engine, serve) -> None:
    metrics = AgentMetrics()
    metrics.observe_run(_report("succeeded"))
    metrics.observe_run(_report("partial"))
    status, body = _get(serve(store_engine, metrics).url + "/metrics")
    assert status == 200
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(body)
        for s in family.samples
    }
    assert samples[("health_agent_runs_total", (("status", "succeeded"),))] == 1
    assert samples[("health_agent_runs_total", (("status", "partial"),))] == 1
    assert samples[("health_agent_records_pulled_total", (("source", "salesforce"),))] == 2 * 5300
    assert samples[("health_agent_records_rejected_total", (("source", "salesforce"),))] == 4
    assert samples[("health_agent_stream_errors_total", (("source", "salesforce"),))] == 2
    assert samples[("health_agent_api_calls_total", (("system", "salesforce"),))] == 62
    assert samples[("health_agent_api_retries_total", (("system", "salesforce"),))] == 6
    assert samples[("health_agent_fields_written_total", ())] == 1800
    assert samples[("health_agent_tasks_created_total", ())] == 34
    assert samples[("health_agent_write_failures_total", ())] == 2
    assert samples[("health_agent_accounts", (("band", "red"),))] == 40
    assert samples[("health_agent_last_success_timestamp_seconds", ())] == (T0 + timedelta(seconds=42)).timestamp()
    assert samples[("health_agent_run_duration_seconds_count", ())] == 2
    assert samples[("health_agent_run_duration_seconds_sum", ())] == 84


def test_healthz_answers_and_unknown_paths_are_404(store_engine: Engine, serve) -> None:
    server = serve(store_engine)
    assert _get(server.url + "/healthz") == (200, "ok\n")
    assert _get(server.url + "/nope")[0] == 404


def test_readyz_is_ready_with_a_store_a_scheduler_and_no_failed_run(store_engine: Engine, serve) -> None:
    add_run(store_engine, "ok-run", status="succeeded")
    status, body = _get(serve(store_engine).url + "/readyz")
    assert status == 200
    assert json.loads(body)["checks"]["last_run"] == {"ok": True, "detail": "succeeded (ok-run)"}


def test_readyz_fails_when_the_last_run_failed(store_engine: Engine, serve) -> None:
    add_run(store_engine, "old", minutes=0, status="succeeded")
    add_run(store_engine, "bad", minutes=5, status="failed")
    status, body = _get(serve(store_engine).url + "/readyz")
    assert status == 503
    assert json.loads(body)["checks"]["last_run"] == {"ok": False, "detail": "failed (bad)"}


def test_readyz_fails_when_the_scheduler_is_not_running(store_engine: Engine, serve) -> None:
    status, body = _get(serve(store_engine, alive=False).url + "/readyz")
    assert status == 503
    assert json.loads(body)["checks"]["scheduler"]["ok"] is False


def test_readyz_fails_when_the_store_is_unreachable(serve) -> None:
    unreachable = make_engine("postgresql+psycopg://postgres@127.0.0.1:1/none", connect_args={"connect_timeout": 2})
    status, body = _get(serve(unreachable).url + "/readyz")
    assert status == 503
    checks = json.loads(body)["checks"]
    assert checks["store"]["ok"] is False
    assert checks["store"]["detail"].startswith("unreachable")
    assert checks["scheduler"]["ok"] is True


def test_listen_address_is_parsed_or_refused() -> None:
    assert parse_listen("0.0.0.0:9464") == ("0.0.0.0", 9464)  # noqa: S104 - parsing only
    assert parse_listen(":9000") == ("127.0.0.1", 9000)
    with pytest.raises(ConfigError, match="host:port"):
        parse_listen("localhost")


def test_restarted_service_restores_gauges_but_not_counters() -> None:
    metrics = AgentMetrics()
    metrics.restore(_report("failed"), _report("succeeded"))
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(metrics.exposition().decode())
        for s in family.samples
    }
    assert samples[("health_agent_last_run_failed", ())] == 1
    assert samples[("health_agent_accounts", (("band", "green"),))] == 300
    assert samples[("health_agent_last_success_timestamp_seconds", ())] == (T0 + timedelta(seconds=42)).timestamp()
    assert not any(name == "health_agent_runs_total" for name, _ in samples)


def test_a_busy_port_is_a_config_error_naming_the_address(store_engine: Engine, serve) -> None:
    server = serve(store_engine)
    taken = server.url.removeprefix("http://")
    with pytest.raises(ConfigError, match=f"cannot listen on {taken}"):
        HealthServer(taken, metrics=AgentMetrics(), readiness=Readiness(store_engine, lambda: True))
