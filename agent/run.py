"""One run of the agent: check connectors -> budget -> pull -> link -> score -> plan -> apply -> report.

``run_once`` is the one function the CLI (``run --once``), the scheduler and the tests call. It records a
``runs`` row (running -> succeeded | partial | failed | interrupted), never lets one failing stream stop
the others, stops between batches when ``should_stop`` says so, and returns (and stores) a ``RunReport``.
"""

from __future__ import annotations

import logging
import math
import socket
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, delete, func, insert, select, update

from agent.budget import (
    FIRST_PULL_CALLS,
    PRIORITY_SCORE_WRITES,
    PRIORITY_TASKS,
    BudgetPlan,
    Headroom,
    WorkItem,
    hubspot_headroom,
    plan_budget,
    pull_priority,
    salesforce_headroom,
    write_calls,
)
from agent.logging import log_context
from agent.report import (
    ApiUsage,
    BudgetLine,
    RunReport,
    StreamSummary,
    WritebackSummary,
    WriteFailure,
    summarize_scores,
)
from agent.settings import Settings
from core.config import AgentConfig
from core.errors import HealthAgentError
from core.redaction import redact
from store.models import Account, Run

log = logging.getLogger(__name__)

CRMS = ("salesforce", "hubspot")
ShouldStop = Callable[[], bool]
Progress = Callable[[str], None]  # one human-readable line per step


@dataclass(frozen=True)
class Steps:
    """The pipeline's stages. ``default_steps()`` binds the real modules; tests pass small fakes."""

    build_connectors: Callable[[AgentConfig, Settings, Any], list[Any]]  # (config, settings, stats) -> connectors
    pull_all: Callable[..., list[Any]]  # store.sync.pull_all
    link_accounts: Callable[[Engine], dict[str, int]]
    score_accounts: Callable[..., Any]  # scoring.engine.score_accounts
    build_plan: Callable[..., Any]  # writeback.plan.build_plan
    apply_plan: Callable[..., Any]  # writeback.apply.apply_plan
    new_stats: Callable[[], Any]  # connectors.base.ApiStats


def default_steps() -> Steps:
    """The real pipeline (imported here so ``agent.run`` loads without every package present)."""
    from connectors.base import ApiStats
    from connectors.credentials import Credentials
    from connectors.registry import build_connectors
    from scoring.engine import score_accounts
    from store.linking import link_accounts
    from store.sync import pull_all
    from writeback.apply import apply_plan
    from writeback.plan import build_plan

    def connectors_for(config: AgentConfig, settings: Settings, stats: Any) -> list[Any]:
        credentials = Credentials.model_validate(settings.model_dump(include=set(Credentials.model_fields)))
        return list(build_connectors(config.sources, config.limits, credentials, stats))

    return Steps(
        build_connectors=connectors_for,
        pull_all=pull_all,
        link_accounts=link_accounts,
        score_accounts=score_accounts,
        build_plan=build_plan,
        apply_plan=apply_plan,
        new_stats=ApiStats,
    )


class _Streams:
    """A connector showing only some of its streams (the rest deferred by the budget or failing its check)."""

    def __init__(self, connector: Any, keep: set[str]) -> None:
        self._connector = connector
        self.name: str = connector.name
        self._keep = keep

    def check(self) -> None:
        self._connector.check()

    def streams(self) -> list[Any]:
        return [s for s in self._connector.streams() if s.name in self._keep]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._connector, name)


