"""explain_account and the explain command: every number on screen has its reason."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from rich.console import Console
from sqlalchemy import Engine

from agent.commands import explain as explain_command
from agent.context import CommandContext
from agent.settings import Settings
from core.config.scoring import ScoringConfig
from core.errors import ConfigError
from scoring.explain import explain_account
from tests.scoring.conftest import T

CONFIG = ScoringConfig()


@pytest.mark.parametrize("ref", ["1", "001A", "acme corp", "https://www.acme.com/about"])
def test_an_account_is_found_by_store_id_crm_id_name_or_domain(small_book: Engine, ref: str) -> None:
    assert explain_account(small_book, CONFIG, ref, as_of=T).detail.score.name == "Acme Corp"


def test_unknown_and_deleted_accounts_are_usage_errors(small_book: Engine) -> None:
    with pytest.raises(ConfigError, match="no live account matches 'Gone Ltd'"):
        explain_account(small_book, CONFIG, "Gone Ltd", as_of=T)


def test_the_explanation_breaks_down_score_flags_and_relationship(small_book: Engine) -> None:
    data = explain_account(small_book, CONFIG, "Beta GmbH", as_of=T).to_dict()
    assert (data["score"], data["band"], data["coverage"], data["low_confidence"]) == (30.65, "red", 0.275, True)
    measures = {m["name"]: m for m in data["measures"]}
    assert (measures["last_two_way_touch"]["raw"], measures["last_two_way_touch"]["points"]) == (150.0, 0.0)
    assert measures["csat"]["missing"] and measures["csat"]["points"] is None and measures["csat"]["policy"] == "skip"
    assert sum(m["contribution"] for m in data["measures"]) == pytest.approx(data["score"], abs=0.05)
    assert sum(m["effective_weight"] for m in data["measures"]) == pytest.approx(1.0, abs=1e-3)
    assert data["flags"] == {
        "single_threaded": {"on": False, "reason": "ARR 10,000 is not above 50,000"},
        "lonely_client": {"on": True, "reason": "no touch in 120d (limit 60d)"},
        "champion_gone": {"on": True, "reason": "champion Dee Mgr (3 earlier touches) stopped engaging"},
        "expansion_signal": {"on": False,
                             "reason": "no intent surge >= 70, seats <= 90%, usage growth <= 25%"},
    }
    contact = data["relationship"]["contacts"][0]
    assert (contact["name"], contact["touches"], contact["engaged"], contact["seniority_weight"]) == (
        "Dee Mgr", 3, False, 0.5)
    assert data["relationship"]["thread_count"] == 0


def test_contacts_who_left_are_shown_but_do_not_count(small_book: Engine) -> None:
    contacts = explain_account(small_book, CONFIG, "001A", as_of=T).to_dict()["relationship"]["contacts"]
    assert [(c["name"], c["gone"], c["engaged"]) for c in contacts] == [
        ("Ada Ceo", None, True), ("Bob Dev", None, True), ("Cy Vp", "left", False)]


def _ctx(tmp_path: Path, engine: Engine, as_json: bool) -> tuple[CommandContext, io.StringIO]:
    config = tmp_path / "agent.yaml"
    config.write_text("version: 1\n")
    out = io.StringIO()
    ctx = CommandContext(settings=Settings(), config_path=config, database_url=str(engine.url), as_json=as_json,
                         console=Console(file=out, width=200, force_terminal=False))
    return ctx, out


def test_the_command_prints_the_breakdown(small_book: Engine, tmp_path: Path) -> None:
    if small_book.dialect.name != "sqlite":
        pytest.skip("the command's own engine is built from the URL; one backend is enough here")
    ctx, out = _ctx(tmp_path, small_book, as_json=False)
    assert explain_command.run(ctx, "Beta GmbH") == 0
    text = out.getvalue()
    for expected in ("Beta GmbH", "Measures", "last two-way touch", "champion Dee Mgr (3 earlier touches)",
                     "LOW CONFIDENCE", "override: no manual override"):
        assert expected in text


def test_the_command_emits_json(small_book: Engine, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    if small_book.dialect.name != "sqlite":
        pytest.skip("the command's own engine is built from the URL; one backend is enough here")
    ctx, _ = _ctx(tmp_path, small_book, as_json=True)
    assert explain_command.run(ctx, "001A") == 0
    data = json.loads(capsys.readouterr().out)
    assert data["account"]["external_id"] == "001A"
    assert {m["name"] for m in data["measures"]} == {m.name for m in CONFIG.scorecards[0].measures}


def test_a_name_with_capital_letters_beyond_a_z_is_found_as_written_and_in_another_case_of_a_z(
    small_book: Engine,
) -> None:
    from core.records import AccountRecord
    from tests.scoring.conftest import SF, store

    store(small_book, AccountRecord(source=SF, external_id="001U", name="Ärger Élan GmbH", source_created_at=T))
    for ref in ("Ärger Élan GmbH", "Ärger Élan GMBH"):
        assert explain_account(small_book, CONFIG, ref).detail.score.name == "Ärger Élan GmbH"
    with pytest.raises(ConfigError, match="no live account matches"):  # Ä and ä are compared as two letters
        explain_account(small_book, CONFIG, "ärger élan gmbh")
