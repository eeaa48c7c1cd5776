"""Small builders of store rows for the agent's tests (accounts, runs and score history)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, insert

from store.models import Account, Run, ScoreHistory

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
BANDS = [("red", 0.0), ("yellow", 40.0), ("green", 70.0)]


def add_accounts(engine: Engine, names: list[str], source: str = "salesforce") -> list[int]:
    with engine.begin() as conn:
        return [
            conn.execute(
                insert(Account)
                .values(source=source, external_id=f"001{i:05d}", name=name, synced_at=T0, extra={})
                .returning(Account.id)
            ).scalar_one()
            for i, name in enumerate(names)
        ]


def add_run(engine: Engine, run_id: str, minutes: int = 0, status: str = "succeeded", report: Any = None) -> None:
    with engine.begin() as conn:
        conn.execute(
            insert(Run).values(
                id=run_id, started_at=T0 + timedelta(minutes=minutes), finished_at=T0 + timedelta(minutes=minutes + 1),
                status=status, trigger="cli", dry_run=False, host="test", report=report or {},
            )
        )


def add_scores(engine: Engine, run_id: str, scores: dict[int, tuple[float, str]], flags: dict[int, list[str]] | None = None) -> None:
    flags = flags or {}
    with engine.begin() as conn:
        for account_id, (score, band) in scores.items():
            conn.execute(
                insert(ScoreHistory).values(
                    run_id=run_id, account_id=account_id, scored_at=T0, as_of=T0, scorecard="default",
                    score=score, band=band, computed_band=band, coverage=1.0, low_confidence=score < 10,
                    flags={f: {"on": True, "reason": "test"} for f in flags.get(account_id, [])},
                    measures=[], signals={}, drivers=f"driver of {account_id}",
                )
            )