def run_once(
    config: AgentConfig,
    settings: Settings,
    *,
    engine: Engine | None = None,
    trigger: str = "cli",
    dry_run: bool = False,
    force: bool = False,
    should_stop: ShouldStop | None = None,
    progress: Progress | None = None,
    steps: Steps | None = None,
    run_id: str | None = None,
) -> RunReport:
    """Run one full cycle and return its report (also stored in ``runs.report`` and as an HTML file).

    Never raises for a failing stream, scoring or writeback: those end the run as ``partial`` or ``failed``
    with the reason in ``report.errors``. ``should_stop`` is polled between batches and stages; when it turns
    True the run commits what it has and ends ``interrupted``.
    """
    owns_engine = engine is None
    if engine is None:
        from store.db import make_engine
        from store.migrate import upgrade

        engine = make_engine(settings.database_url)
        upgrade(engine)
    stop = should_stop or (lambda: False)
    run_id = run_id or str(uuid.uuid4())
    report = RunReport(
        run_id=run_id, trigger=trigger, dry_run=dry_run, host=socket.gethostname(), started_at=datetime.now(UTC)
    )
    _insert_run(engine, report)
    cycle: _Cycle | None = None
    try:
        with log_context(run_id=run_id):
            log.info("run started (%s%s)", trigger, ", dry run" if dry_run else "")
            cycle = _Cycle(config, settings, engine, report, steps or default_steps(), stop, progress, force)
            cycle.run()
    except KeyboardInterrupt:
        report.status = "interrupted"
        report.errors.append("interrupted")
    except Exception as exc:  # the run's last line of defence: record why it failed, never leave it "running"
        log.exception("run failed")
        report.status = "failed"
        report.errors.append(_message(exc))
    finally:
        report.finished_at = datetime.now(UTC)
        if cycle is not None:
            report.api = _api_usage(cycle.stats, report, config)
        with log_context(run_id=run_id):
            _finish(engine, config, report)
        if owns_engine:
            engine.dispose()
    return report


