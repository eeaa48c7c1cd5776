"""The emulator's own indexed SQLite store, built from the book once and restored by an undo log.

One table per object type (``o_<type>``: n, created/updated times, archived flag, properties as
JSON), an ``assoc`` table of record pairs, ``owners``, and ``history`` for properties written
through the API. Every write first remembers the row it changes, so ``reset()`` costs what the
test wrote, not what the book holds.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import sqlite3
import tempfile
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sandbox.hubspot.objects import BOOK_ASSOCIATIONS, PROJECTIONS
from sandbox.hubspot.properties import OBJECT_TYPES
from sandbox.ids import HUBSPOT_OFFSETS

logger = logging.getLogger(__name__)

_TOKEN_SPLIT = re.compile(r"\s+")
# Properties looked up by value (unique ids for idProperty, upserts and duplicate checks): indexed.
UNIQUE_LOOKUPS = (("companies", "domain"), ("contacts", "email"))


@dataclass
class Row:
    """One HubSpot record as stored: times are HubSpot ISO strings with milliseconds."""

    n: int
    created_at: str
    updated_at: str
    archived: bool
    archived_at: str | None
    props: dict[str, Any]


@dataclass(frozen=True)
class Owner:
    n: int
    email: str | None
    first_name: str | None
    last_name: str | None
    archived: bool
    created_at: str
    updated_at: str


def _contains_token(text: str | None, pattern: str | None) -> int:
    """HubSpot CONTAINS_TOKEN: a whole token of ``text`` matches ``pattern`` (``*`` is a wildcard)."""
    if text is None or pattern is None:
        return 0
    regex = re.compile("^" + ".*".join(re.escape(p) for p in pattern.lower().split("*")) + "$")
    haystack = text.lower()
    if regex.match(haystack):
        return 1
    return int(any(regex.match(token) for token in _TOKEN_SPLIT.split(haystack) if token))


class HubSpotStore:
    """The records, associations and owners the emulator serves (thread-safe through ``lock``)."""

    def __init__(self, book_path: Path) -> None:
        self.lock = threading.RLock()
        self._dir = Path(tempfile.mkdtemp(prefix="hubspot-emulator-"))
        self.db = sqlite3.connect(self._dir / "hubspot.db", check_same_thread=False, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=OFF")
        self.db.execute("PRAGMA synchronous=OFF")
        self.db.execute("PRAGMA temp_store=MEMORY")
        self.db.create_function("hs_contains_token", 2, _contains_token, deterministic=True)
        self._originals: dict[tuple[str, int], tuple[Any, ...] | None] = {}
        self._removed_assoc: list[tuple[Any, ...]] = []
        self._added_assoc: list[tuple[str, int, str, int]] = []  # associations made since the last reset
        try:
            self._build(book_path)
        finally:
            # The open connection keeps the file alive; unlinking it now means nothing is left behind on disk
            # even when the process is killed (journal off, temp tables in memory: SQLite never reopens it).
            shutil.rmtree(self._dir, ignore_errors=True)
        self._book_next_n = {t: self._max_n(t) + 1 for t in OBJECT_TYPES}
        self.next_n = dict(self._book_next_n)

    # --- construction -------------------------------------------------------------------------------

    def _build(self, book_path: Path) -> None:
        db = self.db
        started = time.perf_counter()
        db.execute("PRAGMA page_size = 8192")
        db.execute("PRAGMA cache_size = -524288")  # 512 MiB while sorting millions of index entries
        db.execute("ATTACH DATABASE ? AS book", (f"file:{book_path}?mode=ro",))
        db.execute("BEGIN")
        for object_type in OBJECT_TYPES:
            db.execute(
                f"CREATE TABLE o_{object_type} (n INTEGER PRIMARY KEY, created_at TEXT NOT NULL, "
                "updated_at TEXT NOT NULL, archived INTEGER NOT NULL, archived_at TEXT, props TEXT NOT NULL)"
            )
            projection = PROJECTIONS.get(object_type)
            if projection is None:
                continue
            pairs = ", ".join(f"'{name}', {expr}" for name, expr in projection.properties)
            db.execute(
                f"INSERT INTO o_{object_type} (n, created_at, updated_at, archived, archived_at, props) "
                f"SELECT r.n, substr({projection.created}, 1, 19) || '.000Z', "
                f"substr({projection.updated}, 1, 19) || '.000Z', ({projection.archived}), "
                f"CASE WHEN ({projection.archived}) THEN substr({projection.updated}, 1, 19) || '.000Z' END, "
                f"json_object({pairs}) FROM {projection.source} WHERE {projection.where} ORDER BY r.n"
            )
        records_done = time.perf_counter()
        for object_type in OBJECT_TYPES:
            db.execute(f"CREATE INDEX o_{object_type}_updated ON o_{object_type} (updated_at)")
        for object_type, prop in UNIQUE_LOOKUPS:
            db.execute(
                f"CREATE INDEX o_{object_type}_{prop} ON o_{object_type} (lower(json_extract(props, '$.{prop}')))"
            )
        # Clustered on the pair, so one direction reads contiguous rows; an index serves the other.
        db.execute(
            "CREATE TABLE assoc (x_type TEXT NOT NULL, x_n INTEGER NOT NULL, y_type TEXT NOT NULL, "
            "y_n INTEGER NOT NULL, is_primary INTEGER NOT NULL, PRIMARY KEY (x_type, x_n, y_type, y_n)) WITHOUT ROWID"
        )
        for x_type, y_type, select in BOOK_ASSOCIATIONS:
            db.execute(
                "INSERT OR IGNORE INTO assoc (x_type, x_n, y_type, y_n, is_primary) "
                f"WITH q (x_n, y_n, is_primary) AS ({select}) SELECT ?, x_n, ?, y_n, is_primary FROM q "
                "ORDER BY x_n, y_n",
                (x_type, y_type),
            )
        db.execute("CREATE INDEX assoc_y ON assoc (y_type, y_n, x_type)")
        associations_done = time.perf_counter()
        db.execute(
            "CREATE TABLE owners (n INTEGER PRIMARY KEY, email TEXT, first_name TEXT, last_name TEXT, "
            "archived INTEGER NOT NULL, created_at TEXT NOT NULL, updated_at TEXT NOT NULL)"
        )
        db.execute(
            "INSERT INTO owners SELECT n, email, first_name, last_name, is_active = 0, "
            "substr(created_at, 1, 19) || '.000Z', substr(updated_at, 1, 19) || '.000Z' FROM book.users ORDER BY n"
        )
        db.execute(
            "CREATE TABLE history (seq INTEGER PRIMARY KEY, object_type TEXT NOT NULL, n INTEGER NOT NULL, "
            "prop TEXT NOT NULL, value TEXT, ts TEXT NOT NULL, source_type TEXT NOT NULL)"
        )
        db.execute("CREATE INDEX history_record ON history (object_type, n, prop)")
        db.execute("COMMIT")
        db.execute("DETACH DATABASE book")
        db.execute("PRAGMA analysis_limit = 1000")  # sampled statistics: seconds, not minutes, at 2M rows
        db.execute("ANALYZE")
        db.execute("PRAGMA cache_size = -131072")
        logger.info(
            "hubspot emulator store built in %.1f s (records %.1f s, indexes and associations %.1f s)",
            time.perf_counter() - started,
            records_done - started,
            associations_done - records_done,
        )

    def _max_n(self, object_type: str) -> int:
        value = self.db.execute(f"SELECT coalesce(max(n), 0) FROM o_{object_type}").fetchone()[0]
        return int(value)

    def close(self) -> None:
        self.db.close()

    # --- reads --------------------------------------------------------------------------------------

    @staticmethod
    def _row(values: Sequence[Any]) -> Row:
        return Row(int(values[0]), values[1], values[2], bool(values[3]), values[4], json.loads(values[5]))

    def get(self, object_type: str, n: int) -> Row | None:
        found = self.db.execute(
            f"SELECT n, created_at, updated_at, archived, archived_at, props FROM o_{object_type} WHERE n = ?", (n,)
        ).fetchone()
        return self._row(found) if found else None

    def get_many(self, object_type: str, ns: Iterable[int]) -> dict[int, Row]:
        wanted = sorted(set(ns))
        if not wanted:
            return {}
        marks = ",".join("?" * len(wanted))
        rows = self.db.execute(
            f"SELECT n, created_at, updated_at, archived, archived_at, props FROM o_{object_type} WHERE n IN ({marks})",
            wanted,
        ).fetchall()
        return {int(r[0]): self._row(r) for r in rows}

    def page(self, object_type: str, *, archived: bool, after_n: int, limit: int) -> list[Row]:
        """Records with n > after_n in id order; archived ones only when ``archived``."""
        rows = self.db.execute(
            f"SELECT n, created_at, updated_at, archived, archived_at, props FROM o_{object_type} "
            "WHERE n > ? AND archived = ? ORDER BY n LIMIT ?",
            (after_n, int(archived), limit),
        ).fetchall()
        return [self._row(r) for r in rows]

    def find_by(self, object_type: str, prop: str, value: str) -> Row | None:
        """The live record whose property equals ``value`` (case-insensitive, as HubSpot's unique ids are)."""
        found = self.db.execute(
            f"SELECT n, created_at, updated_at, archived, archived_at, props FROM o_{object_type} "
            f"WHERE archived = 0 AND lower(json_extract(props, '$.{prop}')) = lower(?) ORDER BY n LIMIT 1",
            (value,),
        ).fetchone()
        return self._row(found) if found else None

    def search(
        self, object_type: str, where: str, params: Sequence[Any], order: str, limit: int, offset: int
    ) -> tuple[int, list[Row]]:
        table = f"o_{object_type}"
        total = self.db.execute(f"SELECT count(*) FROM {table} WHERE archived = 0 AND ({where})", params).fetchone()[0]
        rows = self.db.execute(
            f"SELECT n, created_at, updated_at, archived, archived_at, props FROM {table} "
            f"WHERE archived = 0 AND ({where}) ORDER BY {order} LIMIT ? OFFSET ?",
            [*params, limit, offset],
        ).fetchall()
        return int(total), [self._row(r) for r in rows]

    def associations(self, from_type: str, ns: Sequence[int], to_type: str) -> dict[int, list[tuple[int, bool]]]:
        """For each record n of ``from_type``: its live ``to_type`` partners as (n, is_primary), in id order."""
        out: dict[int, list[tuple[int, bool]]] = {n: [] for n in ns}
        if not ns:
            return out
        marks = ",".join("?" * len(ns))
        rows = self.db.execute(
            f"SELECT f, t, max(p) FROM ("
            "SELECT x_n AS f, y_n AS t, is_primary AS p FROM assoc "
            f"WHERE x_type = ? AND y_type = ? AND x_n IN ({marks}) "
            f"UNION ALL SELECT y_n, x_n, is_primary FROM assoc WHERE y_type = ? AND x_type = ? AND y_n IN ({marks})"
            f") JOIN o_{to_type} AS o ON o.n = t AND o.archived = 0 GROUP BY f, t ORDER BY f, t",
            [from_type, to_type, *ns, from_type, to_type, *ns],
        ).fetchall()
        for f, t, p in rows:
            out[int(f)].append((int(t), bool(p)))
        return out

    def associated_ns(self, from_type: str, to_type: str, to_ns: Sequence[int]) -> str:
        """A SQL subquery (and its own literal ids) for the ``from_type`` records associated with ``to_ns``."""
        ids = ",".join(str(int(n)) for n in to_ns) or "NULL"
        return (
            f"SELECT x_n FROM assoc WHERE x_type = '{from_type}' AND y_type = '{to_type}' AND y_n IN ({ids}) "
            f"UNION SELECT y_n FROM assoc WHERE y_type = '{from_type}' AND x_type = '{to_type}' AND x_n IN ({ids})"
        )

    def owners(self, *, archived: bool, after_n: int, limit: int, email: str | None) -> list[Owner]:
        sql = "SELECT n, email, first_name, last_name, archived, created_at, updated_at FROM owners WHERE n > ? "
        params: list[Any] = [after_n]
        sql += "AND archived = ? "
        params.append(int(archived))
        if email is not None:
            sql += "AND lower(email) = lower(?) "
            params.append(email)
        rows = self.db.execute(sql + "ORDER BY n LIMIT ?", [*params, limit]).fetchall()
        return [Owner(int(r[0]), r[1], r[2], r[3], bool(r[4]), r[5], r[6]) for r in rows]

    def owner(self, n: int) -> Owner | None:
        r = self.db.execute(
            "SELECT n, email, first_name, last_name, archived, created_at, updated_at FROM owners WHERE n = ?", (n,)
        ).fetchone()
        return Owner(int(r[0]), r[1], r[2], r[3], bool(r[4]), r[5], r[6]) if r else None

    def history(self, object_type: str, n: int, prop: str) -> list[tuple[str | None, str, str]]:
        """Values written to one property through the API or a hook, newest first: (value, time, source)."""
        rows = self.db.execute(
            "SELECT value, ts, source_type FROM history WHERE object_type = ? AND n = ? AND prop = ? ORDER BY seq DESC",
            (object_type, n, prop),
        ).fetchall()
        return [(r[0], r[1], r[2]) for r in rows]

    # --- writes -------------------------------------------------------------------------------------

    def _remember(self, object_type: str, n: int) -> None:
        key = (object_type, n)
        if key in self._originals:
            return
        self._originals[key] = self.db.execute(
            f"SELECT n, created_at, updated_at, archived, archived_at, props FROM o_{object_type} WHERE n = ?", (n,)
        ).fetchone()

    def insert(self, object_type: str, props: dict[str, Any], now: str, source_type: str) -> Row:
        n = self.next_n[object_type]
        self.next_n[object_type] = n + 1
        self._remember(object_type, n)
        self.db.execute(
            f"INSERT INTO o_{object_type} (n, created_at, updated_at, archived, archived_at, props) "
            "VALUES (?, ?, ?, 0, NULL, ?)",
            (n, now, now, json.dumps(props, ensure_ascii=False, sort_keys=True)),
        )
        self._log_history(object_type, n, props, now, source_type)
        return Row(n, now, now, False, None, props)

    def update(self, object_type: str, row: Row, changes: dict[str, Any], now: str, source_type: str) -> Row:
        """Write ``changes`` over ``row`` and bump its modified time to ``now``."""
        self._remember(object_type, row.n)
        for name in changes:
            if not self.history(object_type, row.n, name) and row.props.get(name) is not None:
                self._log_history(object_type, row.n, {name: row.props.get(name)}, row.updated_at, "CRM_UI")
        props = {**row.props, **changes}
        self.db.execute(
            f"UPDATE o_{object_type} SET props = ?, updated_at = ? WHERE n = ?",
            (json.dumps(props, ensure_ascii=False, sort_keys=True), now, row.n),
        )
        self._log_history(object_type, row.n, changes, now, source_type)
        return Row(row.n, row.created_at, now, row.archived, row.archived_at, props)

    def set_archived(self, object_type: str, n: int, archived: bool, now: str) -> None:
        self._remember(object_type, n)
        self.db.execute(
            f"UPDATE o_{object_type} SET archived = ?, archived_at = ?, updated_at = ? WHERE n = ?",
            (int(archived), now if archived else None, now, n),
        )

    def _log_history(self, object_type: str, n: int, props: dict[str, Any], now: str, source_type: str) -> None:
        self.db.executemany(
            "INSERT INTO history (object_type, n, prop, value, ts, source_type) VALUES (?, ?, ?, ?, ?, ?)",
            [(object_type, n, k, v, now, source_type) for k, v in props.items()],
        )

    def add_association(self, x_type: str, x_n: int, y_type: str, y_n: int) -> bool:
        """Associate two records; False when they already were (in either direction)."""
        if any(t == y_n for t, _ in self.associations(x_type, [x_n], y_type)[x_n]):
            return False
        self.db.execute(
            "INSERT INTO assoc (x_type, x_n, y_type, y_n, is_primary) VALUES (?, ?, ?, ?, 0)",
            (x_type, x_n, y_type, y_n),
        )
        self._added_assoc.append((x_type, x_n, y_type, y_n))
        return True

    def remove_association(self, x_type: str, x_n: int, y_type: str, y_n: int) -> None:
        where = (
            "(x_type = ? AND x_n = ? AND y_type = ? AND y_n = ?) OR (x_type = ? AND x_n = ? AND y_type = ? AND y_n = ?)"
        )
        params = (x_type, x_n, y_type, y_n, y_type, y_n, x_type, x_n)
        pair = {(x_type, x_n, y_type, y_n), (y_type, y_n, x_type, x_n)}
        made_here = {a for a in self._added_assoc if a in pair}  # reset need not bring these back
        self._removed_assoc.extend(
            row
            for row in self.db.execute(f"SELECT x_type, x_n, y_type, y_n, is_primary FROM assoc WHERE {where}", params)
            if tuple(row[:4]) not in made_here
        )
        self._added_assoc = [a for a in self._added_assoc if a not in made_here]
        self.db.execute(f"DELETE FROM assoc WHERE {where}", params)

    def reset(self) -> None:
        """Undo every write since construction (or the previous reset)."""
        db = self.db
        db.execute("BEGIN")
        for (object_type, n), original in self._originals.items():
            db.execute(f"DELETE FROM o_{object_type} WHERE n = ?", (n,))
            if original is not None:
                db.execute(f"INSERT INTO o_{object_type} VALUES (?, ?, ?, ?, ?, ?)", original)
        db.executemany("DELETE FROM assoc WHERE x_type = ? AND x_n = ? AND y_type = ? AND y_n = ?", self._added_assoc)
        db.executemany("INSERT OR IGNORE INTO assoc VALUES (?, ?, ?, ?, ?)", self._removed_assoc)
        db.execute("DELETE FROM history")
        db.execute("COMMIT")
        self._originals.clear()
        self._removed_assoc.clear()
        self._added_assoc.clear()
        self.next_n = dict(self._book_next_n)


def hubspot_n(object_type: str, record_id: str) -> int | None:
    """The store's n behind a HubSpot id string, or None when it is not one of ours."""
    try:
        n = int(record_id) - HUBSPOT_OFFSETS[object_type]
    except (TypeError, ValueError):
        return None
    return n if n > 0 else None
