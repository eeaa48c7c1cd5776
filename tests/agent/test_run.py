"""run_once with small fakes for connectors, sync, scoring and writeback: statuses, budget, report storage."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from sqlalchemy import Engine, insert, select

from agent.run import Steps, run_once
from agent.settings import Settings
from core.config import AgentConfig
from core.errors import AuthError
from store.models import Account, Run, ScoreHistory
from tests.agent.helpers import T0, add_accounts
from writeback.apply import CrmReport, WritebackReport


@dataclass
class FakeStream:
    name: str
    entity: str


@dataclass
class Usage:
    used: int
    max: int


class FakeSalesforceClient:
    def __init__(self, used: int, limit: int) -> None:
        self.api_usage: Usage | None = None
        self._usage = Usage(used, limit)

    def limits(self) -> dict[str, Any]:
        self.api_usage = self._usage
        return {}


@dataclass
class FakeConnector:
    name: str
    stream_list: list[FakeStream]
    client: Any = None
    broken: bool = False

    def check(self) -> None:
        if self.broken:
            raise AuthError(f"{self.name} refused the token", system=self.name)

    def streams(self) -> list[FakeStream]:
        return self.stream_list


@dataclass
class FakeStreamReport:
    source: str
    stream: str
    records: int
    pages: int
    api_calls: int
    retries: int = 0
    rejected: list[Any] = field(default_factory=list)
    deleted: int = 0
    seconds: float = 0.01
    error: str | None = None


class FakeStats:
    def __init__(self) -> None:
        self.calls: dict[str, int] = {}

    def systems(self) -> list[str]:
        return sorted(self.calls)

    def snapshot(self, system: str) -> Any:
        @dataclass
        class Snap:
            calls: int
            retries: int = 0

        return Snap(self.calls.get(system, 0))


@dataclass
class FakeGuard:
    stopped: bool = False
    reason: str | None = None


@dataclass
class FakeChange:
    crm: str
    record_id: str
    action: str = "write"


@dataclass
class FakeTask:
    crm: str
    kind: str = "create"


@dataclass
class FakePlan:
    changes: list[FakeChange]
    tasks: list[Any]
    guard: FakeGuard


class Pipeline:
    """Fakes with the agreed signatures; records what run_once asked of them."""

    def __init__(self, connectors: list[FakeConnector], failing_streams: frozenset[str] = frozenset()) -> None:
        self.connectors = connectors
        self.failing = failing_streams
        self.pulled: list[str] = []
        self.applied: list[dict[str, Any]] = []
        self.stats = FakeStats()
        self.stop_after_pull = False
        self.score_workers: int | None = None

    def steps(self) -> Steps:
        return Steps(
            build_connectors=lambda config, settings, stats: self.connectors,
            pull_all=self.pull_all,
            link_accounts=lambda engine: {"survey_responses": 0},
            score_accounts=self.score,
            build_plan=self.plan,
            apply_plan=self.apply,
            new_stats=lambda: self.stats,
        )

    def pull_all(self, engine: Engine, connectors: list[Any], *, run_id: str, limits: Any, progress: Any, should_stop: Any) -> list[Any]:
        out = []
        for c in connectors:
            for s in c.streams():
                self.pulled.append(f"{c.name}/{s.name}")
                self.stats.calls[c.name] = self.stats.calls.get(c.name, 0) + 2
                error = "boom: 500 after 6 tries" if s.name in self.failing else None
                out.append(FakeStreamReport(c.name, s.name, records=0 if error else 10, pages=2, api_calls=2, error=error))
        return out

    def score(self, engine: Engine, config: Any, *, run_id: str, workers: int | None = None) -> None:
        self.score_workers = workers
        with engine.begin() as conn:
            for (account_id,) in conn.execute(select(Account.id)).all():
                conn.execute(
                    insert(ScoreHistory).values(
                        run_id=run_id, account_id=account_id, scored_at=T0, as_of=T0, scorecard="default",
                        score=20.0 * account_id, band="red" if account_id < 2 else "green", computed_band="red",
                        coverage=1.0, flags={"single_threaded": account_id == 1}, measures=[], signals={}, drivers="x",
                    )
                )

    def plan(self, engine: Engine, config: Any, *, run_id: str, crms: list[str]) -> FakePlan:
        return FakePlan([FakeChange("salesforce", "001A"), FakeChange("salesforce", "001B")], [FakeTask("salesforce")], FakeGuard())

    def apply(self, engine: Engine, plan: FakePlan, *, clients: Any, run_id: str, dry_run: bool, force: bool) -> WritebackReport:
        self.applied.append({"crms": sorted(clients), "dry_run": dry_run, "tasks": len(plan.tasks)})
        report = WritebackReport(run_id, dry_run, force, guard_stopped=False, guard_reason=None)
        if not dry_run:
            report.crms["salesforce"] = CrmReport(
                fields_written=1, records_written=1, api_calls=1, failures={"001B": "UNABLE_TO_LOCK_ROW"},
                tasks_created=len(plan.tasks),
            )
            self.stats.calls["salesforce"] = self.stats.calls.get("salesforce", 0) + 1
        return report


@pytest.fixture
def config(tmp_path: Path) -> AgentConfig:
    return AgentConfig.model_validate({"version": 1, "observability": {"report_dir": str(tmp_path / "reports"), "listen": ""}})


def _salesforce(used: int = 0, limit: int = 15_000) -> FakeConnector:
    streams = [FakeStream("accounts", "accounts"), FakeStream("tasks", "activities"), FakeStream("opportunities", "deals")]
    return FakeConnector("salesforce", streams, client=FakeSalesforceClient(used, limit))


def test_run_with_a_failing_write_is_partial_and_stores_its_report(store_engine: Engine, config: AgentConfig) -> None:
    add_accounts(store_engine, ["Acme", "Globex"])
    pipe = Pipeline([_salesforce(), FakeConnector("nps", [FakeStream("responses", "survey_responses")])])
    report = run_once(config, Settings(), engine=store_engine, steps=pipe.steps())
    assert report.status == "partial"
    assert pipe.pulled == ["salesforce/accounts", "salesforce/tasks", "salesforce/opportunities", "nps/responses"]
    assert report.records_by_source() == {"salesforce": 30, "nps": 10}
    assert report.scoring is not None and report.scoring.band_counts == {"red": 1, "yellow": 0, "green": 1}
    assert report.scoring.flag_counts["single_threaded"] == 1
    assert report.writeback is not None
    assert (report.writeback.planned_changes, report.writeback.fields_written, len(report.writeback.failures)) == (2, 1, 1)
    assert [(a.system, a.calls, a.floor_calls) for a in report.api] == [("nps", 2, 2), ("salesforce", 7, 7)]
    with store_engine.connect() as conn:
        row = conn.execute(select(Run.status, Run.report, Run.trigger)).one()
    assert row.status == "partial" and row.trigger == "cli"
    assert row.report["writeback"]["fields_written"] == 1
    assert report.html_path is not None and Path(report.html_path).read_text().count("<svg") == 3


def test_scoring_workers_come_from_the_environment(store_engine: Engine, config: AgentConfig,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    add_accounts(store_engine, ["Acme"])
    pipe = Pipeline([_salesforce()])
    run_once(config, Settings(), engine=store_engine, steps=pipe.steps())
    assert pipe.score_workers is None  # unset: scoring's default, one process
    monkeypatch.setenv("HEALTH_AGENT_SCORING_WORKERS", "3")
    run_once(config, Settings(), engine=store_engine, steps=pipe.steps())
    assert pipe.score_workers == 3
    monkeypatch.setenv("HEALTH_AGENT_SCORING_WORKERS", "0")
    with pytest.raises(ValidationError, match="greater than or equal to 1"):
        Settings()


def test_one_failing_stream_does_not_stop_the_others(store_engine: Engine, config: AgentConfig) -> None:
    add_accounts(store_engine, ["Acme"])
    pipe = Pipeline([_salesforce()], failing_streams=frozenset({"tasks"}))
    report = run_once(config, Settings(), engine=store_engine, steps=pipe.steps(), dry_run=True)
    assert [s.stream for s in report.failing_streams()] == ["tasks"]
    assert [s.records for s in report.streams] == [10, 0, 10]
    assert report.scoring is not None and report.scoring.accounts == 1
    assert pipe.applied == [{"crms": ["salesforce"], "dry_run": True, "tasks": 1}]
    assert report.status == "partial"


def test_a_refused_source_is_reported_and_the_rest_runs(store_engine: Engine, config: AgentConfig) -> None:
    add_accounts(store_engine, ["Acme"])
    hubspot = FakeConnector("hubspot", [FakeStream("companies", "accounts")], client=object(), broken=True)
    pipe = Pipeline([_salesforce(), hubspot])
    report = run_once(config, Settings(), engine=store_engine, steps=pipe.steps())
    assert "hubspot: hubspot refused the token" in report.errors
    assert [(s.source, s.stream, s.error) for s in report.streams if s.source == "hubspot"] == [
        ("hubspot", "companies", "hubspot refused the token")
    ]
    assert "hubspot/companies" not in pipe.pulled
    assert pipe.applied[0]["crms"] == ["salesforce"]


def test_short_salesforce_budget_defers_other_streams_and_tasks(store_engine: Engine, config: AgentConfig) -> None:
    config = config.model_copy(update={"limits": config.limits.model_copy(update={
        "salesforce": config.limits.salesforce.model_copy(update={"pull_share_of_daily_limit": 0.9})
    })})
    add_accounts(store_engine, ["Acme", "Globex"])
    # 15,000 limit, 3,000 reserve: 12,000 - used available. 10 calls per never-pulled stream, 2 to write 2 accounts.
    pipe = Pipeline([_salesforce(used=15_000 - 3_000 - 22)])
    report = run_once(config, Settings(), engine=store_engine, steps=pipe.steps())
    assert pipe.pulled == ["salesforce/accounts", "salesforce/tasks"]
    assert [s.stream for s in report.streams if s.deferred] == ["opportunities"]
    assert pipe.applied == [{"crms": ["salesforce"], "dry_run": False, "tasks": 0}]
    assert report.writeback is not None and report.writeback.tasks_deferred == 1
    assert [(b.system, b.available, b.estimated_pull, b.estimated_write, b.deferred) for b in report.budget] == [
        ("salesforce", 22, 30, 3, ["pull salesforce/opportunities", "tasks in salesforce"])
    ]
    assert len(report.deferred) == 2


def test_stop_requested_during_pull_ends_the_run_interrupted_before_scoring(store_engine: Engine, config: AgentConfig) -> None:
    add_accounts(store_engine, ["Acme"])
    pipe = Pipeline([_salesforce()])
    report = run_once(config, Settings(), engine=store_engine, steps=pipe.steps(), should_stop=lambda: bool(pipe.pulled))
    assert report.status == "interrupted"
    assert report.scoring is None and pipe.applied == []


def test_a_crash_in_scoring_marks_the_run_failed(store_engine: Engine, config: AgentConfig) -> None:
    pipe = Pipeline([_salesforce()])

    def broken_score(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("division by zero in a measure")

    steps = pipe.steps()
    from dataclasses import replace

    report = run_once(config, Settings(), engine=store_engine, steps=replace(steps, score_accounts=broken_score))
    assert report.status == "failed"
    assert report.errors == ["RuntimeError: division by zero in a measure"]
    with store_engine.connect() as conn:
        assert conn.execute(select(Run.status, Run.error)).one() == ("failed", "RuntimeError: division by zero in a measure")


def test_old_runs_beyond_keep_runs_are_pruned(store_engine: Engine, tmp_path: Path) -> None:
    config = AgentConfig.model_validate({"version": 1, "observability": {"report_dir": "", "keep_runs": 2}})
    pipe = Pipeline([])
    ids = [run_once(config, Settings(), engine=store_engine, steps=pipe.steps()).run_id for _ in range(3)]
    with store_engine.connect() as conn:
        kept = set(conn.execute(select(Run.id)).scalars())
    assert kept == set(ids[1:])


def test_html_reports_beyond_keep_runs_are_deleted(store_engine: Engine, tmp_path: Path) -> None:
    config = AgentConfig.model_validate(
        {"version": 1, "observability": {"report_dir": str(tmp_path / "reports"), "keep_runs": 2}}
    )
    paths = [run_once(config, Settings(), engine=store_engine, steps=Pipeline([]).steps()).html_path for _ in range(3)]
    assert sorted(p.name for p in (tmp_path / "reports").iterdir()) == sorted(Path(p).name for p in paths[1:] if p)


def test_every_stream_deferred_by_the_budget_still_scores_and_writes(store_engine: Engine, config: AgentConfig) -> None:
    add_accounts(store_engine, ["Acme", "Globex"])
    pipe = Pipeline([_salesforce(used=15_000 - 3_000 - 2)])  # 2 calls left: enough to write 2 accounts, no pulls
    report = run_once(config, Settings(), engine=store_engine, steps=pipe.steps())
    assert pipe.pulled == []
    assert [s.deferred for s in report.streams] == [True, True, True]
    assert report.scoring is not None and report.scoring.accounts == 2
    assert pipe.applied == [{"crms": ["salesforce"], "dry_run": False, "tasks": 0}]


def test_every_stream_failing_fails_the_run_before_scoring(store_engine: Engine, config: AgentConfig) -> None:
    pipe = Pipeline([_salesforce()], failing_streams=frozenset({"accounts", "tasks", "opportunities"}))
    report = run_once(config, Settings(), engine=store_engine, steps=pipe.steps())
    assert report.status == "failed"
    assert report.errors == ["no stream could be pulled; nothing was scored or written"]
    assert report.scoring is None
