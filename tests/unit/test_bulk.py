"""core.bulk: the garbage collector paused for bulk steps, and always given back."""

from __future__ import annotations

import gc

import pytest
from sqlalchemy import Engine

from core.bulk import gc_paused


def test_the_collector_is_off_in_the_block_and_on_again_after_it_even_on_an_error() -> None:
    assert gc.isenabled()
    with gc_paused():
        assert not gc.isenabled()
        with gc_paused():  # nested: the inner block does not turn it back on
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()
    with pytest.raises(ValueError, match="boom"), gc_paused():
        raise ValueError("boom")
    assert gc.isenabled()


def test_a_decorated_function_runs_without_it_and_a_collector_turned_off_stays_off() -> None:
    @gc_paused()
    def during() -> bool:
        return gc.isenabled()

    assert during() is False
    assert gc.isenabled()
    gc.disable()
    try:
        assert during() is False
        assert not gc.isenabled()  # it was off before: it stays off
    finally:
        gc.enable()


def test_scoring_runs_with_it_paused(store_engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """compute_signals and score_accounts make 100k accounts' objects at once (see core.bulk)."""
    from datetime import UTC, datetime

    import scoring.engine
    import scoring.signals
    from core.config.scoring import ScoringConfig

    seen: dict[str, bool] = {}

    def spy(module: object, name: str) -> None:
        real = getattr(module, name)

        def wrapper(*args: object, **kwargs: object) -> object:
            seen[name] = gc.isenabled()
            return real(*args, **kwargs)

        monkeypatch.setattr(module, name, wrapper)

    spy(scoring.signals, "load_accounts")
    spy(scoring.engine, "score_frame")
    scoring.engine.score_accounts(store_engine, ScoringConfig(), run_id="r", as_of=datetime(2026, 6, 1, tzinfo=UTC),
                                  persist=False)
    assert seen == {"load_accounts": False, "score_frame": False}
    assert gc.isenabled()