class _Cycle:
    def __init__(
        self,
        config: AgentConfig,
        settings: Settings,
        engine: Engine,
        report: RunReport,
        steps: Steps,
        should_stop: ShouldStop,
        progress: Progress | None,
        force: bool,
    ) -> None:
        self.config = config
        self.settings = settings
        self.engine = engine
        self.report = report
        self.steps = steps
        self.should_stop = should_stop
        self.progress = progress
        self.force = force
        self.stats = steps.new_stats()

    def run(self) -> None:
        report = self.report
        connectors = self.steps.build_connectors(self.config, self.settings, self.stats)
        usable = self._check(connectors)
        headroom = self._headroom(usable)
        budget = self._plan_budget(usable, headroom)
        report.budget = _budget_lines(budget, headroom)
        report.deferred.extend(budget.notes(headroom))
        attempted, pulled = self._pull(usable, budget)
        if self.should_stop():
            report.status = "interrupted"
            return
        if connectors and not pulled and (attempted or not usable):
            # Every source refused or every stream failed. (All streams deferred by the budget is not a
            # failure: the run scores what the store has and writes what the budget allows.)
            report.status = "failed"
            report.errors.append("no stream could be pulled; nothing was scored or written")
            return
        report.linked = dict(self.steps.link_accounts(self.engine))
        self._stage("scoring")
        self.steps.score_accounts(self.engine, self.config.scoring, run_id=report.run_id,
                                 workers=self.settings.scoring_workers)
        bands = [(b.name, float(b.min_score)) for b in self.config.scoring.bands]
        report.scoring = summarize_scores(self.engine, report.run_id, bands)
        if self.should_stop():
            report.status = "interrupted"
            return
        try:
            self._writeback(usable, budget)
        except HealthAgentError as exc:  # pulled and scored data stay; the writes wait for the next run
            log.error("writeback failed: %s", exc.user_message)
            report.errors.append(f"writeback: {redact(exc.user_message)}")
        report.status = "interrupted" if self.should_stop() else ("partial" if self._had_errors() else "succeeded")

    def _stage(self, name: str) -> None:
        log.info("stage: %s", name)
        if self.progress is not None:
            self.progress(name)

    def _had_errors(self) -> bool:
        wb = self.report.writeback
        return bool(self.report.errors or self.report.failing_streams() or (wb and (wb.failures or wb.guard_stopped)))

    # --- connectors and the budget --------------------------------------------------------------------

    def _check(self, connectors: list[Any]) -> list[Any]:
        usable = []
        for connector in connectors:
            with log_context(source=connector.name):
                try:
                    connector.check()
                except HealthAgentError as exc:
                    self._fail_source(connector, redact(exc.user_message))
                    continue
            usable.append(connector)
        return usable

    def _fail_source(self, connector: Any, message: str) -> None:
        log.error("source %s cannot be used: %s", connector.name, message)
        self.report.errors.append(f"{connector.name}: {message}")
        for stream in _safe_streams(connector):
            self.report.streams.append(StreamSummary(source=connector.name, stream=stream.name, error=message))

    def _headroom(self, connectors: list[Any]) -> dict[str, Headroom]:
        rooms: dict[str, Headroom] = {}
        limits = self.config.limits
        for connector in connectors:
            client = getattr(connector, "client", None)
            if connector.name == "salesforce" and client is not None:
                try:
                    client.limits()
                except HealthAgentError as exc:
                    log.warning("could not read Salesforce /limits: %s", exc.user_message)
                usage = client.api_usage
                if usage is not None and usage.max > 0:
                    rooms["salesforce"] = salesforce_headroom(
                        usage.max, usage.max - usage.used,
                        reserve_share=limits.salesforce.reserve_share,
                        pull_share=limits.salesforce.pull_share_of_daily_limit,
                    )
            elif connector.name == "hubspot":
                remaining = getattr(client, "daily_remaining", None)
                rooms["hubspot"] = hubspot_headroom(
                    limits.hubspot.daily_limit, _calls_today(self.engine, "hubspot"), remaining
                )
        return rooms

    def _plan_budget(self, connectors: list[Any], headroom: Mapping[str, Headroom]) -> BudgetPlan:
        last_calls = _last_stream_calls(self.engine)
        items: list[WorkItem] = []
        for connector in connectors:
            for stream in _safe_streams(connector):
                calls = last_calls.get((connector.name, stream.name), FIRST_PULL_CALLS)
                key = f"pull:{connector.name}/{stream.name}"
                items.append(WorkItem(key, connector.name, calls, pull_priority(stream.entity)))
        if self.config.writeback.enabled and not self.report.dry_run:
            counts = _live_accounts(self.engine)
            for crm in _crms(connectors):
                writes = write_calls(counts.get(crm, 0), _write_batch(self.config, crm))
                items.append(WorkItem(f"write:{crm}", crm, writes, PRIORITY_SCORE_WRITES))
                tasks = _last_task_calls(self.engine, crm)
                items.append(WorkItem(f"tasks:{crm}", crm, tasks, PRIORITY_TASKS))
        return plan_budget(items, headroom)

    # --- pull ---------------------------------------------------------------------------------------------

    def _pull(self, connectors: list[Any], budget: BudgetPlan) -> tuple[int, int]:
        """Pull every stream the budget allows; (streams attempted, streams that succeeded)."""
        self._stage("pull")
        selected = []
        for connector in connectors:
            keep = set()
            for stream in _safe_streams(connector):
                if budget.is_deferred(f"pull:{connector.name}/{stream.name}"):
                    self.report.streams.append(StreamSummary(source=connector.name, stream=stream.name, deferred=True))
                else:
                    keep.add(stream.name)
            if keep:
                selected.append(_Streams(connector, keep))
        if not selected:
            return 0, 0
        results = self.steps.pull_all(
            self.engine, selected, run_id=self.report.run_id, limits=self.config.limits,
            progress=self._stream_done, should_stop=self.should_stop,
        )
        summaries = [_stream_summary(r) for r in results]
        self.report.streams.extend(summaries)
        return len(summaries), sum(1 for s in summaries if not s.error)

    def _stream_done(self, result: Any) -> None:
        if self.progress is not None:
            outcome = f"error: {redact(result.error)}" if result.error else f"{result.records} records"
            self.progress(f"pulled {result.source}/{result.stream}: {outcome}")

    # --- writeback ------------------------------------------------------------------------------------

    def _writeback(self, connectors: list[Any], budget: BudgetPlan) -> None:
        if not self.config.writeback.enabled:
            return
        clients = crm_clients(connectors)
        crms = [crm for crm in _crms(connectors) if crm in clients and not budget.is_deferred(f"write:{crm}")]
        if not crms:
            return
        self._stage("plan")
        plan = self.steps.build_plan(self.engine, self.config, run_id=self.report.run_id, crms=crms)
        deferred_tasks = [t for t in plan.tasks if budget.is_deferred(f"tasks:{t.crm}")]
        if deferred_tasks:
            plan = replace(plan, tasks=[t for t in plan.tasks if not budget.is_deferred(f"tasks:{t.crm}")])
        self._stage("apply")
        result = self.steps.apply_plan(
            self.engine, plan, clients=clients, run_id=self.report.run_id, dry_run=self.report.dry_run, force=self.force
        )
        summary = _writeback_summary(plan, result)
        summary.tasks_deferred = len(deferred_tasks)
        self.report.writeback = summary
        for crm, crm_report in result.crms.items():
            if crm_report.stopped:
                self.report.deferred.append(f"writes to {crm} stopped early: {redact(crm_report.stopped)}")


