"""Pure parts of writeback: configuration validation, canonical values, task conditions and decisions, the guard."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.config.loader import parse_config
from core.config.writeback import GuardConfig, TaskConditions, TaskRule
from core.errors import ConfigError
from writeback.guard import check_blast_radius
from writeback.ledger import TaskEntry
from writeback.tasks import body_with_key, conditions_hold, decide, dedupe_key, render
from writeback.values import ScoreRow, canonical, differs, output_values

NOW = datetime(2026, 11, 1, 6, 0, tzinfo=UTC)


def problems(yaml_text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config("version: 1\n" + yaml_text)
    return [f"{p.line} {p.path}: {p.message}" for p in caught.value.problems]


def test_mapping_a_standard_salesforce_field_is_refused_at_its_key() -> None:
    found = problems("writeback:\n  salesforce:\n    fields:\n      score: Name\n      band: OwnerId\n")
    assert found[0].startswith("5 writeback.salesforce.fields.score: 'Name' is a standard Salesforce field")
    assert found[1].startswith("6 writeback.salesforce.fields.band: 'OwnerId' is a standard Salesforce field")


def test_mapping_a_standard_hubspot_property_is_refused() -> None:
    found = problems("writeback:\n  hubspot:\n    fields:\n      score: name\n      band: hs_lead_status\n")
    assert len(found) == 2
    assert all("is a standard HubSpot property" in p for p in found)


def test_unknown_output_and_two_outputs_on_one_field_are_refused() -> None:
    unknown = problems("writeback:\n  salesforce:\n    fields:\n      health: H__c\n")
    assert unknown[0].startswith("5 writeback.salesforce.fields.health: unknown output 'health'")
    twice = problems("writeback:\n  salesforce:\n    fields:\n      score: S__c\n      band: S__c\n")
    assert any("outputs 'score' and 'band' both map to 'S__c'" in p for p in twice)


def test_task_rule_templates_and_flags_are_checked_at_load() -> None:
    found = problems(
        "writeback:\n  tasks:\n    rules:\n"
        "      - name: r1\n        when: {band_in: [red]}\n        subject: '{{ acount_name }}'\n"
        "      - name: r2\n        when: {}\n        subject: '{{ score'\n"
        "      - name: r3\n        when: {flags_on: [grumpy]}\n        subject: '{{ score }}'\n"
    )
    text = "\n".join(found)
    assert "unknown template variable(s) acount_name" in text
    assert "unknown flag 'grumpy'" in text
    assert "writeback.tasks.rules[1].when: give at least one condition" in text
    assert "writeback.tasks.rules[1].subject: template syntax error" in text


def test_min_delta_only_for_numeric_outputs() -> None:
    found = problems("writeback:\n  min_delta:\n    band: 1\n")
    assert any("only numeric outputs have a minimum delta" in p for p in found)


@pytest.mark.parametrize(
    ("kind", "raw", "value"),
    [
        ("number", "72.45", 72.5), ("number", 72, 72.0), ("integer", "3.0", 3), ("boolean", "true", True),
        ("boolean", "false", False), ("boolean", False, False), ("text", "x" * 300, "x" * 255),
        ("datetime", "2026-11-01T06:00:00.000+0000", "2026-11-01T06:00:00Z"),
        ("datetime", "2026-11-01T06:00:00.000Z", "2026-11-01T06:00:00Z"),
        ("datetime", "1793512800000", "2026-11-01T06:00:00Z"), ("number", "", None), ("text", None, None),
    ],
)
def test_canonical_values_agree_whatever_shape_the_crm_answers(kind: str, raw: object, value: object) -> None:
    assert canonical(kind, raw) == value  # type: ignore[arg-type]


@given(st.floats(0, 100, allow_nan=False), st.floats(-5, 5, allow_nan=False))
def test_numeric_changes_below_min_delta_are_not_changes(old: float, step: float) -> None:
    new = round(old + step, 1)
    assert differs("number", round(old, 1), new, 1.0) == (abs(new - round(old, 1)) >= 1.0)


def row(**overrides: object) -> ScoreRow:
    base = ScoreRow(
        account_id=1, crm="salesforce", record_id="001A", account_name="Acme", owner_id="005A",
        renewal_date=date(2027, 1, 15), scored_at=NOW, score=35.0, band="red", previous_band="yellow", coverage=0.8,
        low_confidence=False, trend_delta=-18.0, trend_days=30, direction="down", relationship_capital=20.0,
        thread_count=1, flags={"single_threaded": True, "expansion_signal": False}, drivers="NPS detractor",
    )
    return replace(base, **overrides)  # type: ignore[arg-type]


def test_output_values_are_canonical() -> None:
    out = output_values(row())
    assert out["coverage"] == 80.0
    assert out["single_threaded"] is True and out["lonely_client"] is False
    assert out["scored_at"] == "2026-11-01T06:00:00Z"


@pytest.mark.parametrize(
    ("when", "holds"),
    [
        ({"band_became": "red"}, True),
        ({"band_became": "yellow"}, False),
        ({"band_in": ["red"], "score_below": 30}, False),
        ({"score_fell_by": 15}, True),
        ({"score_fell_by": 20}, False),
        ({"flags_on": ["single_threaded"], "renewal_within_days": 90}, True),
        ({"flags_on": ["single_threaded"], "renewal_within_days": 60}, False),
        ({"flags_off": ["expansion_signal"], "trend_in": ["down"]}, True),
        ({"coverage_below": 0.6}, False),
        ({"band_changed": False}, False),
    ],
)
def test_task_conditions(when: dict[str, object], holds: bool) -> None:
    today = date(2026, 11, 1)  # renewal in 75 days
    assert conditions_hold(TaskConditions.model_validate(when), row(), today) is holds


def test_band_became_needs_a_previous_band() -> None:
    when = TaskConditions(band_became="red")
    assert not conditions_hold(when, row(previous_band=None), date(2026, 11, 1))


def _rule(**kw: object) -> TaskRule:
    return TaskRule.model_validate({"name": "r", "when": {"band_in": ["red"]}, "subject": "s", **kw})


def _entry(status: str, completed: datetime | None = None) -> TaskEntry:
    return TaskEntry("k", "salesforce", "r", 1, "00T1", status, "s", NOW - timedelta(days=30), completed)


def test_task_decisions_follow_the_ledger_and_the_cooldown() -> None:
    rule = _rule(cooldown_days=14, auto_close=True)
    assert decide(rule, True, None, NOW).action == "create"
    assert decide(rule, True, _entry("pending"), NOW).action == "create"
    assert decide(rule, True, _entry("open"), NOW).action == "check"
    assert decide(rule, True, _entry("completed", NOW - timedelta(days=13)), NOW).action == "none"
    assert decide(rule, True, _entry("completed", NOW - timedelta(days=14)), NOW).action == "create"
    assert decide(rule, False, _entry("open"), NOW).action == "close"
    assert decide(_rule(auto_close=False), False, _entry("open"), NOW).action == "none"


def test_dedupe_key_is_one_token_and_stable() -> None:
    key = dedupe_key("became_red", "hubspot", "9000000001")
    assert key == dedupe_key("became_red", "hubspot", "9000000001")
    assert key != dedupe_key("became_red", "hubspot", "9000000002")
    assert key.isalnum() and len(key) == 26
    assert body_with_key("Why: x\n", key).endswith(f"\n\nhealth-agent key: {key}")


def test_a_template_that_fails_on_odd_data_falls_back() -> None:
    assert render("{{ -delta }} points", {"delta": None}, "fallback") == "fallback"
    assert render("{{ -delta }} points", {"delta": -16.0}, "fallback") == "16.0 points"


def test_guard_share_and_record_limits() -> None:
    config = GuardConfig(max_band_change_share=0.3, min_accounts=20, max_records=100)
    calm = check_blast_radius(config, accounts_scored=100, band_changes=30, records_to_write=100)
    assert not calm.stopped and calm.reason is None
    stormy = check_blast_radius(config, accounts_scored=100, band_changes=31, records_to_write=101)
    assert stormy.stopped
    assert stormy.reason is not None
    assert "31 of 100 accounts (31%) would change band" in stormy.reason
    assert "101 records would be written" in stormy.reason
    few = check_blast_radius(config, accounts_scored=10, band_changes=10, records_to_write=10)
    assert not few.stopped
