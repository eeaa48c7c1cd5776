"""Prometheus metrics of the running agent, in their own ``CollectorRegistry`` (no process-global state).

``AgentMetrics.observe_run(report)`` turns a finished ``RunReport`` into counters and gauges operators
alert on: runs by status, duration, records pulled, API calls and retries by system, writes, tasks,
failures, the last success time and accounts per band.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from agent.report import RunReport

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class AgentMetrics:
    """The agent's metrics. One instance per process (or per test)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.runs = Counter("health_agent_runs", "Runs finished, by status.", ["status"], registry=r)
        self.run_duration = Histogram(
            "health_agent_run_duration_seconds", "Duration of a run (seconds).",
            buckets=(5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200), registry=r,
        )
        labelled = {
            "records": ("health_agent_records_pulled", "Records pulled into the store.", "source"),
            "rejected": ("health_agent_records_rejected", "Records skipped as unmappable.", "source"),
            "stream_errors": ("health_agent_stream_errors", "Streams that failed in a run.", "source"),
            "api_calls": ("health_agent_api_calls", "API requests sent, retries included.", "system"),
            "api_retries": ("health_agent_api_retries", "API requests that were retries.", "system"),
        }
        self.records, self.rejected, self.stream_errors, self.api_calls, self.api_retries = (
            Counter(name, doc, [label], registry=r) for name, doc, label in labelled.values()
        )
        self.fields_written = Counter("health_agent_fields_written", "CRM fields written.", registry=r)
        self.tasks_created = Counter("health_agent_tasks_created", "Follow-up tasks created in the CRM.", registry=r)
        self.write_failures = Counter("health_agent_write_failures", "Writes the CRM refused.", registry=r)
        self.last_success = Gauge(
            "health_agent_last_success_timestamp_seconds", "When the last run succeeded (Unix time).", registry=r
        )
        self.last_run_failed = Gauge("health_agent_last_run_failed", "1 when the last run failed, else 0.", registry=r)
        self.accounts = Gauge("health_agent_accounts", "Accounts per band in the last scoring.", ["band"], registry=r)
        self.running = Gauge("health_agent_run_in_progress", "1 while a run is in progress.", registry=r)

    def observe_run(self, report: RunReport) -> None:
        """Count a finished run."""
        self.runs.labels(report.status).inc()
        if report.duration_seconds is not None:
            self.run_duration.observe(report.duration_seconds)
        for stream in report.streams:
            self.records.labels(stream.source).inc(stream.records)
            self.rejected.labels(stream.source).inc(stream.rejected)
            if stream.error:
                self.stream_errors.labels(stream.source).inc()
        for usage in report.api:
            self.api_calls.labels(usage.system).inc(usage.calls)
            self.api_retries.labels(usage.system).inc(usage.retries)
        if report.writeback is not None:
            self.fields_written.inc(report.writeback.fields_written)
            self.tasks_created.inc(report.writeback.tasks_created)
            self.write_failures.inc(len(report.writeback.failures))
        if report.scoring is not None:
            for band, count in report.scoring.band_counts.items():
                self.accounts.labels(band).set(count)
        if report.status == "succeeded" and report.finished_at is not None:
            self.last_success.set(report.finished_at.timestamp())
        self.last_run_failed.set(1 if report.status == "failed" else 0)

    def restore(self, last: RunReport | None, last_success: RunReport | None) -> None:
        """Set the gauges from runs of an earlier process (after a restart); counters start at zero."""
        if last_success is not None and last_success.finished_at is not None:
            self.last_success.set(last_success.finished_at.timestamp())
        if last is not None:
            self.last_run_failed.set(1 if last.status == "failed" else 0)
            if last.scoring is not None:
                for band, count in last.scoring.band_counts.items():
                    self.accounts.labels(band).set(count)

    def exposition(self) -> bytes:
        """The metrics in the Prometheus text format."""
        return bytes(generate_latest(self.registry))
