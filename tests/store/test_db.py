"""Engines: the session settings the store relies on."""

from __future__ import annotations

from pathlib import Path

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


def test_prepared_statements_are_planned_for_their_values_every_time(store_engine: Engine) -> None:
    """psycopg prepares a statement on its fifth run, and PostgreSQL may then keep one generic plan for it. A
    sync's id look-up planned while the accounts table was nearly empty kept scanning it whole as it grew: 20k
    accounts re-synced took 2.7 s, then 8.3 s, against 1.5 s with plans made for each run's values."""
    if store_engine.dialect.name != "postgresql":
        pytest.skip("a PostgreSQL planner setting")
    with store_engine.connect() as conn:
        assert conn.execute(text("SHOW plan_cache_mode")).scalar_one() == "force_custom_plan"
        conn.exec_driver_sql("PREPARE lookup(text) AS SELECT id FROM accounts WHERE external_id = $1")
        for _ in range(6):  # past the runs after which PostgreSQL would weigh a generic plan
            conn.exec_driver_sql("EXECUTE lookup('001A')")
        plan = "\n".join(r[0] for r in conn.exec_driver_sql("EXPLAIN EXECUTE lookup('001A')"))
        conn.exec_driver_sql("DEALLOCATE lookup")
    assert "'001A'" in plan and "$1" not in plan  # planned for the value, not generically


def test_sqlite_without_math_functions_gets_python_ones() -> None:
    """Relationship strength needs exp() and power() in SQL; a SQLite built without its math functions gets
    Python versions on each connection, giving the same values (and NULL where SQLite's give NULL)."""
    import math
    import sqlite3

    from store.db import ensure_math_functions

    class NoMath:  # a connection whose SQLite lacks them: the check fails, the functions are registered
        OperationalError = sqlite3.OperationalError

        def __init__(self) -> None:
            self.real = sqlite3.connect(":memory:")
            self.registered: list[str] = []

        def execute(self, sql: str) -> sqlite3.Cursor:
            if not self.registered:
                raise sqlite3.OperationalError("no such function: exp")
            return self.real.execute(sql)

        def create_function(self, name: str, narg: int, fn: object, *, deterministic: bool) -> None:
            self.registered.append(name)
            self.real.create_function(name, narg, fn, deterministic=deterministic)  # type: ignore[arg-type]

    conn = NoMath()
    ensure_math_functions(conn)
    assert conn.registered == ["exp", "power"]
    got = conn.execute("SELECT exp(-1.5), power(0.5, 2.25), exp(NULL), power(-8, 0.5), exp(1000)").fetchone()
    assert got == (math.exp(-1.5), 0.5 ** 2.25, None, None, math.inf)
    builtin = sqlite3.connect(":memory:")
    ensure_math_functions(builtin)  # the check passes: nothing to register, the built-ins answer
    assert builtin.execute("SELECT exp(-1.5), power(0.5, 2.25)").fetchone() == pytest.approx(got[:2], rel=1e-15)


def test_sqlite_engines_use_the_bundled_sqlite_where_it_is_installed(tmp_path: Path) -> None:
    """pysqlite3-binary is a dependency on Linux x86-64 (its only wheels): there the store runs on its SQLite,
    elsewhere on Python's own sqlite3."""
    import platform
    import sqlite3
    import sys

    from store.db import make_engine, sqlite_driver

    engine = make_engine(f"sqlite:///{tmp_path / 'store.db'}")
    try:
        assert engine.dialect.dbapi is sqlite_driver()
        with engine.connect() as conn:
            version = conn.exec_driver_sql("SELECT sqlite_version()").scalar_one()
        assert version == engine.dialect.dbapi.sqlite_version
        if sys.platform == "linux" and platform.machine() == "x86_64":
            assert engine.dialect.dbapi is not sqlite3
            assert engine.dialect.dbapi.sqlite_version_info >= (3, 51)
    finally:
        engine.dispose()
