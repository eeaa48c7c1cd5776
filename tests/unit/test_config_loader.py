"""The configuration loader names file:line and the dotted path for every problem, and reports them all."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.config.loader import config_json_schema, load_config, parse_config
from core.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]


def _problems(text: str, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(text, file="agent.yaml", env=env or {})
    return [str(p) for p in info.value.problems]


@pytest.mark.parametrize("name", ["agent.example.yaml", "sandbox.yaml"])
def test_shipped_configs_validate(name: str) -> None:
    config = load_config(REPO / "config" / name, env={})
    assert config.version == 1


def test_unknown_key_names_line_path_and_allowed_keys() -> None:
    problems = _problems("version: 1\nschedule:\n  timezone: UTC\n  colour: blue\n")
    assert len(problems) == 1
    assert problems[0].startswith("agent.yaml:4 schedule.colour: unknown key (allowed here: ")
    assert "cron" in problems[0] and "timezone" in problems[0]


def test_wrong_type_names_the_value() -> None:
    problems = _problems("version: 1\nlimits:\n  http:\n    max_attempts: many\n")
    assert problems == [
        "agent.yaml:4 limits.http.max_attempts: Input should be a valid integer, unable to parse string as an integer (got 'many')"
    ]


def test_missing_required_field() -> None:
    assert _problems("schedule:\n  timezone: UTC\n") == ["agent.yaml:1 version: required, but missing"]


def test_two_errors_are_both_reported_in_file_order() -> None:
    problems = _problems(
        "version: 1\nschedule:\n  cron: '0 * *'\n  timezone: Mars/Olympus\nwriteback:\n  salesforce:\n    fields:\n      score: Health_Score\n"
    )
    assert problems == [
        "agent.yaml:3 schedule.cron: a cron expression has five fields (minute hour day month weekday), got '0 * *'",
        "agent.yaml:4 schedule.timezone: unknown time zone 'Mars/Olympus' (use an IANA name such as Europe/Berlin)",
        "agent.yaml:8 writeback.salesforce.fields.score: 'Health_Score' is a standard Salesforce field; the agent only writes"
        " custom fields (names ending in __c), so it can never overwrite data people own such as Name or OwnerId",
    ]


def test_broken_yaml_syntax_names_the_line() -> None:
    problems = _problems("version: 1\nschedule:\n  cron: [0, 1\n  timezone: UTC\n")
    assert len(problems) == 1
    assert problems[0].startswith("agent.yaml:4: invalid YAML:")


def test_duplicate_keys_are_refused() -> None:
    problems = _problems("version: 1\nversion: 1\n")
    assert problems[0].startswith("agent.yaml:2: invalid YAML:")


def test_a_list_at_the_top_is_refused() -> None:
    assert _problems("- a\n- b\n") == ["agent.yaml:1: the file must be a mapping of sections (sources, scoring, ...)"]


def test_interpolation_uses_env_then_default() -> None:
    text = "version: 1\nobservability:\n  listen: ${LISTEN:-127.0.0.1:9464}\n  report_dir: ${REPORTS}/x\n"
    config = parse_config(text, env={"REPORTS": "/srv/reports"})
    assert config.observability.listen == "127.0.0.1:9464"
    assert config.observability.report_dir == "/srv/reports/x"
    assert parse_config(text, env={"LISTEN": "0.0.0.0:1", "REPORTS": "r"}).observability.listen == "0.0.0.0:1"


def test_an_unset_variable_without_default_is_an_error_at_its_line() -> None:
    assert _problems("version: 1\nobservability:\n  report_dir: ${NOPE}\n") == [
        "agent.yaml:3 observability.report_dir: environment variable NOPE is not set and has no default (write ${NOPE:-value})"
    ]


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="configuration file not found"):
        load_config(tmp_path / "nope.yaml")


def test_json_schema_describes_every_section() -> None:
    schema = config_json_schema()
    assert set(schema["properties"]) >= {
        "version",
        "sources",
        "scoring",
        "writeback",
        "schedule",
        "limits",
        "observability",
    }
    assert schema["additionalProperties"] is False


def test_a_discriminated_union_tag_is_not_named_as_a_key() -> None:
    from typing import Annotated, Literal

    from pydantic import BaseModel, ConfigDict, Field, ValidationError

    from core.config.loader import _key_path, _parse_yaml, _problem_from_error

    class Linear(BaseModel):
        model_config = ConfigDict(extra="forbid")
        kind: Literal["linear"]
        bad: float

    class Tiered(BaseModel):
        model_config = ConfigDict(extra="forbid")
        kind: Literal["tiered"]
        tiers: list[float]

    class Measure(BaseModel):
        normalization: Annotated[Linear | Tiered, Field(discriminator="kind")]

    text = "normalization:\n  kind: tiered\n  tiers: nope\n"
    tree = _parse_yaml(text, "m.yaml")
    with pytest.raises(ValidationError) as info:
        Measure.model_validate({"normalization": {"kind": "tiered", "tiers": "nope"}})
    err = info.value.errors(include_url=False)[0]
    assert err["loc"] == ("normalization", "tiered", "tiers")
    assert _key_path(err["loc"], tree) == ("normalization", "tiers")
    assert str(_problem_from_error(err, tree, "m.yaml")).startswith("m.yaml:3 normalization.tiers: Input should be a valid list")
