"""The signal catalogue computed as set-based SQL over the store, as of a moment.

Each family (engagement, relationship, support, feedback, usage, billing, intent, contract) is one grouped
query (plus a window query for medians and latest values); only rows dated before ``as_of`` are seen, and
soft-deleted rows are not activity. Results are read a partition of columns at a time into numpy arrays
(NaN = no data), one row per account, so scoring 100k accounts takes no Python step per row and stays small.
Relationship aggregates read activity participants alone (each carries a copy of its activity's fields), and sum
per-contact strengths (``scoring.relationship``) in SQL. On request, shares of the portfolio are computed in
processes of their own (``scoring.partitions``).
"""

from __future__ import annotations

import copy
import itertools
import logging
import math
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, NamedTuple, overload

import numpy as np
from sqlalchemy import (
    BigInteger,
    Column,
    ColumnElement,
    Connection,
    CursorResult,
    Date,
    DateTime,
    Engine,
    Float,
    Integer,
    Select,
    String,
    Subquery,
    Table,
    and_,
    case,
    cast,
    collate,
    func,
    literal,
    not_,
    or_,
    select,
    tuple_,
    type_coerce,
)
from sqlalchemy.dialects.postgresql import BIT
from sqlalchemy.pool import SingletonThreadPool, StaticPool
from sqlalchemy.sql.elements import UnaryExpression
from sqlalchemy.sql.operators import custom_op

from core.bulk import gc_paused
from core.config.scoring import SIGNALS, ScoringConfig
from scoring.relationship import StrengthParts, contact_strengths, seniority_weights, strength_sql
from store.models import (
    Account,
    AccountLink,
    AccountSnapshot,
    Activity,
    ActivityParticipant,
    Contact,
    Deal,
    IntentSignal,
    Invoice,
    SurveyResponse,
    Ticket,
    UsageMetric,
    UtcDateTime,
    epoch_us,
)
from store.upsert import ids_by_source

log = logging.getLogger(__name__)

ACC: Table = Account.__table__  # type: ignore[assignment]
ACT: Table = Activity.__table__  # type: ignore[assignment]
PART: Table = ActivityParticipant.__table__  # type: ignore[assignment]
CON: Table = Contact.__table__  # type: ignore[assignment]
DEAL: Table = Deal.__table__  # type: ignore[assignment]
TIX: Table = Ticket.__table__  # type: ignore[assignment]
SURV: Table = SurveyResponse.__table__  # type: ignore[assignment]
INTENT: Table = IntentSignal.__table__  # type: ignore[assignment]
USAGE: Table = UsageMetric.__table__  # type: ignore[assignment]
INV: Table = Invoice.__table__  # type: ignore[assignment]
LINK: Table = AccountLink.__table__  # type: ignore[assignment]
SNAP: Table = AccountSnapshot.__table__  # type: ignore[assignment]

TOUCH_TYPES = ("email", "call", "meeting")
EXEC_LEVELS = ("c_level", "vp")
EXEC_MEETING_DAYS = 180  # exec_meeting_180d's window, whatever the relationship window
SENIORITY_LEVELS = ["c_level", "vp", "director", "manager", "individual", "unknown"]
HIGH_PRIORITY = ("p1", "p2")
# A champion is packed in one integer, (prior touches x span + span - 1 - contact id) x 8 + gone x 2 + stopped, whose
# max() is the champion: contact ids below 2^32, prior touches below 2^28 (int64).
_CHAMPION_ID_BITS = 32
_CHAMPION_ID_SPAN = 1 << _CHAMPION_ID_BITS
_GONE: dict[int, str | None] = {0: None, 1: "left", 2: "deleted"}
STREAM_ROWS = 20_000


class AccountRow(NamedTuple):
    """The account facts scoring needs (no activity). A named tuple: 100k are made per run, in a quarter of the
    time a frozen dataclass takes (0.04 s against 0.15 s)."""

    id: int
    source: str
    external_id: str
    name: str | None
    domain: str | None
    tier: str | None
    arr: float | None
    renewal_date: date | None
    created_at: datetime | None
    override_band: str | None
    override_until: date | None
    attributes_dated: bool = True  # ARR, tier and renewal date as of the frame (see load_accounts)


@dataclass(frozen=True)
class ContactDetail:
    """One contact's relationship strength, for explanations."""

    contact_id: int
    name: str
    seniority: str
    department: str | None
    touches: int
    days_since_last: float
    engaged: bool
    gone: str | None  # why the contact no longer counts: left | deleted | None
    parts: StrengthParts


@dataclass(frozen=True, slots=True)
class Champion:
    name: str
    prior_touches: int
    gone: str | None  # stopped engaging | left | deleted | None


@dataclass
class SignalFrame:
    """Per-account signal columns (position i = ``accounts[i]``); NaN means no data."""

    as_of: datetime
    accounts: list[AccountRow]
    values: dict[str, np.ndarray]
    categories: dict[str, list[str | None]] = field(default_factory=dict)
    champions: dict[int, Champion] = field(default_factory=dict)  # position -> champion
    contacts: dict[int, list[ContactDetail]] = field(default_factory=dict)  # position -> contacts (detail only)
    expected_touches: np.ndarray = field(default_factory=lambda: np.zeros(0))
    _matrix: np.ndarray | None = field(default=None, repr=False)  # all columns side by side, for row()
    _names: list[str] = field(default_factory=list, repr=False)

    def __len__(self) -> int:
        return len(self.accounts)

    def signal_names(self) -> list[str]:
        """The numeric signals, in the column order of ``matrix()``."""
        self.matrix()
        return self._names

    def matrix(self) -> np.ndarray:
        """Every numeric signal side by side: row = position, column = ``signal_names()``; NaN for no data."""
        if self._matrix is None or self._matrix.shape[1] != len(self.values):
            self._names = list(self.values)
            self._matrix = (np.column_stack([self.values[n] for n in self._names]) if self._names
                            else np.empty((len(self.accounts), 0)))
            for j, name in enumerate(self._names):  # the columns become views of the matrix: one copy in memory
                self.values[name] = self._matrix[:, j]
        return self._matrix

    def row(self, pos: int) -> dict[str, float | None]:
        """Every numeric signal of one account, None for no data."""
        values = self.matrix()[pos].tolist()
        return {k: (None if math.isnan(v) else v) for k, v in zip(self._names, values, strict=True)}


@overload
def _utc(value: datetime) -> datetime: ...
@overload
def _utc(value: None) -> None: ...
def _utc(value: datetime | None) -> datetime | None:
    if value is None or value.tzinfo is UTC:  # aware UTC already, as load_accounts gives them: as it is
        return value
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _month_start(d: date, back: int = 0) -> date:
    y, m = d.year, d.month - back
    while m <= 0:
        m += 12
        y -= 1
    return date(y, m, 1)


def hours_between(conn: Connection, start: ColumnElement[Any], end: ColumnElement[Any]) -> ColumnElement[Any]:
    """``end - start`` in hours, on SQLite (julianday) and PostgreSQL (epoch)."""
    if conn.dialect.name == "sqlite":
        return (func.julianday(end) - func.julianday(start)) * 24.0
    return func.date_part("epoch", end - start) / 3600.0


def _days_between(conn: Connection, start: ColumnElement[Any], end: ColumnElement[Any]) -> ColumnElement[Any]:
    """Whole days from one date to another (SQLite: julian days; PostgreSQL: date minus date)."""
    if conn.dialect.name == "sqlite":
        return func.julianday(end) - func.julianday(start)
    return end - start


def folded(conn: Connection, text: ColumnElement[Any]) -> ColumnElement[Any]:
    """``text`` with the letters A-Z lowercased and no other, on every backend (``core.config.scoring.fold_case`` in
    Python): SQLite's built-in lower() does just that, PostgreSQL's does so under the C collation."""
    if conn.dialect.name == "sqlite":
        return func.lower(text)
    return func.lower(collate(text, "C"))


