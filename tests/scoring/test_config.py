"""The scoring section of the configuration: defaults, shipped YAML files, and errors at file:line path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel
from ruamel.yaml import YAML

from core.config.loader import parse_config
from core.config.scoring import Measure, Scorecard, ScoringConfig
from core.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]


def _problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(text, file="agent.yaml")
    return [str(p) for p in info.value.problems]


def test_both_shipped_files_carry_the_default_scorecard_and_bands() -> None:
    default = ScoringConfig()
    for name in ("agent.example.yaml", "sandbox.yaml"):
        scoring = parse_config((ROOT / "config" / name).read_text(), file=name, env={}).scoring
        assert scoring.scorecards == default.scorecards, name
        assert scoring.bands == default.bands, name
        assert scoring.relationship == default.relationship, name


def _model_keys(model: type[BaseModel], prefix: str = "") -> set[str]:
    keys = set()
    for name, field in model.model_fields.items():
        keys.add(prefix + name)
        inner = field.annotation
        if isinstance(inner, type) and issubclass(inner, BaseModel):
            keys |= _model_keys(inner, f"{prefix}{name}.")
    return keys


def _yaml_keys(node: Any, prefix: str = "") -> set[str]:
    keys: set[str] = set()
    if isinstance(node, dict):
        for k, v in node.items():
            keys.add(prefix + str(k))
            keys |= _yaml_keys(v, f"{prefix}{k}.")
    return keys


def test_the_example_file_spells_out_every_scoring_option() -> None:
    tree = YAML(typ="safe").load((ROOT / "config" / "agent.example.yaml").read_text())["scoring"]
    written = _yaml_keys(tree)
    assert _model_keys(ScoringConfig) - written == set()
    card = tree["scorecards"][0]
    assert set(card) == set(Scorecard.model_fields)
    assert all(set(m) == set(Measure.model_fields) for m in card["measures"])


def test_an_unknown_signal_is_named_at_its_line() -> None:
    text = """version: 1
scoring:
  scorecards:
    - name: main
      measures:
        - name: nps
          signal: nps_lastest
          normalization: {kind: linear, bad: 0, good: 10}
"""
    problems = _problems(text)
    assert len(problems) == 1
    assert problems[0].startswith("agent.yaml:7 scoring.scorecards[0].measures[0].signal: unknown signal 'nps_lastest'")


def test_bad_normalizations_bands_and_weights_point_at_the_exact_key() -> None:
    text = """version: 1
scoring:
  bands:
    - {name: red, min_score: 0}
    - {name: green, min_score: 70}
    - {name: yellow, min_score: 40}
  scorecards:
    - name: main
      measures:
        - name: nps
          signal: nps_latest
          weight: 0
          normalization: {kind: tiered, tiers: [{at_least: 5, points: 50}, {at_least: 1, points: 10}]}
"""
    problems = _problems(text)
    assert problems == [
        "agent.yaml:3 scoring.bands: bands must be in strictly ascending min_score order (got [0.0, 70.0, 40.0])",
        "agent.yaml:12 scoring.scorecards[0].measures[0].weight: Input should be greater than 0 (got 0)",
        "agent.yaml:13 scoring.scorecards[0].measures[0].normalization.tiers: "
        "tiers must be in strictly ascending at_least order (got [5.0, 1.0])",
    ]


def test_a_measure_naming_an_undefined_group_is_an_error() -> None:
    text = """version: 1
scoring:
  scorecards:
    - name: main
      groups: {usage: 1}
      measures:
        - {name: nps, signal: nps_latest, group: feedback, normalization: {kind: boolean}}
"""
    assert _problems(text) == [
        "agent.yaml:4 scoring.scorecards[0]: measure 'nps': group 'feedback' is not one of ['usage']"]


def test_custom_signals_must_be_declared() -> None:
    text = """version: 1
scoring:
  scorecards:
    - name: main
      measures:
        - {name: tier, signal: custom.account_tier, normalization: {kind: categorical, points: {gold: 100}}}
"""
    assert _problems(text) == [
        "agent.yaml:2 scoring: scorecard 'main' measure 'tier': custom.account_tier is not in custom_signals"]


def test_an_unknown_normalization_kind_lists_the_kinds() -> None:
    text = """version: 1
scoring:
  scorecards:
    - name: main
      measures:
        - {name: nps, signal: nps_latest, normalization: {kind: sigmoid}}
"""
    assert _problems(text) == [
        "agent.yaml:6 scoring.scorecards[0].measures[0].normalization: "
        "kind must be one of linear, tiered, percentile, boolean, categorical"]
