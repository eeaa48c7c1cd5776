"""The command line: exit codes, validate, db upgrade, config schema, and secrets that never show."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import inspect

from store.db import make_engine

REPO = Path(__file__).resolve().parents[2]
SECRETS = {
    "SALESFORCE_ACCESS_TOKEN": "00Dxx0000001gEF!AQ4AQFakeSalesforceTokenValue",
    "HUBSPOT_ACCESS_TOKEN": "pat-na1-11111111-2222-3333-4444-555555555555",
    "NPS_API_KEY": "nps-key-9f8e7d6c5b4a",
    "INTENT_API_KEY": "intent-key-0a1b2c3d4e5f",
    "SALESFORCE_CLIENT_SECRET": "client-secret-ABCDEF123456",
}


def cli(*args: str, env: dict[str, str] | None = None, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    base = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SALESFORCE_", "HUBSPOT_", "NPS_", "INTENT_", "HEALTH_"))
    }
    return subprocess.run(
        [sys.executable, "-m", "agent.cli", *args],
        capture_output=True,
        text=True,
        env={**base, **(env or {})},
        cwd=cwd,
        timeout=120,
        check=False,
    )


def test_validate_accepts_the_example_config() -> None:
    result = cli("validate", "--config", "config/agent.example.yaml")
    assert result.returncode == 0, result.stderr
    assert "config/agent.example.yaml: valid" in result.stdout


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("version: 1\nschedule:\n  colour: blue\n", ["bad.yaml:3 schedule.colour: unknown key"]),
        (
            "version: 1\nlimits:\n  store_batch_size: lots\n",
            ["bad.yaml:3 limits.store_batch_size: Input should be a valid integer"],
        ),
        ("schedule: {}\n", ["bad.yaml:1 version: required, but missing"]),
        (
            "version: 1\nschedule:\n  timezone: Nowhere/Here\n  misfire_grace_seconds: -1\n",
            [
                "bad.yaml:3 schedule.timezone: unknown time zone",
                "bad.yaml:4 schedule.misfire_grace_seconds: Input should be greater than",
            ],
        ),
        ("version: 1\nschedule: [\n", ["bad.yaml:3: invalid YAML"]),
    ],
    ids=["unknown-key", "wrong-type", "missing-required", "two-errors", "broken-yaml"],
)
def test_validate_rejects_bad_configs_with_exit_2_and_every_place(
    tmp_path: Path, text: str, expected: list[str]
) -> None:
    (tmp_path / "bad.yaml").write_text(text)
    result = cli("validate", "--config", "bad.yaml", cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == len(expected), result.stderr
    for line, start in zip(lines, expected, strict=True):
        assert line.startswith(start), line


def test_usage_errors_exit_2() -> None:
    assert cli("run").returncode == 2
    assert cli("no-such-command").returncode == 2


def test_db_upgrade_creates_the_schema_then_is_a_no_op(database_url: str) -> None:
    first = cli("db", "upgrade", "--database-url", database_url, "--json")
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["changed"] is True
    engine = make_engine(database_url)
    try:
        tables = set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
    assert {
        "accounts",
        "contacts",
        "activities",
        "score_history",
        "write_ledger",
        "task_ledger",
        "sync_state",
        "runs",
    } <= tables
    second = cli("db", "upgrade", "--database-url", database_url, "--json")
    assert second.returncode == 0
    assert json.loads(second.stdout)["changed"] is False


def test_config_schema_prints_json_schema() -> None:
    result = cli("config", "schema")
    assert result.returncode == 0
    assert json.loads(result.stdout)["title"] == "crm-health-agent configuration"


def test_secrets_never_reach_output_logs_or_errors(tmp_path: Path) -> None:
    env = {**SECRETS, "LOG_FORMAT": "json"}
    # A failure whose exception text carries secrets: an unreachable database whose URL holds a password and a token.
    bad_url = f"postgresql+psycopg://agent:{SECRETS['NPS_API_KEY']}@127.0.0.1:1/x?application_name={SECRETS['HUBSPOT_ACCESS_TOKEN']}"
    runs = [
        cli("validate", "--config", "config/agent.example.yaml", "--json", "-v", env=env),
        cli("db", "upgrade", "--database-url", bad_url, "-v", env=env),
        cli("db", "upgrade", "--database-url", bad_url, "--json", env=env),
    ]
    assert runs[0].returncode == 0
    assert runs[1].returncode == 1 and "unexpected error" in runs[1].stderr
    for result in runs:
        for secret in SECRETS.values():
            assert secret not in result.stdout
            assert secret not in result.stderr