def _references_in(source: ColumnElement[Any], external_id: ColumnElement[Any],
                   keys: Sequence[tuple[str, str]]) -> ColumnElement[bool]:
    """``(source, external_id) IN keys`` as one ``external_id IN (...)`` per source, which PostgreSQL reads from
    an index (``store.upsert.ids_by_source``)."""
    by_source = ids_by_source(keys)
    if not by_source:
        return literal(False)
    return or_(*[and_(source == src, external_id.in_(ids)) for src, ids in by_source.items()])


def _has_filter(conn: Connection) -> bool:
    """Whether the database takes ``FILTER (WHERE ...)`` on an aggregate: PostgreSQL, SQLite from 3.30."""
    dbapi: Any = conn.dialect.dbapi
    return conn.dialect.name != "sqlite" or dbapi.sqlite_version_info >= (3, 30)


def _sorted_apart(column: ColumnElement[Any]) -> ColumnElement[Any]:
    """A sort key SQLite cannot take from an index (``+col``, the same value): the result is sorted in a sorter,
    which needs every row before the first, so the query's first step computes all of it."""
    return UnaryExpression(column, operator=custom_op("+"), type_=column.type)


class _Columns(dict[str, np.ndarray]):
    """Signal columns made on first use, all NaN."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.n = n

    def __missing__(self, name: str) -> np.ndarray:
        self[name] = column = np.full(self.n, np.nan)
        return column


@dataclass(frozen=True, slots=True)
class KeyRange:
    """A stretch of account references ``(source, external id)``, both ends included, in the database's own order
    (its collation, which need not be Python's)."""

    first: tuple[str, str]
    last: tuple[str, str]

    def contains(self, source: ColumnElement[Any], external_id: ColumnElement[Any]) -> ColumnElement[bool]:
        key = tuple_(source, external_id)
        return and_(key >= tuple_(literal(self.first[0]), literal(self.first[1])),
                    key <= tuple_(literal(self.last[0]), literal(self.last[1])))


class _Builder:
    """Builds and runs one family's query at a time, writing into the frame's columns."""

    def __init__(self, conn: Connection, config: ScoringConfig, as_of: datetime, accounts: list[AccountRow],
                 detail_for: set[int], *, subset: bool, key_range: KeyRange | None = None,
                 id_range: tuple[int, int] | None = None) -> None:
        self.conn = conn
        self.config = config
        self.as_of = as_of
        self.as_of_date = as_of.date()
        self.accounts = accounts
        self.pos = {a.id: i for i, a in enumerate(accounts)}
        self.ids = [a.id for a in accounts]
        self.subset = subset
        # A share of the portfolio (scoring.partitions): the families keyed by account reference read only the
        # key range's rows, the linked families only the id range's links.
        self.key_range = key_range
        self.id_range = id_range
        self.by_key = {(a.source, a.external_id): i for i, a in enumerate(accounts)}
        self.detail_for = detail_for
        self.filters = _has_filter(conn)
        n = len(accounts)
        # A share's builder holds only the columns its families write (so shares never overwrite each other's);
        # the frame's builder starts with every catalogue signal.
        self.values: dict[str, np.ndarray] = (_Columns(n) if key_range or id_range
                                              else {name: np.full(n, np.nan) for name in SIGNALS})
        self.champions: dict[int, Champion] = {}
        self.contacts: dict[int, list[ContactDetail]] = {}

    def days_before(self, when_us: ColumnElement[Any]) -> ColumnElement[Any]:
        """Days (fractional) from ``when_us``, a moment in microseconds since 1970 (``occurred_us``), to as_of: the
        whole microseconds between them (exact) over the microseconds in a day."""
        return (self.ago_us() - when_us) / literal(86_400e6, Float())

    def ago_us(self, days: float = 0) -> ColumnElement[Any]:
        """``days`` before as_of (``ago``) as microseconds since 1970, to compare with ``occurred_us``."""
        return literal(epoch_us(self.ago(days)), BigInteger())

    def folded(self, text: ColumnElement[Any]) -> ColumnElement[Any]:
        return folded(self.conn, text)

    def ago(self, days: float) -> datetime:
        return self.as_of - timedelta(days=days)

    @property
    def listed(self) -> bool:
        """Whether the frame's accounts are a small explicit set, which queries name one by one."""
        return self.subset and len(self.ids) <= 5_000

    def acc_filter(self, acc_id: ColumnElement[Any]) -> ColumnElement[bool]:
        """Restrict a query by account id to the frame's accounts when they are a small explicit set or an id
        range."""
        if self.listed:
            return acc_id.in_(self.ids)
        if self.id_range is not None:
            return acc_id.between(*self.id_range)
        return literal(True)

    def account_key(self, table: Table) -> tuple[ColumnElement[Any], ColumnElement[Any], ColumnElement[bool]]:
        """A synced table's account reference ``(source, account_external_id)`` to group activity by, and a filter.

        Grouping by the reference (not joining accounts per row) and mapping keys to accounts afterwards saves
        a lookup per activity. Over the whole portfolio the covering index on activities
        ``(source, account_external_id, occurred_us, ...)`` is scanned once in key order, so the GROUP BY needs
        no sort and no table row; for a small explicit set of accounts the filter seeks into the same index.
        """
        source, ext = table.c.source, table.c.account_external_id
        if self.listed:
            return source, ext, _references_in(source, ext, [(a.source, a.external_id) for a in self.accounts])
        if self.key_range is not None:  # one contiguous stretch of the same index
            return source, ext, self.key_range.contains(source, ext)
        return source, ext, literal(True)

    @property
    def orders_kept(self) -> bool:
        """Whether the database groups the rows of an ordered subquery in its order, without sorting them again:
        SQLite 3.51 does (the SQLite ``store.db.sqlite_driver`` installs; 3.47 to 3.50 are untested), 3.46 and
        before sort them again, so an ORDER BY in the subquery would add a sort rather than save one (measured on
        the relationship query: -6% instructions on 3.51, +6% on 3.40). PostgreSQL plans its own sorts."""
        dbapi: Any = self.conn.dialect.dbapi
        return self.conn.dialect.name == "sqlite" and dbapi.sqlite_version_info >= (3, 51)

    def count_if(self, cond: ColumnElement[bool]) -> ColumnElement[Any]:
        """How many of the group's rows meet ``cond``: ``count(*) FILTER (WHERE cond)``, which skips the aggregate
        step for the rows that do not (4% of the relationship query's instructions on SQLite, against a sum of a
        CASE), or that sum where the database has no FILTER (SQLite before 3.30)."""
        return func.count().filter(cond) if self.filters else func.sum(case((cond, 1), else_=0))

    @staticmethod
    def one_of(column: Column[Any], values: Sequence[str]) -> ColumnElement[bool]:
        """``column IN values``, tested per row, as equalities joined by OR. SQLite looks a list of more than two
        constants up in a temporary index built for it, a B-tree search per row (5% of the engagement query's
        instructions, 2% of the relationship query's, for the three kinds of touch); PostgreSQL walks an array
        (4% of the engagement query's, 2% of the relationship query's, for the kinds of touch and directions)."""
        return or_(*[column == value for value in values])

    def distinct_small(self, value: ColumnElement[Any], size: int) -> ColumnElement[Any]:
        """How many distinct values of ``value``, an integer from 0 to ``size - 1`` (or NULL, not counted), the
        group holds: ``count(DISTINCT value)``, or on PostgreSQL 14 and later the set bits of an OR of one bit
        per value (``bit_count``). PostgreSQL sorts a group's values for every DISTINCT aggregate: over the
        relationship query's 470k contacts and 100k accounts, 9% of its instructions (measured)."""
        if self.conn.dialect.name != "postgresql" or (self.conn.dialect.server_version_info or (0,)) < (14,):
            return func.count(value.distinct())
        bits = func.bit_or(cast(literal(1), BigInteger()).op("<<")(cast(value, Integer())))
        return func.coalesce(func.bit_count(cast(bits, BIT(size))), 0)

    def scanned(self, column: Column[Any]) -> ColumnElement[Any]:
        """A time column to filter on without seeking on it on SQLite over the whole portfolio (``+col``).

        SQLite otherwise skip-scans the account/time index per account instead of reading the covering index
        once in order; PostgreSQL plans this itself.
        """
        if self.listed or self.conn.dialect.name != "sqlite":
            return column
        return UnaryExpression(column, operator=custom_op("+"), type_=column.type)

    def rows(self, stmt: Select[Any]) -> Iterator[Any]:
        """Named rows, streamed (for the few small queries that read them by name)."""
        result = self.conn.execute(stmt.execution_options(yield_per=STREAM_ROWS))
        for partition in result.partitions():
            yield from partition

    def positions(self, first: Sequence[Any], second: Sequence[Any] | None = None) -> np.ndarray:
        """Frame positions (float, NaN for an account outside the frame) of a column of account ids, or with
        ``second`` of (source, external id) references."""
        if second is None:
            return np.array(list(map(self.pos.get, first)), dtype=float)
        return np.array(list(map(self.by_key.get, zip(first, second, strict=True))), dtype=float)

    def columns(self, stmt: Select[Any], *, keyed: bool = False) -> tuple[np.ndarray, list[np.ndarray]]:
        """Per-account rows -> (frame positions, one float array per remaining column; NULL is NaN).

        Rows start with the account id, or with ``keyed`` its (source, external id) reference. Column-wise per
        partition (zip, a map over a dict, numpy) rather than a Python step per row; rows of accounts outside
        the frame are dropped.
        """
        return self.columns_from(self.rows_in_partitions(stmt), len(stmt.selected_columns), keyed=keyed)

    def columns_from(self, partitions: Iterable[Sequence[Sequence[Any]]], width: int, *,
                     keyed: bool = False, exact: int = 0, texts: int = 0) -> tuple[np.ndarray, list[np.ndarray]]:
        """``columns`` of rows already streaming (``width`` columns each). The last ``texts`` columns are kept as
        they are (object arrays); the ``exact`` ones before them are integers read as int64, NULL as -1 (a float
        holds 53 bits)."""
        skip = 2 if keyed else 1
        numbers = width - texts
        positions: list[np.ndarray] = []
        blocks: list[list[np.ndarray]] = []
        for partition in partitions:
            cols = list(zip(*partition, strict=True))
            at = self.positions(cols[0], cols[1] if keyed else None)
            known = ~np.isnan(at)
            positions.append(at[known].astype(np.int64))
            blocks.append([np.array(col, dtype=float)[known] for col in cols[skip:numbers - exact]]
                          + [np.array([-1 if v is None else v for v in col], dtype=np.int64)[known]
                             for col in cols[numbers - exact:numbers]]
                          + [_objects(col)[known] for col in cols[numbers:width]])
        if not positions:
            return np.zeros(0, dtype=np.int64), ([np.zeros(0) for _ in range(numbers - skip - exact)]
                                                 + [np.zeros(0, dtype=np.int64) for _ in range(exact)]
                                                 + [np.zeros(0, dtype=object) for _ in range(texts)])
        return np.concatenate(positions), [np.concatenate(parts) for parts in zip(*blocks, strict=True)]

    def scatter(self, stmt: Select[Any], names: Sequence[str], *, keyed: bool = False) -> None:
        """Each numeric column of a per-account query into the signal column of the same position in ``names``."""
        at, cols = self.columns(stmt, keyed=keyed)
        for name, col in zip(names, cols, strict=True):
            self.values[name][at] = col

    def rows_in_partitions(self, stmt: Select[Any]) -> Iterator[Sequence[Sequence[Any]]]:
        """The statement's rows, STREAM_ROWS at a time, as the driver's plain tuples (one read of the result).

        The grouped queries return hundreds of thousands of rows (per contact for relationship strength), and
        each value goes straight into a numpy column: SQLAlchemy's row objects and result processing cost a third
        of the time of reading them and give nothing here (these columns are numbers, strings and NULLs, with
        no type to process). So only the one row SQLAlchemy read ahead goes through it; the driver's cursor is read
        directly after it: a server-side cursor on PostgreSQL, memory stays bounded either way.
        """
        return self.partitions_of(self.conn.execute(stmt.execution_options(yield_per=STREAM_ROWS)))

    @staticmethod
    def partitions_of(result: CursorResult[Any]) -> Generator[Sequence[Sequence[Any]], None, None]:
        """An executed (``yield_per``) result's rows, as ``rows_in_partitions`` gives them."""
        with result:
            # The row SQLAlchemy read ahead (its buffer holds one); a first partition of STREAM_ROWS through it cost
            # 0.1-0.15 s per family at 100k accounts, the rows of the whole result read from the driver after it.
            first = result.fetchmany(1)
            if not first:
                return
            yield [tuple(first[0])]
            cursor = result.cursor
            while partition := cursor.fetchmany(STREAM_ROWS):
                yield partition

    # The families that group rows by account reference (``account_key``), and those that reach accounts through
    # account_links (``acc_filter``).
    KEYED_FAMILIES = ("relationship", "engagement", "support", "contract")
    LINKED_FAMILIES = ("feedback", "usage", "billing", "intent")

    def run(self, families: Iterable[str]) -> None:
        """These families' signals for the builder's accounts, on its connection."""
        for name in families:
            getattr(self, name)()

    def all_families(self) -> None:
        self.run(self.KEYED_FAMILIES + self.LINKED_FAMILIES)

    # --- engagement -----------------------------------------------------------------------------
    ENGAGEMENT = ("days_since_two_way_touch", "days_since_touch", "touches_90d", "meetings_90d", "touches_period")

    def engagement(self) -> None:
        """Touches per account: when the last ones were, how many in the windows (``engagement_statement``)."""
        stmt = self.engagement_statement()
        self._engagement_rows(self.rows_in_partitions(stmt), len(stmt.selected_columns))

    def engagement_statement(self) -> Select[Any]:
        """One row per account reference with a touch (an email, call or meeting: every column counts touches alone,
        so the others are filtered out before aggregating). ``touches_period`` is left out when the lonely-client
        period is the 90 days of ``touches_90d``."""
        a = ACT
        flag = self.config.flags.lonely_client
        when = a.c.occurred_us
        t90 = self.ago_us(90)
        source, account, only = self.account_key(a)
        days_since = self.days_before
        columns = [
            source,
            account,
            days_since(func.max(case((self.one_of(a.c.direction, ("two_way", "inbound")), when)))).label(
                "days_since_two_way_touch"),
            days_since(func.max(when)).label("days_since_touch"),
            self.count_if(when >= t90).label("touches_90d"),
            self.count_if(and_(a.c.activity_type == "meeting", when >= t90)).label("meetings_90d"),
        ]
        if flag.period_days != 90:
            columns.append(self.count_if(when >= self.ago_us(flag.period_days)).label("touches_period"))
        return (
            select(*columns)
            .where(self.scanned(when) < self.ago_us(), not_(a.c.is_deleted),
                   self.one_of(a.c.activity_type, TOUCH_TYPES), only)
            .group_by(source, account)
        )

    def _engagement_rows(self, partitions: Iterable[Sequence[Sequence[Any]]], width: int) -> None:
        n = len(self.accounts)
        self.values["touches_period"] = np.zeros(n)
        self.values["days_since_touch"] = np.full(n, np.nan)
        at, cols = self.columns_from(partitions, width, keyed=True)
        for name, col in zip(self.ENGAGEMENT, cols, strict=False):
            self.values[name][at] = col
        if len(cols) < len(self.ENGAGEMENT):  # the same window as touches_90d (engagement_statement)
            self.values["touches_period"][at] = self.values["touches_90d"][at]
        for name in ("days_since_two_way_touch", "days_since_touch"):  # to the microsecond on both backends
            self.values[name] = np.round(self.values[name], 6)
        # No activity at all is a fact, not missing data: zero touches.
        for name in ("touches_90d", "meetings_90d"):
            col = self.values[name]
            col[np.isnan(col)] = 0.0

    # --- relationship ---------------------------------------------------------------------------
    RELATIONSHIP = ("relationship_capital", "thread_count", "seniority_levels_engaged", "departments_engaged",
                    "exec_sponsor_engaged", "exec_meeting_180d", "days_since_exec_touch")

    def relationship(self) -> None:
        """Relationship strength per contact, summed up per account (``relationship_statement``)."""
        self._relationship_rows(self.rows_in_partitions(self.relationship_statement()))

    def contact_statement(self, only: ColumnElement[bool] | None = None, *, ordered: bool = False) -> Select[Any]:
        """Per-contact aggregates over the relationship window, from participants alone: one row per contact
        with a touch in the window, for the frame's accounts (or those ``only`` keeps). A window shorter than
        ``EXEC_MEETING_DAYS`` is widened for ``meetings_180d`` alone: a contact met only before the window has a row
        with no touch.

        Participant rows carry their activity's account, time, type, direction and deleted flag, so over the
        whole portfolio this is one scan of ``ix_activity_participants_account`` in group order: no join to
        activities, no sort.
        """
        rc = self.config.relationship
        p, c = PART, CON
        as_of = literal(self.as_of, UtcDateTime())
        when = p.c.occurred_us
        # Regularity: how many of the window's periods had a touch. Period k holds the touches more than k and at
        # most k + 1 period lengths before as_of; a touch exactly at the window's start belongs to the last one.
        # In whole microseconds, exactly: a touch d after as_of minus the window W, cut in B periods, is in period
        # k when k W < d B <= (k + 1) W, that is k = (d B - 1) div W (d >= 1 here), the same on every backend.
        # One integer expression per row: on SQLite a CASE over the periods' bounds took 2% more of the query.
        buckets = rc.regularity_buckets
        elapsed = self.ago_us() - when
        period: ColumnElement[Any] = (elapsed * buckets - 1) // literal(rc.window_days * 86_400_000_000, BigInteger())
        last_touch: ColumnElement[Any] = when
        email = p.c.activity_type == "email"
        two_way = self.one_of(p.c.direction, ("inbound", "two_way"))
        email_two_way = and_(email, two_way)
        email_one_way = and_(email, or_(p.c.direction.is_(None), not_(two_way)))
        touch_kinds = [p.c.activity_type == "meeting", p.c.activity_type == "call", email_two_way, email_one_way,
                       when >= self.ago_us(rc.engaged_days)]
        reach = self.ago_us(max(rc.window_days, EXEC_MEETING_DAYS))
        if rc.window_days < EXEC_MEETING_DAYS:  # rows before the window count for meetings_180d alone
            in_window = when >= self.ago_us(rc.window_days)
            touch_kinds = [and_(kind, in_window) for kind in touch_kinds]
            period, last_touch = case((in_window, period)), case((in_window, when))
        source, account, in_frame = self.account_key(p)
        per_contact = (
            select(
                source,
                account,
                p.c.contact_external_id,  # touches: the four kinds below add up to all of them
                func.max(last_touch).label("last_touch"),
                *[self.count_if(kind).label(name) for kind, name in zip(
                    touch_kinds, ("meetings", "calls", "two_way_emails", "one_way_emails", "engaged_touches"),
                    strict=True)],
                self.count_if(and_(p.c.activity_type == "meeting", when >= self.ago_us(EXEC_MEETING_DAYS))).label(
                    "meetings_180d"),
                self.distinct_small(period, buckets).label("active_buckets"),
            )
            .where(
                self.scanned(when) < self.ago_us(),
                self.scanned(when) >= reach,
                not_(p.c.is_deleted),
                self.one_of(p.c.activity_type, TOUCH_TYPES),
                in_frame if only is None else only,
            )
            .group_by(source, account, p.c.contact_external_id)
        )
        if ordered:  # the order the group-by gives anyway, stated for the planner (``_Builder.orders_kept``)
            per_contact = per_contact.order_by(source, account, p.c.contact_external_id)
        pc: Subquery = per_contact.subquery("pc")
        # A contact is gone (2 deleted, 1 left) as known at as_of, that is when last changed before it.
        changed_at = func.coalesce(c.c.source_updated_at, c.c.deleted_at)
        changed_before = or_(changed_at.is_(None), changed_at < as_of)
        gone = case((and_(c.c.is_deleted, changed_before), 2), (and_(c.c.has_left, changed_before), 1), else_=0)
        unknown = SENIORITY_LEVELS.index("unknown")
        level = func.coalesce(case({x: k for k, x in enumerate(SENIORITY_LEVELS)}, value=c.c.seniority), unknown)
        stmt = select(
            pc.c[source.name].label("source_key"), pc.c[account.name].label("account_key"),
            c.c.id.label("contact_id"), pc.c.meetings, pc.c.calls, pc.c.two_way_emails,
            pc.c.one_way_emails, pc.c.engaged_touches, pc.c.meetings_180d, pc.c.active_buckets,
            self.days_before(pc.c.last_touch).label("days_since"), gone.label("gone"), level.label("level"),
            c.c.department,
        ).join(c, and_(c.c.source == pc.c[source.name], c.c.external_id == pc.c.contact_external_id))
        return stmt.order_by(pc.c[source.name], pc.c[account.name]) if ordered else stmt

    def relationship_statement(self, *, sorted_ahead: bool = False) -> Select[Any]:
        """One row per account reference: ``RELATIONSHIP``'s signals, summed up in SQL from the per-contact
        aggregates (``contact_statement``), and the account's champion packed in one integer (``_champions``).

        Each contact's strength is ``scoring.relationship.strength_sql``; only the per-account sums leave the
        database, a fifth of the rows of per-contact ones, which reading cost more than the SQL computing them.
        ``sorted_ahead``: order the result by its group key, the order it comes in anyway, so that SQLite sorts
        it and so computes the whole result in its first step (see ``_QueriesAhead``).
        """
        rc = self.config.relationship
        # OFFSET 0: each contact's row is computed once and read by the sums below, rather than merged into them,
        # which made SQLite compute a contact's level, gone and days_since again at each use (3.5% of the query).
        # Ordered where the planner keeps a subquery's order: the sums below are grouped without a sort.
        pc = self.contact_statement(ordered=self.orders_kept).offset(0).subquery("contact")
        live = pc.c.gone == 0
        engaged = and_(live, pc.c.engaged_touches > 0)
        is_exec = pc.c.level.in_([SENIORITY_LEVELS.index(x) for x in EXEC_LEVELS])
        strength = strength_sql(pc.c.days_since, pc.c.meetings, pc.c.calls, pc.c.two_way_emails,
                                pc.c.one_way_emails, pc.c.active_buckets, pc.c.level, SENIORITY_LEVELS, rc)
        prior = pc.c.meetings + pc.c.calls + pc.c.two_way_emails + pc.c.one_way_emails - pc.c.engaged_touches
        # The champion: most touches before the engaged window, ties to the lowest contact id; with why it is
        # gone (deleted, left, or no touch in the engaged window). One max() over an integer that orders so.
        span = literal(_CHAMPION_ID_SPAN, BigInteger())
        champion = ((prior * span + (span - 1 - pc.c.contact_id)) * 8
                    + pc.c.gone * 2 + case((pc.c.engaged_touches == 0, 1), else_=0))
        min_prior = self.config.flags.champion_gone.min_prior_touches
        stmt = select(
            pc.c.source_key,
            pc.c.account_key,
            func.sum(case((live, strength), else_=0.0)).label("strength_sum"),
            self.count_if(engaged).label("thread_count"),
            self.distinct_small(case((engaged, pc.c.level)), len(SENIORITY_LEVELS)).label("seniority_levels_engaged"),
            func.count(case((and_(engaged, pc.c.department != ""), self.folded(pc.c.department))).distinct()).label(
                "departments_engaged"),
            func.max(case((and_(engaged, is_exec), 1), else_=0)).label("exec_sponsor_engaged"),
            func.max(case((and_(is_exec, pc.c.meetings_180d > 0), 1), else_=0)).label("exec_meeting_180d"),
            func.min(case((is_exec, pc.c.days_since))).label("days_since_exec_touch"),
            func.max(case((prior >= min_prior, champion))).label("champion"),
        ).group_by(pc.c.source_key, pc.c.account_key).subquery("account")
        # The champion's name comes with its row: one key look-up each in this statement, which runs beside the
        # other families, rather than a query by 56k ids afterwards (0.5 s of the calling thread at 100k accounts).
        c = CON
        champion_id = span - 1 - (stmt.c.champion // 8) % span
        named = select(*stmt.c, display_name(c).label("champion_name")).select_from(
            stmt.outerjoin(c, c.c.id == champion_id))
        if sorted_ahead:
            named = named.order_by(*map(_sorted_apart, (stmt.c.source_key, stmt.c.account_key)))
        return named

    def _relationship_rows(self, partitions: Iterable[Sequence[Sequence[Any]]]) -> None:
        """Per-account rows of ``relationship_statement`` -> the signal columns, champions (and the contacts of
        ``detail_for`` accounts, ``_contact_details``).

        No row for an account: no contact touched in the window, which is a fact (zero capital, no threads), not
        missing data; only the days since an executive touch stay unknown.
        """
        rc = self.config.relationship
        n = len(self.accounts)
        for name in self.RELATIONSHIP:
            self.values[name] = np.zeros(n)
        self.values["days_since_exec_touch"] = np.full(n, np.nan)
        at, cols = self.columns_from(partitions, len(self.RELATIONSHIP) + 4, keyed=True, exact=1, texts=1)
        for name, col in zip(self.RELATIONSHIP, cols, strict=False):
            self.values[name][at] = col
        strength_sum = self.values["relationship_capital"]
        self.values["relationship_capital"] = 100.0 * (1.0 - np.exp(-strength_sum / rc.capital_scale))
        self._champions(at, *cols[-2:])
        if self.detail_for:
            self._contact_details()

    def _champions(self, at: np.ndarray, packed: np.ndarray, names: np.ndarray) -> None:
        """Each account's champion from its packed integer (``relationship_statement``; -1: none) and name,
        and the ``champion_gone`` flag: the champion was deleted, left, or has no touch in the engaged window."""
        n = len(self.accounts)
        champion_gone = np.zeros(n)
        has = packed >= 0
        at, packed = at[has], packed[has]
        stopped, gone = packed & 1, (packed >> 1) & 3
        prior = packed >> 3 >> _CHAMPION_ID_BITS
        for pos, name, touches, g, s in zip(at.tolist(), names[has], prior.tolist(), gone.tolist(), stopped.tolist(),
                                            strict=True):
            why = _GONE[g] or ("stopped engaging" if s else None)
            self.champions[pos] = Champion(name, touches, why)
            champion_gone[pos] = 1.0 if why else 0.0
        self.values["champion_gone"] = champion_gone

    def _contact_details(self) -> None:
        """The per-contact strengths of the ``detail_for`` accounts in the frame (for ``explain``), strongest
        first, computed by ``contact_strengths`` from the same per-contact aggregates."""
        detail = [a for a in self.accounts if a.id in self.detail_for]
        if not detail:
            return
        p = PART
        keys = _references_in(p.c.source, p.c.account_external_id, [(a.source, a.external_id) for a in detail])
        rows, touches = [], []
        for row in self.rows(self.contact_statement(only=keys)):
            if n := row.meetings + row.calls + row.two_way_emails + row.one_way_emails:  # touched within the window
                rows.append(row)
                touches.append(n)
        if not rows:
            return
        rc = self.config.relationship

        def col(name: str) -> np.ndarray:
            return np.array([getattr(row, name) for row in rows], dtype=float)

        levels = col("level").astype(np.int64)
        strengths = contact_strengths(col("days_since"), col("meetings"), col("calls"), col("two_way_emails"),
                                      col("one_way_emails"), col("active_buckets"),
                                      seniority_weights(SENIORITY_LEVELS, rc)[levels], rc)
        names = self._contact_names([row.contact_id for row in rows])
        for i, row in enumerate(rows):
            pos = self.by_key[(row.source_key, row.account_key)]
            self.contacts.setdefault(pos, []).append(ContactDetail(
                row.contact_id, names[row.contact_id], SENIORITY_LEVELS[int(levels[i])], row.department or None,
                int(touches[i]), float(row.days_since), row.gone == 0 and row.engaged_touches > 0, _GONE[row.gone],
                strengths.part(i),
            ))
        for details in self.contacts.values():
            details.sort(key=lambda d: -d.parts.strength)

    def _contact_names(self, ids: list[int]) -> dict[int, str]:
        """Display names of these contacts (``display_name``)."""
        c = CON
        names: dict[int, str] = {}
        unique = sorted(set(ids))
        for start in range(0, len(unique), 5_000):
            chunk = unique[start : start + 5_000]
            stmt = select(c.c.id, display_name(c)).where(c.c.id.in_(chunk))
            names.update((cid, name) for cid, name in self.conn.execute(stmt))
        return names

    # --- support --------------------------------------------------------------------------------
    def support(self) -> None:
        t = TIX
        join = t.join(ACC, and_(ACC.c.source == t.c.source, ACC.c.external_id == t.c.account_external_id))
        open_at = or_(t.c.closed_at >= self.as_of, and_(t.c.closed_at.is_(None), not_(t.c.is_closed)))
        t30, t90 = self.ago(30), self.ago(90)
        base_where = (t.c.opened_at < self.as_of, not_(t.c.is_deleted), self.account_key(t)[2])
        stmt = (
            select(
                ACC.c.id,
                self.count_if(t.c.opened_at >= t30).label("tickets_30d"),
                self.count_if(t.c.opened_at >= t90).label("tickets_90d"),
                self.count_if(and_(t.c.priority.in_(HIGH_PRIORITY), open_at)).label("open_high"),
                self.count_if(and_(t.c.is_escalated, t.c.opened_at >= t90)).label("escalations"),
            )
            .select_from(join)
            .where(*base_where)
            .group_by(ACC.c.id)
        )
        for name in ("tickets_30d", "tickets_90d", "open_high_priority_tickets", "escalations_90d"):
            self.values[name] = np.zeros(len(self.accounts))  # no ticket is a zero, not missing
        self.scatter(stmt, ["tickets_30d", "tickets_90d", "open_high_priority_tickets", "escalations_90d"])
        # Median resolution time over tickets closed in 180 days: row_number/count windows, portable.
        hours = hours_between(self.conn, t.c.opened_at, t.c.closed_at)
        ranked = (
            select(
                ACC.c.id.label("account_id"),
                hours.label("hours"),
                func.row_number().over(partition_by=ACC.c.id, order_by=(hours, t.c.id)).label("rn"),
                func.count().over(partition_by=ACC.c.id).label("cnt"),
            )
            .select_from(join)
            .where(*base_where, t.c.closed_at.is_not(None), t.c.closed_at < self.as_of,
                   t.c.closed_at >= self.ago(180))
            .subquery("ranked")
        )
        median = (
            select(ranked.c.account_id, func.avg(ranked.c.hours).label("median_hours"))
            .where(or_(ranked.c.rn == (ranked.c.cnt + 1) // 2, ranked.c.rn == (ranked.c.cnt + 2) // 2))
            .group_by(ranked.c.account_id)
        )
        self.scatter(median, ["median_resolution_hours"])

    # --- feedback -------------------------------------------------------------------------------
    def _linked(self, table: Table, entity: str) -> Any:
        return table.join(LINK, and_(LINK.c.entity == entity, LINK.c.record_id == table.c.id))

    def feedback(self) -> None:
        s = SURV
        t90, t180 = self.ago(90), self.ago(180)
        nps = s.c.kind == "nps"
        recent_nps = and_(nps, s.c.responded_at >= t180)
        where = (s.c.responded_at < self.as_of, not_(s.c.is_deleted), self.acc_filter(LINK.c.account_id))
        stmt = (
            select(
                LINK.c.account_id,
                self.count_if(recent_nps).label("nps_n"),
                self.count_if(and_(recent_nps, s.c.score >= 9)).label("promoters"),
                self.count_if(and_(recent_nps, s.c.score <= 6)).label("detractors"),
                func.avg(case((and_(s.c.kind == "csat", s.c.responded_at >= t180), s.c.score))).label("csat"),
                self.count_if(and_(nps, s.c.score <= 6, s.c.responded_at >= t90)).label("detractors_90d"),
                self.count_if(nps).label("nps_ever"),
            )
            .select_from(self._linked(s, "survey_responses"))
            .where(*where)
            .group_by(LINK.c.account_id)
        )
        at, (nps_n, promoters, detractors, csat, detractors_90d, nps_ever) = self.columns(stmt)
        v = self.values
        rated = nps_n > 0
        v["nps_180d"][at[rated]] = 100.0 * (promoters[rated] - detractors[rated]) / nps_n[rated]
        v["csat_avg_180d"][at] = csat
        ever = nps_ever > 0
        v["detractor_90d"][at[ever]] = (detractors_90d[ever] > 0).astype(float)
        ranked = (
            select(
                LINK.c.account_id,
                s.c.score,
                func.row_number()
                .over(partition_by=LINK.c.account_id, order_by=(s.c.responded_at.desc(), s.c.id.desc()))
                .label("rn"),
            )
            .select_from(self._linked(s, "survey_responses"))
            .where(*where, nps)
            .subquery("latest")
        )
        self.scatter(select(ranked.c.account_id, ranked.c.score).where(ranked.c.rn == 1), ["nps_latest"])

    # --- usage ----------------------------------------------------------------------------------
    def usage(self) -> None:
        u = USAGE
        this_month = _month_start(self.as_of_date)
        last = _month_start(self.as_of_date, 1)
        prior_start = _month_start(self.as_of_date, 4)
        is_last = u.c.period_start == last
        stmt = (
            select(
                LINK.c.account_id,
                func.max(case((is_last, u.c.active_users))).label("active_users"),
                func.max(case((is_last, u.c.licensed_seats))).label("seats"),
                func.max(case((is_last, u.c.feature_adoption))).label("adoption"),
                func.avg(case((u.c.period_start < last, u.c.active_users))).label("prior_users"),
            )
            .select_from(self._linked(u, "usage_metrics"))
            .where(
                u.c.period_start < this_month,  # complete months only
                u.c.period_start >= prior_start,
                not_(u.c.is_deleted),
                self.acc_filter(LINK.c.account_id),
            )
            .group_by(LINK.c.account_id)
        )
        at, (active, seats, adoption, prior) = self.columns(stmt)
        v = self.values
        with_seats = ~np.isnan(active) & ~np.isnan(seats) & (seats != 0)
        v["seat_utilization"][at[with_seats]] = active[with_seats] / seats[with_seats]
        v["feature_adoption"][at] = adoption
        with_prior = ~np.isnan(active) & ~np.isnan(prior) & (prior != 0)
        v["usage_trend"][at[with_prior]] = active[with_prior] / prior[with_prior] - 1.0

    # --- billing --------------------------------------------------------------------------------
    def billing(self) -> None:
        i = INV
        d = self.as_of_date
        unpaid = and_(
            i.c.status != "void",
            or_(i.c.paid_at.is_(None), i.c.paid_at >= d),
            i.c.due_date < d,
        )
        stmt = (
            select(
                LINK.c.account_id,
                _days_between(self.conn, func.min(case((unpaid, i.c.due_date))), literal(d, Date())).label(
                    "days_overdue"
                ),
                func.sum(case((unpaid, i.c.amount), else_=0.0)).label("overdue_amount"),
                func.sum(case((i.c.issued_at >= d - timedelta(days=180), i.c.failed_payments), else_=0)).label(
                    "failed"
                ),
            )
            .select_from(self._linked(i, "invoices"))
            .where(i.c.issued_at < d, not_(i.c.is_deleted), self.acc_filter(LINK.c.account_id))
            .group_by(LINK.c.account_id)
        )
        at, (days_overdue, overdue_amount, failed) = self.columns(stmt)
        v = self.values
        v["days_overdue"][at] = np.nan_to_num(days_overdue, nan=0.0)  # nothing unpaid: 0 days
        arr = np.array([np.nan if a.arr is None else a.arr for a in self.accounts])[at]
        with_arr = ~np.isnan(arr) & (arr != 0)
        v["overdue_share_of_arr"][at[with_arr]] = np.nan_to_num(overdue_amount[with_arr], nan=0.0) / arr[with_arr]
        v["failed_payments_180d"][at] = np.nan_to_num(failed, nan=0.0)

    # --- intent ---------------------------------------------------------------------------------
    def intent(self) -> None:
        n = INTENT
        ic = self.config.intent
        topic = func.trim(self.folded(n.c.topic))  # as the configured topics (core.config.scoring.fold_case)
        stmt = (
            select(
                LINK.c.account_id,
                func.max(case((topic.in_(ic.expansion_topics or [""]), n.c.score))).label("expansion"),
                func.max(case((topic.in_(ic.risk_topics or [""]), n.c.score))).label("risk"),
            )
            .select_from(self._linked(n, "intent_signals"))
            .where(
                n.c.observed_at < self.as_of,
                n.c.observed_at >= self.ago(ic.window_days),
                not_(n.c.is_deleted),
                self.acc_filter(LINK.c.account_id),
            )
            .group_by(LINK.c.account_id)
        )
        self.scatter(stmt, ["intent_expansion", "intent_risk"])

    # --- contract -------------------------------------------------------------------------------
    def contract(self) -> None:
        dl = DEAL
        d = self.as_of_date
        stmt = (
            select(ACC.c.id, func.min(dl.c.close_date).label("next_renewal"))
            .select_from(dl.join(ACC, and_(ACC.c.source == dl.c.source, ACC.c.external_id == dl.c.account_external_id)))
            .where(
                dl.c.kind == "renewal",
                dl.c.close_date >= d,
                or_(dl.c.source_created_at.is_(None), dl.c.source_created_at < self.as_of),
                not_(dl.c.is_deleted),
                self.account_key(dl)[2],
            )
            .group_by(ACC.c.id)
        )
        # Column by column (a loop over 100k accounts with a step per account took 0.37 s; this, a tenth of it).
        accounts = self.accounts
        deal_days = np.full(len(accounts), np.nan)  # the next renewal deal, closing on or after as_of
        for r in self.rows(stmt):
            nr, pos = _as_date(r.next_renewal), self.pos.get(r.id)
            if nr is not None and pos is not None:
                deal_days[pos] = (nr - d).days
        own_days = np.array([np.nan if x is None else (x - d).days for x in [a.renewal_date for a in accounts]],
                            dtype=float)
        own_days[own_days < 0] = np.nan  # a renewal date already past counts for nothing
        self.values["days_to_renewal"] = np.fmin(own_days, deal_days)  # the sooner; NaN only when both are
        as_of = self.as_of
        seconds = [np.nan if x is None else (as_of - _utc(x)).total_seconds() for x in [a.created_at for a in accounts]]
        self.values["tenure_days"] = np.maximum(np.array(seconds, dtype=float) / 86400, 0.0)  # NaN stays NaN
        self.values["arr"] = np.array([np.nan if a.arr is None else a.arr for a in accounts], dtype=float)


def display_name(contacts: Table) -> ColumnElement[Any]:
    """A contact's display name, in SQL (so a champion's comes with its row): first and last name, either alone when
    the other is empty, else the email, else ``contact <id>``."""
    c = contacts.c
    first, last = c.first_name != "", c.last_name != ""  # NULL is neither true nor false: the next WHEN
    return case((and_(first, last), c.first_name + " " + c.last_name), (first, c.first_name), (last, c.last_name),
                (c.email != "", c.email), else_=literal("contact ") + cast(c.id, String()))


def _objects(values: Sequence[Any]) -> np.ndarray:
    """A column of values as they are (``np.array`` would make a sequence of strings a string array)."""
    array = np.empty(len(values), dtype=object)
    array[:] = values
    return array


def _nan_none(v: float) -> float | None:
    return None if math.isnan(v) else v


def _as_date(v: Any) -> date | None:
    if v is None:
        return None
    if isinstance(v, datetime):
        return v.date()
    if isinstance(v, date):
        return v
    return date.fromisoformat(str(v)[:10])


def load_accounts(conn: Connection, as_of: datetime, account_ids: Sequence[int] | None = None,
                  *, include_deleted: bool = False, attributes_as_of: bool = False) -> list[AccountRow]:
    """Accounts that existed at ``as_of`` (created before it), live ones only unless ``include_deleted``.

    ``attributes_as_of`` (backtests): ARR, tier and renewal date as the latest ``AccountSnapshot`` dated before
    ``as_of`` had them; an account with none that old keeps its current values and ``attributes_dated`` False.
    """
    tier_col: ColumnElement[Any] = ACC.c.tier
    arr_col: ColumnElement[Any] = ACC.c.arr
    renewal_col: ColumnElement[Any] = ACC.c.renewal_date
    dated: ColumnElement[Any] = literal(True)
    source: Any = ACC
    if attributes_as_of:
        # Each account's latest snapshot dated before as_of: its highest id, since an account's snapshots are
        # written in valid_from order (store.upsert._snapshot_accounts). Joins, so that no plan depends on a
        # correlated subquery.
        snap = SNAP.alias("snap")
        before = (select(SNAP.c.account_id, func.max(SNAP.c.id).label("id")).where(SNAP.c.valid_from < as_of)
                  .group_by(SNAP.c.account_id).subquery("before"))
        source = ACC.outerjoin(before, before.c.account_id == ACC.c.id).outerjoin(snap, snap.c.id == before.c.id)
        found = snap.c.id.is_not(None)
        tier_col, arr_col, renewal_col, dated = (case((found, snap.c.tier), else_=ACC.c.tier),
                                                 case((found, snap.c.arr), else_=ACC.c.arr),
                                                 case((found, snap.c.renewal_date), else_=ACC.c.renewal_date), found)
    stmt = select(
        ACC.c.id, ACC.c.source, ACC.c.external_id, ACC.c.name, ACC.c.domain, tier_col, arr_col,
        type_coerce(renewal_col, Date()), type_coerce(ACC.c.source_created_at, DateTime()), ACC.c.override_band,
        ACC.c.override_until, dated,
    ).select_from(source).where(or_(ACC.c.source_created_at.is_(None), ACC.c.source_created_at < as_of)).order_by(
        ACC.c.id)
    if not include_deleted:
        stmt = stmt.where(not_(ACC.c.is_deleted))
    if account_ids is not None:
        stmt = stmt.where(ACC.c.id.in_(list(account_ids)))
    tiers: dict[str | None, str | None] = {}

    def tier_of(tier: str | None) -> str | None:
        if tier not in tiers:
            tiers[tier] = tier.lower() if tier else None
        return tiers[tier]

    # Tuple unpacking, not attribute access per field: this runs once per account. The creation time is read as
    # the naive UTC it is stored as (UtcDateTime's processing per row was a fifth of this function) and made aware
    # here.
    return [
        AccountRow(id_, source, ext, name, domain, tier_of(tier), arr, renewal,
                   None if created is None else datetime.combine(created.date(), created.time(), UTC),
                   band, until, bool(known))
        for id_, source, ext, name, domain, tier, arr, renewal, created, band, until, known
        in conn.execute(stmt.execution_options(yield_per=STREAM_ROWS))
    ]


def _custom_signals(config: ScoringConfig, b: _Builder, frame_cats: dict[str, list[str | None]]) -> None:
    if not config.custom_signals:
        return
    extras: dict[int, dict[str, Any]] = {}
    stmt = select(ACC.c.id, ACC.c.extra).where(b.acc_filter(ACC.c.id))
    for r in b.rows(stmt):
        if r.id in b.pos:
            extras[r.id] = r.extra or {}
    for name, spec in config.custom_signals.items():
        key = f"custom.{name}"
        if spec.kind == "categorical":
            frame_cats[key] = [_text(extras.get(a.id, {}).get(spec.field)) for a in b.accounts]
            continue
        col = np.full(len(b.accounts), np.nan)
        for pos, acc in enumerate(b.accounts):
            col[pos] = _number(extras.get(acc.id, {}).get(spec.field))
        b.values[key] = col


def _text(v: Any) -> str | None:
    return None if v is None or v == "" else str(v)


def _number(v: Any) -> float:
    if isinstance(v, bool):
        return 1.0 if v else 0.0
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def single_connection(conn: Connection) -> bool:
    """Whether the engine has one shared connection (SQLite in memory): no other connection, thread or process
    would see the same database."""
    return isinstance(conn.engine.pool, SingletonThreadPool | StaticPool)


def second_connection_pays(conn: Connection) -> bool:
    """Whether, in one process, a family on a second connection runs beside the others: on a database server.

    The server does the work while psycopg waits without the GIL. With SQLite the work happens inside
    ``sqlite3_step``, which takes the GIL back for every result row, so two threads mostly wait for each other:
    no faster, and a third more CPU, when measured.
    """
    return conn.dialect.name != "sqlite" and not single_connection(conn)


def _ahead_pays(conn: Connection) -> bool:
    """Whether, in one process, the relationship query pays to run ahead on a second connection: SQLite on a file."""
    return conn.dialect.name == "sqlite" and not single_connection(conn)


class _QueriesAhead:
    """SQLite: queries run to their end on connections of their own, one after another in a thread, and read later.

    Sorted apart (``_sorted_apart``), a query's whole result is computed in its first ``sqlite3_step``, which the
    driver runs without the GIL: the relationship SQL (2.2-2.3 s at 100k accounts) runs on the second CPU while the
    calling thread computes the other families, engagement included. With the garbage collector paused
    (``core.bulk``) these take about as long (2.3 s, measured); when they took longer, the engagement SQL ran
    ahead too, after the relationship's. The rows are read by the calling thread once the result is ready, so that
    the two threads do not take the GIL from each other for every row
    (which made a whole family in a thread no faster, see ``second_connection_pays``). The engine's file
    connections may change threads.
    """

    def __init__(self, engine: Engine, statements: Callable[[_Builder], list[Select[Any]]],
                 early: _Builder | None = None) -> None:
        """``statements`` of a builder; with ``early`` (a builder whose statements are those of the real one), they
        start now, else at ``start``."""
        self.engine = engine
        self.make = statements
        self.threads = ThreadPoolExecutor(max_workers=1, thread_name_prefix="signals")
        self.ahead: list[Future[tuple[Connection, CursorResult[Any]]]] = []
        if early is not None:
            self.start(early)

    def start(self, builder: _Builder) -> None:
        """Start the statements, unless they already are."""
        if not self.ahead:
            self.ahead = [self.threads.submit(self._execute, self.engine, stmt) for stmt in self.make(builder)]

    @staticmethod
    def _execute(engine: Engine, stmt: Select[Any]) -> tuple[Connection, CursorResult[Any]]:
        own = engine.connect()
        try:
            return own, own.execute(stmt.execution_options(yield_per=STREAM_ROWS))
        except BaseException:
            own.close()
            raise

    def result(self, i: int) -> CursorResult[Any]:
        """The i-th statement's result, waiting for it to be computed."""
        return self.ahead[i].result()[1]

    def __enter__(self) -> _QueriesAhead:
        return self

    def __exit__(self, *exc: object) -> None:
        for future in self.ahead:
            future.cancel()
        self.threads.shutdown(wait=True)
        for future in self.ahead:
            if not future.cancelled() and future.exception() is None:
                own, result = future.result()
                result.close()
                own.close()


# Memory a hash table of the relationship query may take on PostgreSQL (``_roomy_hashes``).
HASH_MEMORY_MB = 64


def _roomy_hashes(conn: Connection) -> None:
    """Let this connection's hash tables take ``HASH_MEMORY_MB`` (its transaction only) on PostgreSQL, by raising
    ``hash_mem_multiplier`` to that over ``work_mem`` (at most to 1000, its limit), never lowering it.

    With the default 4 MB of ``work_mem`` (8 MB of hash memory), the relationship query's join of 470k per-contact
    rows with 500k contacts (46 MB at 100k accounts) spills both sides to disk in 8 batches. Sorts keep to
    ``work_mem``: a larger one makes the planner hash the per-contact aggregate instead of streaming it in index
    order, which took twice as long. Measured at 100k accounts: 3.1-3.8 s -> 2.6-2.8 s (median of 5, two rounds).
    """
    if conn.dialect.name != "postgresql":
        return
    conn.exec_driver_sql(
        "SELECT set_config('hash_mem_multiplier', greatest(current_setting('hash_mem_multiplier')::float8, "
        f"least({HASH_MEMORY_MB} * 1048576.0 / pg_size_bytes(current_setting('work_mem')), 1000))::text, true)")


def _relationship_beside(engine: Engine, early: Select[Any] | None, ready: Future[_Builder]) -> None:
    """The relationship family on a connection of its own (a database server): its statement starts at once when
    known early (``early``), and its rows are read into the builder once ``ready`` holds it (the accounts read)."""
    with engine.connect() as own:
        _roomy_hashes(own)
        stmt = early if early is not None else ready.result().relationship_statement()
        partitions = _Builder.partitions_of(own.execute(stmt.execution_options(yield_per=STREAM_ROWS)))
        try:
            first = next(partitions, None)  # the server computes the aggregate meanwhile
            builder = ready.result()  # cancelled when the calling thread failed first
        except BaseException:
            partitions.close()  # the cursor closes before its connection
            raise
        worker = copy.copy(builder)  # shares the signal columns; only the connection is its own
        worker.conn = own
        worker._relationship_rows(itertools.chain([] if first is None else [first], partitions))


@gc_paused()
def compute_signals(
    conn: Connection,
    config: ScoringConfig,
    as_of: datetime,
    *,
    account_ids: Sequence[int] | None = None,
    include_deleted: bool = False,
    detail_for: Sequence[int] = (),
    parallel: bool = False,
    workers: int = 1,
    attributes_as_of: bool = False,
) -> SignalFrame:
    """Every catalogue signal for the accounts that existed at ``as_of`` (UTC), using only data dated before it.

    ``detail_for``: account ids whose per-contact strengths are kept (for explanations).
    ``attributes_as_of``: ARR, tier and renewal date as they were at ``as_of`` (backtests; ``load_accounts``).
    ``parallel``: in one process, run the relationship family on a second connection of the same engine, at the
    same time as the others: all of it on a database server (``second_connection_pays``); on a SQLite file, its
    SQL, read afterwards (``_QueriesAhead``).
    ``workers``: with more than one, processes that each compute a share of the portfolio
    (``scoring.partitions``; the whole portfolio only, not an explicit set of accounts).
    With either, ``conn`` must hold no uncommitted writes: the other connections read what is committed.
    """
    from scoring.partitions import Workers, worker_count

    as_of = _utc(as_of)
    shares = worker_count(conn, workers, subset=account_ids is not None)
    pool = Workers(shares) if shares > 1 else None  # started first: their start-up overlaps the next steps
    # The statements depend on the accounts only when these are listed one by one: over the whole portfolio, the
    # ones that run beside the others start before the accounts are read.
    early = None if account_ids is not None else _Builder(conn, config, as_of, [], set(), subset=False)
    ahead: _QueriesAhead | None = None
    beside: ThreadPoolExecutor | None = None
    ready: Future[_Builder] = Future()
    relationship: Future[None] | None = None
    if pool is None and parallel and _ahead_pays(conn):
        ahead = _QueriesAhead(conn.engine, lambda b: [b.relationship_statement(sorted_ahead=True)], early)
    elif pool is None and parallel and second_connection_pays(conn):
        # One process: the relationship family (the largest) runs on a second connection in a thread while the
        # others run here. Each family writes its own columns.
        beside = ThreadPoolExecutor(max_workers=1, thread_name_prefix="signals")
        relationship = beside.submit(_relationship_beside, conn.engine,
                                     early.relationship_statement() if early else None, ready)
    try:
        with pool or ahead or nullcontext():
            accounts = load_accounts(conn, as_of, account_ids, include_deleted=include_deleted,
                                     attributes_as_of=attributes_as_of)
            b = _Builder(conn, config, as_of, accounts, set(detail_for), subset=account_ids is not None)
            if pool is not None:
                pool.compute(b)
            elif ahead is not None:
                ahead.start(b)
                b.run(f for f in b.KEYED_FAMILIES + b.LINKED_FAMILIES if f != "relationship")
                b._relationship_rows(b.partitions_of(ahead.result(0)))
            elif relationship is not None:
                ready.set_result(b)
                b.run(f for f in b.KEYED_FAMILIES + b.LINKED_FAMILIES if f != "relationship")
                relationship.result()
            else:
                b.all_families()
    finally:
        if beside is not None:
            ready.cancel()  # a failure before the builder was ready: the thread stops waiting for it
            beside.shutdown(wait=True)
    frame = SignalFrame(as_of=as_of, accounts=accounts, values=b.values, champions=b.champions, contacts=b.contacts)
    _custom_signals(config, b, frame.categories)
    from scoring.flags import apply_flags

    apply_flags(frame, config)
    return frame


__all__ = [
    "AccountRow",
    "Champion",
    "ContactDetail",
    "KeyRange",
    "SignalFrame",
    "compute_signals",
    "folded",
    "hours_between",
    "load_accounts",
    "second_connection_pays",
]

