"""Engines: the session settings the store relies on."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, text


def test_server_side_cursors_are_planned_for_their_whole_result(store_engine: Engine) -> None:
    """Scoring streams whole results through server-side cursors (``yield_per``). Planned for their first 10%,
    PostgreSQL's default, a grouped query over a key range took a fast-start nested loop: 46 s, not 0.1 s."""
    if store_engine.dialect.name != "postgresql":
        pytest.skip("a PostgreSQL planner setting")
    for _ in range(2):  # a new connection, then the same one handed out again by the pool
        with store_engine.connect() as conn:
            assert conn.execute(text("SHOW cursor_tuple_fraction")).scalar_one() == "1"
            conn.rollback()  # the setting is the session's: a rolled-back transaction keeps it
            assert conn.execute(text("SHOW cursor_tuple_fraction")).scalar_one() == "1"
