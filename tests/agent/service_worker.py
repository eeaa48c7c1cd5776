"""A ``health-agent start`` stand-in for the SIGTERM test: the real Service with a fake pipeline.

Usage: python -m tests.agent.service_worker DATABASE_URL {cooperative|stuck} GRACE_SECONDS
The fake pull runs batches of 50 ms until ``should_stop`` (cooperative) or ignores it (stuck).
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from typing import Any

from agent.logging import configure_logging
from agent.run import Steps
from agent.service import Service
from agent.settings import Settings
from core.config import AgentConfig
from store.db import make_engine
from store.migrate import upgrade


@dataclass
class _Stream:
    name: str = "accounts"
    entity: str = "accounts"


class _Connector:
    name = "salesforce"

    def check(self) -> None:
        return None

    def streams(self) -> list[_Stream]:
        return [_Stream()]


@dataclass
class _Report:
    source: str = "salesforce"
    stream: str = "accounts"
    records: int = 0
    error: str | None = None


class _Stats:
    def systems(self) -> list[str]:
        return []


def main() -> int:
    url, mode, grace = sys.argv[1], sys.argv[2], int(sys.argv[3])
    configure_logging("json")
    engine = make_engine(url)
    upgrade(engine)

    def pull_all(engine: Any, connectors: Any, *, should_stop: Any, **kw: Any) -> list[_Report]:
        batches = 0
        while mode == "stuck" or not should_stop():
            time.sleep(0.05)  # one batch of the fake pull
            batches += 1
        return [_Report(records=batches)]

    steps = Steps(
        build_connectors=lambda config, settings, stats: [_Connector()],
        pull_all=pull_all,
        link_accounts=lambda engine: {},
        score_accounts=lambda *a, **k: None,
        build_plan=lambda *a, **k: None,
        apply_plan=lambda *a, **k: None,
        new_stats=_Stats,
    )
    config = AgentConfig.model_validate(
        {
            "version": 1,
            "schedule": {"cron": None, "interval_minutes": 60, "shutdown_grace_seconds": grace, "lease_ttl_seconds": 30},
            "observability": {"listen": "127.0.0.1:0", "report_dir": ""},
        }
    )
    service = Service(config, Settings(), engine, steps=steps)
    return service.exit_process(service.serve())


if __name__ == "__main__":
    sys.exit(main())