def _message(exc: BaseException) -> str:
    return redact(exc.user_message if isinstance(exc, HealthAgentError) else f"{type(exc).__name__}: {exc}")


# --- helpers: summaries from the pieces' own reports and from the store ---------------------------------


def _safe_streams(connector: Any) -> list[Any]:
    try:
        return list(connector.streams())
    except HealthAgentError:
        return []


def crm_clients(connectors: Sequence[Any]) -> dict[str, Any]:
    """crm -> its connector's API client (shared by pull and writeback: one budget, one retry policy)."""
    return {c.name: c.client for c in connectors if c.name in CRMS and getattr(c, "client", None) is not None}


def _crms(connectors: Sequence[Any]) -> list[str]:
    return [c.name for c in connectors if c.name in CRMS]


def _write_batch(config: AgentConfig, crm: str) -> int:
    limits = config.limits
    return limits.salesforce.write_batch_size if crm == "salesforce" else limits.hubspot.write_batch_size


def _stream_summary(result: Any) -> StreamSummary:
    rejected = getattr(result, "rejected", 0)
    return StreamSummary(
        source=result.source,
        stream=result.stream,
        records=int(getattr(result, "records", 0)),
        rejected=rejected if isinstance(rejected, int) else len(rejected),
        deleted=int(getattr(result, "deleted", 0)),
        pages=int(getattr(result, "pages", 0)),
        api_calls=int(getattr(result, "api_calls", 0)),
        retries=int(getattr(result, "retries", 0)),
        seconds=round(float(getattr(result, "seconds", 0.0)), 3),
        error=redact(result.error) if getattr(result, "error", None) else None,
    )


def _writeback_summary(plan: Any, result: Any) -> WritebackSummary:
    """The writeback part of the report from ``writeback.apply.WritebackReport`` (per CRM counts)."""
    failures = [
        WriteFailure(crm=crm, record_id=record_id, error=redact(error))
        for crm, crm_report in result.crms.items()
        for record_id, error in [*crm_report.failures.items(), *crm_report.tasks_failed.items()]
    ]
    return WritebackSummary(
        dry_run=result.dry_run,
        planned_changes=sum(1 for c in plan.changes if c.action == "write"),
        fields_written=result.fields_written,
        records_written=result.records_written,
        tasks_created=result.tasks_created,
        tasks_closed=sum(r.tasks_closed for r in result.crms.values()),
        failures=failures,
        guard_stopped=result.guard_reason if result.guard_stopped else None,
        api_calls={crm: r.api_calls for crm, r in result.crms.items()},
        write_calls={crm: r.write_calls for crm, r in result.crms.items()},
        records_by_crm={crm: r.records_written for crm, r in result.crms.items()},
    )


def _api_usage(stats: Any, report: RunReport, config: AgentConfig) -> list[ApiUsage]:
    """Per system: calls made, split into pulling and field writes, each against its floor."""
    rooms = {b.system: b for b in report.budget}
    wb = report.writeback if report.writeback is not None and not report.writeback.dry_run else None
    out = []
    for system in stats.systems():
        snap = stats.snapshot(system)
        room = rooms.get(system)
        if snap.calls == 0 and (room is None or room.daily_limit is None):
            continue  # a file or warehouse source: no API
        streams = [s for s in report.streams if s.source == system]
        pull_calls = sum(s.api_calls for s in streams)
        pull_floor = sum(s.pages for s in streams)
        write_calls = wb.write_calls.get(system, 0) if wb else 0
        write_floor = (
            math.ceil(wb.records_by_crm[system] / _write_batch(config, system))
            if wb and system in wb.records_by_crm
            else None
        )
        out.append(
            ApiUsage(
                system=system, calls=snap.calls, retries=snap.retries,
                floor_calls=pull_floor + (write_floor or 0),
                pull_calls=pull_calls, pull_floor=pull_floor if streams else None,
                write_calls=write_calls, write_floor=write_floor,
                other_calls=max(snap.calls - pull_calls - write_calls, 0),
                daily_limit=room.daily_limit if room else None, remaining=room.remaining if room else None,
                reserve=room.reserve if room else None,
            )
        )
    return out


