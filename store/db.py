"""Engines for the store: SQLite (embedded default, WAL, foreign keys on) or PostgreSQL (production)."""

from __future__ import annotations

import logging
import math
import sqlite3
from pathlib import Path
from types import ModuleType
from typing import Any

import orjson
from sqlalchemy import Engine, create_engine, event, make_url
from sqlalchemy.engine import URL
from sqlalchemy.exc import ArgumentError

from core.errors import ConfigError

log = logging.getLogger(__name__)


def normalize_url(database_url: str) -> URL:
    """Parse a database URL; a bare ``postgresql://`` means psycopg 3, the driver we ship."""
    try:
        url = make_url(database_url)
    except ArgumentError as exc:
        raise ConfigError(f"HEALTH_DATABASE_URL: not a database URL ({exc})") from exc
    if url.drivername in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+psycopg")
    return url


def json_dumps(value: Any) -> str:
    """JSON columns through orjson: score history writes three JSON documents per account per run, and the
    standard library's encoder was half of that write's time. Non-string keys become strings, as with ``json``."""
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


def sqlite_driver() -> ModuleType:
    """The DB-API module of the store's SQLite engines: pysqlite3's where it is installed (``pysqlite3-binary``,
    a dependency on Linux x86-64, with a current SQLite built in), else Python's own ``sqlite3``, which uses the
    system's SQLite (3.40 on Debian 12 and in the python:3.11-slim image).

    The scoring queries are the reason: on a 10% slice of the scoring benchmark's store, SQLite 3.51 computes the
    relationship and engagement aggregates in 3.6G instructions against 4.7G for 3.40, which also copies the
    per-contact aggregates into a temporary table where 3.51 streams them. Both give the same results; the store
    works with either.
    """
    try:
        from pysqlite3 import dbapi2
    except ImportError:
        return sqlite3
    return dbapi2  # type: ignore[no-any-return]


def make_engine(database_url: str, **kwargs: Any) -> Engine:
    """Create an engine; for SQLite (``sqlite_driver``, unless ``module`` names another), create the file's folder
    and turn on WAL and foreign keys."""
    url = normalize_url(database_url)
    kwargs.setdefault("json_serializer", json_dumps)
    kwargs.setdefault("json_deserializer", orjson.loads)
    if url.get_backend_name() == "sqlite":
        if url.database and url.database != ":memory:":
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        kwargs.setdefault("connect_args", {"timeout": 30})
        kwargs.setdefault("module", sqlite_driver())
        engine = create_engine(url, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    engine = create_engine(url, **kwargs)
    event.listen(engine, "connect", _postgresql_settings)
    return engine


def _postgresql_settings(dbapi_conn: Any, _record: Any) -> None:
    """Session settings for the store's own workload.

    - Plan server-side cursors for their whole result. Every one here (``yield_per``) streams a result to read all
      of it in bounded memory; planned for the first 10% (PostgreSQL's default), a grouped scoring query over a
      key range took a fast-start nested loop: 46 s instead of 0.1 s.
    - Plan prepared statements for their values every time. psycopg prepares a statement on its fifth run, and
      PostgreSQL may then keep one generic plan: a sync's id look-up by external ids, planned while the accounts
      table was nearly empty, kept scanning the whole table as it grew (20k accounts re-synced: 2.7 s, then
      8.3 s, against 1.5 s). Planning each run costs little next to the statements a sync sends.
    """
    with dbapi_conn.cursor() as cur:
        cur.execute("SET cursor_tuple_fraction = 1.0")
        cur.execute("SET plan_cache_mode = force_custom_plan")
    dbapi_conn.commit()  # psycopg opened a transaction for the SET; the setting is the session's


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()
    ensure_math_functions(dbapi_conn)


def _exp(x: float | None) -> float | None:
    if x is None:
        return None
    try:
        return math.exp(x)
    except OverflowError:
        return math.inf


def _power(x: float | None, y: float | None) -> float | None:
    if x is None or y is None:
        return None
    try:
        return math.pow(x, y)
    except (OverflowError, ValueError):  # as SQLite's own: NULL where C's pow() has no real result
        return None


def ensure_math_functions(dbapi_conn: Any) -> None:
    """``exp()`` and ``power()`` on a SQLite connection (relationship strength is computed in SQL).

    SQLite has them when built with its math functions (the default of its own build since 3.35, and of the
    Python and Debian builds); where it was not, Python versions are registered on the connection: slower
    (a Python call per contact), the same results.
    """
    try:
        dbapi_conn.execute("SELECT exp(0), power(2, 1)").fetchall()
    except dbapi_conn.OperationalError:  # its driver's class: sqlite3's or pysqlite3's
        dbapi_conn.create_function("exp", 1, _exp, deterministic=True)
        dbapi_conn.create_function("power", 2, _power, deterministic=True)