def _budget_lines(budget: BudgetPlan, headroom: Mapping[str, Headroom]) -> list[BudgetLine]:
    systems = sorted({i.system for i in [*budget.included, *budget.deferred]})
    return [
        BudgetLine(
            system=system,
            available=headroom[system].available if system in headroom else None,
            daily_limit=headroom[system].daily_limit if system in headroom else None,
            remaining=headroom[system].remaining if system in headroom else None,
            reserve=headroom[system].reserve if system in headroom else None,
            estimated_pull=budget.estimated(system, "pull:"),
            estimated_write=budget.estimated(system, "write:") + budget.estimated(system, "tasks:"),
            deferred=[i.label for i in budget.deferred if i.system == system],
        )
        for system in systems
    ]


# --- the runs table -----------------------------------------------------------------------------------


def _insert_run(engine: Engine, report: RunReport) -> None:
    with engine.begin() as conn:
        conn.execute(
            insert(Run).values(
                id=report.run_id, started_at=report.started_at, status="running", trigger=report.trigger,
                dry_run=report.dry_run, host=report.host, report=report.to_dict(),
            )
        )


def _finish(engine: Engine, config: AgentConfig, report: RunReport) -> None:
    """Store the final report (and its HTML file), and keep only the newest ``keep_runs`` runs."""
    if report.status == "running":
        report.status = "partial" if report.errors else "succeeded"
    report.html_path = _write_html(config, report)
    with engine.begin() as conn:
        conn.execute(
            update(Run)
            .where(Run.id == report.run_id)
            .values(
                finished_at=report.finished_at, status=report.status, report=report.to_dict(),
                error="; ".join(report.errors)[:4000] or None,
            )
        )
        keep = config.observability.keep_runs
        cutoff = conn.execute(select(Run.started_at).order_by(Run.started_at.desc()).offset(keep).limit(1)).scalar()
        if cutoff is not None:
            conn.execute(delete(Run).where(Run.started_at <= cutoff, Run.status != "running"))
    log.info(
        "run %s in %.1f s: %d streams, %d errors",
        report.status, report.duration_seconds or 0.0, len(report.streams), len(report.errors),
    )


def _write_html(config: AgentConfig, report: RunReport) -> str | None:
    folder = config.observability.report_dir
    if not folder:
        return None
    path = Path(folder) / f"run-{report.started_at.strftime('%Y%m%dT%H%M%S.%f')}-{report.run_id[:8]}.html"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(report.render_html(), encoding="utf-8")
        # File names start with the run's UTC start time: the oldest sort first.
        for old in sorted(path.parent.glob("run-*.html"))[: -config.observability.keep_runs]:
            old.unlink(missing_ok=True)
    except OSError as exc:
        log.warning("could not write the HTML run report to %s: %s", path, exc)
        return None
    return str(path)


def _recent_reports(engine: Engine, since: datetime | None = None, limit: int = 50) -> list[dict[str, Any]]:
    query = select(Run.report).where(Run.status != "running").order_by(Run.started_at.desc()).limit(limit)
    if since is not None:
        query = query.where(Run.started_at >= since)
    with engine.connect() as conn:
        return [r for r in conn.execute(query).scalars() if r]


def _last_stream_calls(engine: Engine) -> dict[tuple[str, str], int]:
    """API calls each stream took in the newest run that pulled it (the next run's estimate)."""
    calls: dict[tuple[str, str], int] = {}
    for report in reversed(_recent_reports(engine, limit=10)):
        for s in report.get("streams", []):
            if not s.get("deferred") and not s.get("error"):
                calls[(s["source"], s["stream"])] = max(int(s.get("api_calls", 0)), 1)
    return calls


def _last_task_calls(engine: Engine, crm: str) -> int:
    """Calls the last run spent on one CRM's tasks: two per task created (look-up and create), at least one."""
    for report in _recent_reports(engine, limit=1):
        wb = report.get("writeback") or {}
        return max(2 * int(wb.get("tasks_created", 0)) + int(wb.get("tasks_closed", 0)), 1)
    return 1


def _calls_today(engine: Engine, system: str) -> int:
    """API calls the agent's own runs made to ``system`` since midnight UTC (HubSpot's day has no header)."""
    midnight = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    total = 0
    for report in _recent_reports(engine, since=midnight, limit=500):
        for usage in report.get("api", []):
            if usage.get("system") == system:
                total += int(usage.get("calls", 0))
    return total


def _live_accounts(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(Account.source, func.count()).where(Account.is_deleted.is_(False)).group_by(Account.source)
        ).all()
    return {source: int(n) for source, n in rows}

