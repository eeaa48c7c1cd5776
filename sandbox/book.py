"""The synthetic book of business: a deterministic SQLite database of CRM, survey, intent, usage and billing
records, driven by a hidden per-account latent health whose truth is written beside it.

Every account has a latent health h in [0, 1] that walks monthly (with a per-account drift) over the last
18 months and drives its signals: engagement volume and two-way share, contacts engaged, executive
involvement, tickets, NPS/CSAT, product usage, invoices and intent surges. Annual renewals inside the
window are won or lost with a probability that falls steeply with h; a lost renewal churns the account
and its activity drops to almost nothing. The truth (health path, churn, renewal outcomes) goes to
``<db>.truth.json`` and never into the tables the emulators serve.

Same (accounts, seed, anchor) => byte-identical database: each account draws from its own seeded
``random.Random`` stream, rows are written in a fixed order, and nothing reads the clock but the
default anchor.
"""

from __future__ import annotations

import argparse
import calendar
import functools
import json
import math
import os
import random
import sqlite3
import statistics
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from sandbox import names

GENERATOR_VERSION = 4
HISTORY_MONTHS = 18
HISTORY_DAYS = 548
DAY = 86_400
_FLUSH_ROWS = 20_000

SCHEMA: dict[str, str] = {
    "accounts": (
        "n INTEGER PRIMARY KEY, name TEXT NOT NULL, domain TEXT, website TEXT, industry TEXT, employees INTEGER, "
        "arr REAL, tier TEXT NOT NULL, owner_n INTEGER, created_at TEXT NOT NULL, updated_at TEXT NOT NULL, "
        "renewal_date TEXT, description TEXT, is_deleted INTEGER NOT NULL"
    ),
    "users": (
        "n INTEGER PRIMARY KEY, first_name TEXT, last_name TEXT NOT NULL, email TEXT NOT NULL, title TEXT, "
        "is_active INTEGER NOT NULL, created_at TEXT NOT NULL, updated_at TEXT NOT NULL"
    ),
    "contacts": (
        "n INTEGER PRIMARY KEY, account_n INTEGER, first_name TEXT, last_name TEXT NOT NULL, email TEXT, title TEXT, "
        "department TEXT, phone TEXT, has_left INTEGER NOT NULL, created_at TEXT NOT NULL, updated_at TEXT NOT NULL, "
        "is_deleted INTEGER NOT NULL"
    ),
    "activities": (
        "n INTEGER PRIMARY KEY, account_n INTEGER, owner_n INTEGER, kind TEXT NOT NULL, direction TEXT, "
        "occurred_at TEXT NOT NULL, subject TEXT, body TEXT, duration_minutes REAL, contact_ns TEXT NOT NULL, "
        "created_at TEXT NOT NULL, updated_at TEXT NOT NULL, is_deleted INTEGER NOT NULL"
    ),
    "deals": (
        "n INTEGER PRIMARY KEY, account_n INTEGER, name TEXT NOT NULL, kind TEXT NOT NULL, stage TEXT NOT NULL, "
        "is_closed INTEGER NOT NULL, is_won INTEGER NOT NULL, close_date TEXT, amount REAL, contact_ns TEXT NOT NULL, "
        "created_at TEXT NOT NULL, updated_at TEXT NOT NULL, is_deleted INTEGER NOT NULL"
    ),
    "tickets": (
        "n INTEGER PRIMARY KEY, account_n INTEGER, contact_n INTEGER, subject TEXT, priority TEXT NOT NULL, "
        "status TEXT NOT NULL, is_closed INTEGER NOT NULL, is_escalated INTEGER NOT NULL, opened_at TEXT NOT NULL, "
        "closed_at TEXT, created_at TEXT NOT NULL, updated_at TEXT NOT NULL, is_deleted INTEGER NOT NULL"
    ),
    "survey_responses": (
        "n INTEGER PRIMARY KEY, kind TEXT NOT NULL, score REAL NOT NULL, comment TEXT, responded_at TEXT NOT NULL, "
        "email TEXT, created_at TEXT NOT NULL, updated_at TEXT NOT NULL"
    ),
    "intent_signals": (
        "n INTEGER PRIMARY KEY, domain TEXT NOT NULL, topic TEXT NOT NULL, score REAL NOT NULL, "
        "observed_at TEXT NOT NULL, updated_at TEXT NOT NULL"
    ),
    "usage": (
        "n INTEGER PRIMARY KEY, account_n INTEGER NOT NULL, account_domain TEXT, period_start TEXT NOT NULL, "
        "active_users INTEGER NOT NULL, licensed_seats INTEGER NOT NULL, feature_adoption REAL NOT NULL"
    ),
    "invoices": (
        "n INTEGER PRIMARY KEY, account_n INTEGER NOT NULL, amount REAL NOT NULL, issued_at TEXT NOT NULL, "
        "due_date TEXT NOT NULL, paid_at TEXT, status TEXT NOT NULL, failed_payments INTEGER NOT NULL"
    ),
}
# Indexes on every *_n and on updated_at (the contract), plus the lookups emulators filter on.
INDEXES: tuple[tuple[str, str], ...] = (
    ("accounts", "owner_n"), ("accounts", "updated_at"), ("accounts", "domain"),
    ("users", "updated_at"), ("users", "email"),
    ("contacts", "account_n"), ("contacts", "updated_at"), ("contacts", "email"),
    ("activities", "account_n"), ("activities", "owner_n"), ("activities", "updated_at"),
    ("activities", "occurred_at"),
    ("deals", "account_n"), ("deals", "updated_at"),
    ("tickets", "account_n"), ("tickets", "contact_n"), ("tickets", "updated_at"),
    ("survey_responses", "updated_at"), ("survey_responses", "email"),
    ("intent_signals", "updated_at"), ("intent_signals", "domain"),
    ("usage", "account_n"), ("usage", "period_start"),
    ("invoices", "account_n"), ("invoices", "issued_at"),
)
COLUMNS: dict[str, tuple[str, ...]] = {
    table: tuple(part.split()[0] for part in ddl.split(", ")) for table, ddl in SCHEMA.items()
}


@dataclass(frozen=True)
class AccountTruth:
    """What really happened to an account; never served by the emulated APIs.

    ``latent_health`` is 0-1 at the anchor; ``health_by_month`` holds the monthly path (oldest first, one value
    per history month, the last one equal to ``latent_health``).
    """

    n: int
    domain: str | None
    latent_health: float
    churned: bool
    churn_date: date | None
    renewal_outcomes: list[tuple[date, str]]
    health_by_month: list[float] = field(default_factory=list)


@dataclass(frozen=True)
class Book:
    """A generated book database and its truth file."""

    path: Path
    accounts: int
    seed: int
    anchor: date

    @property
    def truth_path(self) -> Path:
        return self.path.with_name(self.path.name + ".truth.json")

    @property
    def anchor_datetime(self) -> datetime:
        """The book's "now": anchor 00:00 UTC; every generated timestamp is before it."""
        return datetime(self.anchor.year, self.anchor.month, self.anchor.day, tzinfo=UTC)

    def connect(self) -> sqlite3.Connection:
        """A read-only connection, usable from any thread (serialise access yourself)."""
        return sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True, check_same_thread=False)

    def truth(self) -> dict[int, AccountTruth]:
        payload = json.loads(self.truth_path.read_text(encoding="utf-8"))
        out: dict[int, AccountTruth] = {}
        for row in payload["accounts"]:
            out[row["n"]] = AccountTruth(
                n=row["n"],
                domain=row["domain"],
                latent_health=row["latent_health"],
                churned=row["churned"],
                churn_date=date.fromisoformat(row["churn_date"]) if row["churn_date"] else None,
                renewal_outcomes=[(date.fromisoformat(d), outcome) for d, outcome in row["renewal_outcomes"]],
                health_by_month=row["health_by_month"],
            )
        return out


class BookReader:
    """Read-only queries on a book from many server threads: one SQLite connection per thread."""

    def __init__(self, book: Book) -> None:
        self.book = book
        self._local = threading.local()

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self.book.connect()
            conn.row_factory = sqlite3.Row
            self._local.conn = conn
        return conn.execute(sql, params).fetchall()


def build_book(accounts: int = 300, seed: int = 7, anchor: date | None = None, cache_dir: Path | None = None) -> Book:
    """Generate the book, or reuse the one in ``cache_dir`` built from the same inputs and generator version.

    Without ``cache_dir`` the book goes to a fresh temporary directory. ``anchor`` defaults to today (UTC).
    """
    if accounts < 1:
        raise ValueError("accounts must be at least 1")
    anchor = anchor or datetime.now(UTC).date()
    directory = cache_dir if cache_dir is not None else Path(tempfile.mkdtemp(prefix="sandbox-book-"))
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"book-a{accounts}-s{seed}-{anchor.isoformat()}-v{GENERATOR_VERSION}.db"
    book = Book(path=path, accounts=accounts, seed=seed, anchor=anchor)
    if path.exists() and book.truth_path.exists():
        return book
    # Build under private names and rename, so concurrent builders never see a half-written file.
    tmp_db = directory / f".{path.name}.{os.getpid()}.tmp"
    tmp_truth = directory / f".{book.truth_path.name}.{os.getpid()}.tmp"
    tmp_db.unlink(missing_ok=True)
    truth = _Generator(accounts, seed, anchor).write(tmp_db)
    tmp_truth.write_text(json.dumps(truth, separators=(",", ":"), ensure_ascii=False), encoding="utf-8")
    os.replace(tmp_truth, book.truth_path)
    os.replace(tmp_db, path)
    return book


def describe(book: Book) -> dict[str, Any]:
    """The book's figures: records per table, deleted rows, churn share, latent-health quantiles (0-1)."""
    conn = book.connect()
    try:
        records = {table: conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0] for table in SCHEMA}
        deleted = {
            table: conn.execute(f"SELECT COUNT(*) FROM {table} WHERE is_deleted = 1").fetchone()[0]
            for table, ddl in SCHEMA.items()
            if "is_deleted" in ddl
        }
        silent = conn.execute(
            "SELECT COUNT(*) FROM accounts a WHERE NOT EXISTS (SELECT 1 FROM activities t WHERE t.account_n = a.n)"
        ).fetchone()[0]
    finally:
        conn.close()
    truth = book.truth()
    health = sorted(t.latent_health for t in truth.values())
    churned = sum(1 for t in truth.values() if t.churned)
    renewals = [outcome for t in truth.values() for _, outcome in t.renewal_outcomes]
    # Percentile cut points 1..99 (a one-account book repeats its only value).
    cuts = statistics.quantiles(health, n=100, method="inclusive") if len(health) > 1 else health * 99
    return {
        "accounts": book.accounts,
        "seed": book.seed,
        "anchor": book.anchor.isoformat(),
        "records": records,
        "deleted": deleted,
        "accounts_without_activity": silent,
        "activities_per_account": round(records["activities"] / book.accounts, 2),
        "churned_accounts": churned,
        "churn_share": round(churned / book.accounts, 4),
        "renewals": {"won": renewals.count("won"), "lost": renewals.count("lost")},
        "latent_health": {
            "mean": round(statistics.fmean(health), 4),
            **{f"p{p}": round(cuts[p - 1], 4) for p in (10, 25, 50, 75, 90)},
        },
    }


# --- generation ------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=8192)
def _day_text(day_index: int) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(day_index * DAY))


def _iso(ts: int) -> str:
    """Epoch seconds -> ``YYYY-MM-DDTHH:MM:SSZ`` (the hot path of generation: the date part is cached)."""
    day_index, seconds = divmod(ts, DAY)
    hours, seconds = divmod(seconds, 3600)
    minutes, seconds = divmod(seconds, 60)
    return f"{_day_text(day_index)}T{hours:02d}:{minutes:02d}:{seconds:02d}Z"


def _epoch(d: date) -> int:
    return calendar.timegm(d.timetuple())


def _add_years(d: date, years: int) -> date:
    try:
        return d.replace(year=d.year + years)
    except ValueError:  # 29 February
        return d.replace(year=d.year + years, day=28)


def _add_months(d: date, months: int) -> date:
    index = d.year * 12 + d.month - 1 + months
    year, month = divmod(index, 12)
    return date(year, month + 1, min(d.day, calendar.monthrange(year, month + 1)[1]))


def _clip(value: float, low: float = 0.0, high: float = 1.0) -> float:
    return low if value < low else high if value > high else value


def _poisson(rng: random.Random, lam: float) -> int:
    """Knuth's method; fine for the small rates used here."""
    if lam <= 0:
        return 0
    limit, k, p = math.exp(-lam), 0, rng.random()
    while p > limit:
        k += 1
        p *= rng.random()
    return k


def _ids(ns: Sequence[int]) -> str:
    """A JSON list of ints, compact (``[1,2]``)."""
    return f"[{','.join(map(str, ns))}]"


@dataclass
class _Contact:
    n: int
    email: str | None
    executive: bool
    has_left: bool


_TIER_SCALE = {"smb": 0.85, "mid_market": 1.1, "enterprise": 1.5}


@dataclass
class _Account:
    """One account's draws that its child records depend on."""

    n: int
    rng: random.Random
    name: str
    domain: str
    tier: str
    arr: float
    seats: int
    owner: int
    created: int  # epoch seconds
    end: int  # epoch seconds of the customer's last day: the churn date, or the anchor
    path: list[float]  # latent health per history month
    start: int
    bucket: int
    contacts: list[_Contact] = field(default_factory=list)

    @property
    def scale(self) -> float:
        """Bigger customers make more of everything (activities, tickets)."""
        return _TIER_SCALE[self.tier]

    def h_at(self, ts: int) -> float:
        return self.path[min(HISTORY_MONTHS - 1, max(0, (ts - self.start) // self.bucket))]


class _Writer:
    """Buffers rows per table and inserts them with executemany in chunks."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.rows: dict[str, list[tuple[Any, ...]]] = {table: [] for table in SCHEMA}
        self.next_n: dict[str, int] = dict.fromkeys(SCHEMA, 1)
        self.sql = {
            table: f"INSERT INTO {table} VALUES ({', '.join('?' * len(cols))})" for table, cols in COLUMNS.items()
        }

    def take(self, table: str) -> int:
        n = self.next_n[table]
        self.next_n[table] = n + 1
        return n

    def add(self, table: str, row: tuple[Any, ...]) -> None:
        rows = self.rows[table]
        rows.append(row)
        if len(rows) >= _FLUSH_ROWS:
            self.flush(table)

    def flush(self, table: str | None = None) -> None:
        for name in [table] if table else list(self.rows):
            if self.rows[name]:
                self.conn.executemany(self.sql[name], self.rows[name])
                self.rows[name].clear()


class _Generator:
    def __init__(self, accounts: int, seed: int, anchor: date) -> None:
        self.accounts = accounts
        self.seed = seed
        self.anchor = anchor
        self.now = _epoch(anchor)  # every timestamp is strictly before this
        self.start = self.now - HISTORY_DAYS * DAY
        self.bucket = (self.now - self.start) // HISTORY_MONTHS
        self.users = max(3, accounts // 25)
        first_month = _add_months(anchor.replace(day=1), -HISTORY_MONTHS)
        # (month start, its first second, the next month's first second)
        self.usage_months = [
            (month, _epoch(month), _epoch(_add_months(month, 1)))
            for month in (_add_months(first_month, i) for i in range(HISTORY_MONTHS))
        ]
        self.domains: set[str] = set()

    def write(self, path: Path) -> dict[str, Any]:
        conn = sqlite3.connect(path)
        try:
            conn.execute("PRAGMA journal_mode = OFF")
            conn.execute("PRAGMA synchronous = OFF")
            for table, ddl in SCHEMA.items():
                conn.execute(f"CREATE TABLE {table} ({ddl})")
            writer = _Writer(conn)
            self._users(writer)
            truth = [self._account(writer, n) for n in range(1, self.accounts + 1)]
            writer.flush()
            for table, column in INDEXES:
                conn.execute(f"CREATE INDEX ix_{table}_{column} ON {table} ({column})")
            conn.commit()
        finally:
            conn.close()
        return {
            "generator_version": GENERATOR_VERSION,
            "accounts_requested": self.accounts,
            "seed": self.seed,
            "anchor": self.anchor.isoformat(),
            "months": [m.isoformat() for m in self._bucket_starts()],
            "accounts": truth,
        }

    def _bucket_starts(self) -> Iterator[date]:
        for m in range(HISTORY_MONTHS):
            yield datetime.fromtimestamp(self.start + m * self.bucket, UTC).date()

    def _users(self, w: _Writer) -> None:
        rng = random.Random(f"users:{self.seed}")
        for _ in range(self.users):
            n = w.take("users")
            first, last = rng.choice(names.FIRST_NAMES), rng.choice(names.LAST_NAMES)
            email = f"{names.ascii_slug(first)}.{names.ascii_slug(last)}{n}@northwind-cloud.example"
            created = self.now - rng.randint(400, 2000) * DAY - rng.randrange(DAY)
            updated = self.now - rng.randint(1, 300) * DAY - rng.randrange(DAY)
            active = 0 if n > 3 and rng.random() < 0.06 else 1
            title = rng.choice(names.OWNER_TITLES)
            w.add("users", (n, first, last, email, title, active, _iso(created), _iso(updated)))

    def _when(self, rng: random.Random, m: int, not_before: int, before: int | None = None) -> int:
        """A random second inside history month ``m``, not before ``not_before``, before ``before`` and the anchor."""
        low = max(self.start + m * self.bucket, not_before)
        high = min(self.start + (m + 1) * self.bucket, self.now - 1, before or self.now)
        return low + rng.randrange(max(1, high - low))

    def _later(self, rng: random.Random, ts: int, max_seconds: int) -> int:
        """A time after ``ts`` by up to ``max_seconds``, still before the anchor."""
        return min(ts + rng.randrange(max(1, max_seconds)), self.now - 1)

    def _domain(self, rng: random.Random, n: int) -> tuple[str, str]:
        messy = rng.random() < 0.02 or n % 40 == 11
        if messy:
            name, slug = rng.choice(names.MESSY_COMPANIES)
        else:
            stem, suffix = rng.choice(names.COMPANY_STEMS), rng.choice(names.COMPANY_SUFFIXES)
            name = f"{stem} {suffix} {rng.choice(names.LEGAL_FORMS)}".strip()
            slug = names.ascii_slug(stem + suffix)
        domain = f"{slug}.{rng.choice(names.TLDS)}"
        if domain in self.domains:
            domain = f"{slug}{n}.{domain.split('.', 1)[1]}"
        self.domains.add(domain)
        return name, domain

    def _account(self, w: _Writer, n: int) -> dict[str, Any]:
        rng = random.Random((self.seed << 40) | n)
        name, domain = self._domain(rng, n)
        roll = rng.random()
        tier = "smb" if roll < 0.55 else "mid_market" if roll < 0.85 else "enterprise"
        if tier == "smb":
            employees, arr, seats = rng.randint(10, 199), rng.uniform(6_000, 30_000), rng.randint(5, 40)
        elif tier == "mid_market":
            employees, arr, seats = rng.randint(200, 999), rng.uniform(30_000, 150_000), rng.randint(40, 200)
        else:
            employees = int(1000 * math.exp(rng.random() * 3.9))
            arr, seats = rng.uniform(150_000, 900_000), rng.randint(200, 2000)
        age_days = rng.randint(HISTORY_DAYS + 1, 2200) if rng.random() < 0.72 else rng.randint(30, HISTORY_DAYS)
        created = self.now - age_days * DAY - rng.randrange(DAY)
        created_day = datetime.fromtimestamp(created, UTC).date()

        # The hidden health path: one value per history month.
        health = rng.betavariate(5.0, 2.2)
        drift = rng.gauss(0.0, 0.011)
        path: list[float] = []
        for _ in range(HISTORY_MONTHS):
            health = _clip(health + drift + rng.gauss(0.0, 0.045), 0.02, 0.98)
            path.append(round(health, 4))
        a = _Account(n, rng, name, domain, tier, round(arr, -2), seats, 1 + rng.randrange(self.users), created,
                     self.now, path, self.start, self.bucket)

        # Renewals inside the window decide churn; the first lost one ends the contract.
        outcomes: list[tuple[date, str]] = []
        churn_day: date | None = None
        k = 1
        while (renewal := _add_years(created_day, k)) < self.anchor:
            ts = _epoch(renewal)
            if ts >= self.start:
                p_loss = 1.0 / (1.0 + math.exp((a.h_at(ts) - 0.43) / 0.055))
                lost = rng.random() < p_loss
                outcomes.append((renewal, "lost" if lost else "won"))
                if lost:
                    churn_day = renewal
                    a.end = ts
                    break
            k += 1
        next_renewal = churn_day or _add_years(created_day, k)

        silent = rng.random() < 0.03 or n % 40 == 17
        deleted = 1 if rng.random() < 0.005 or n % 97 == 50 else 0
        website_roll = rng.random()
        website = (
            f"https://www.{domain}" if website_roll < 0.7 else f"http://{domain}" if website_roll < 0.8
            else domain if website_roll < 0.9 else None
        )
        if rng.random() < 0.004 or n == 9:
            description: str | None = names.long_text(rng)
        elif rng.random() < 0.6:
            description = f"{tier.replace('_', ' ')} customer since {created_day.year}; {names.LOREM[:120]}"
        else:
            description = None
        w.add("accounts", (
            n, name, domain, website,
            None if rng.random() < 0.08 else rng.choice(names.INDUSTRIES),
            None if rng.random() < 0.07 else employees,
            a.arr, tier, a.owner, _iso(created),
            _iso(self._later(rng, max(created, self.now - 120 * DAY), 120 * DAY)),
            next_renewal.isoformat(), description, deleted,
        ))

        self._contacts(w, a, silent)
        if not silent:
            self._activities(w, a)
        self._tickets_and_surveys(w, a)
        self._intent(w, a)
        self._usage(w, a)
        self._invoices(w, a)
        self._deals(w, a, outcomes, next_renewal)
        return {
            "n": n,
            "domain": domain,
            "latent_health": path[-1],
            "churned": churn_day is not None,
            "churn_date": churn_day.isoformat() if churn_day else None,
            "renewal_outcomes": [[d.isoformat(), o] for d, o in outcomes],
            "health_by_month": path,
        }

    def _contacts(self, w: _Writer, a: _Account, silent: bool) -> None:
        rng = a.rng
        if silent and rng.random() < 0.5:
            return
        base = {"smb": 3.5, "mid_market": 6.0, "enterprise": 9.0}[a.tier]
        count = max(1, round(rng.gauss(base, base * 0.4)))
        mean_health = sum(a.path) / len(a.path)
        for i in range(count):
            n = w.take("contacts")
            level = names.weighted_level(rng)
            title, department = rng.choice(names.TITLES_BY_LEVEL[level])
            messy = rng.random() < 0.04 or (a.n % 40 == 11 and i == 0)
            first = rng.choice(names.MESSY_FIRST_NAMES if messy and rng.random() < 0.5 else names.FIRST_NAMES)
            last = rng.choice(names.MESSY_LAST_NAMES) if messy else rng.choice(names.LAST_NAMES)
            local = f"{names.ascii_slug(first)}.{names.ascii_slug(last)}".strip(".") or f"contact{n}"
            if rng.random() < 0.06 or (a.n % 40 == 13 and i == 0):
                email: str | None = f"{local.replace('.', '')}{rng.randint(1, 99)}@{rng.choice(names.PERSONAL_DOMAINS)}"
            elif rng.random() < 0.03:
                email = None
            else:
                email = f"{local}@{a.domain}"
            shown_title: str | None = title
            shown_department: str | None = department
            if rng.random() < 0.08:
                shown_title, shown_department = None, None
            has_left = rng.random() < 0.04 + 0.3 * (1.0 - mean_health)
            joined = a.created if i < 2 else self._later(rng, a.created, self.now - a.created)
            updated = self._later(rng, joined, self.now - joined)
            phone = None if rng.random() < 0.25 else f"+1 {rng.randint(200, 989)} 555 {rng.randint(0, 9999):04d}"
            deleted = 1 if rng.random() < 0.01 else 0
            w.add("contacts", (n, a.n, first, last, email, shown_title, shown_department, phone, int(has_left),
                               _iso(joined), _iso(updated), deleted))
            a.contacts.append(_Contact(n, email, level in names.EXECUTIVE_LEVELS, has_left))
            if rng.random() < 0.04 or (a.n % 40 == 13 and i == 0):
                # The same person entered twice: same name, the email re-typed in another case.
                dup_email = email.capitalize() if email else None
                w.add("contacts", (w.take("contacts"), a.n, first, last, dup_email, None, None, None, int(has_left),
                                   _iso(updated), _iso(updated), 0))

    def _activities(self, w: _Writer, a: _Account) -> None:
        rng = a.rng
        staying = [c for c in a.contacts if not c.has_left] or a.contacts
        executives = [c for c in staying if c.executive]
        rows: list[tuple[Any, ...]] = []
        for m, h in enumerate(a.path):
            month_start = self.start + m * self.bucket
            if month_start + self.bucket <= a.created:
                continue
            churned = month_start >= a.end
            lam = 0.03 if churned else 1.2 * a.scale * (0.15 + 1.7 * h**1.5)
            for _ in range(_poisson(rng, lam)):
                at = self._when(rng, m, a.end, self.now) if churned else self._when(rng, m, a.created, a.end)
                kind_roll = rng.random()
                kind = ("email" if kind_roll < 0.5 else "call" if kind_roll < 0.7
                        else "meeting" if kind_roll < 0.85 else "note")
                direction = None
                if kind in ("email", "call"):
                    direction = "inbound" if rng.random() < 0.08 + 0.55 * h else "outbound"
                people: list[int] = []
                if staying and kind != "note":
                    # Healthy accounts talk to many people; unhealthy ones hang on a single thread.
                    first = rng.choice(staying) if rng.random() < h else staying[0]
                    people.append(first.n)
                    if kind == "meeting" and executives and rng.random() < 0.1 + 0.6 * h:
                        exec_n = rng.choice(executives).n
                        if exec_n not in people:
                            people.append(exec_n)
                subject = rng.choice(_SUBJECTS[kind])
                if rng.random() < 0.0005:
                    body: str | None = names.long_text(rng)
                elif kind in ("email", "note"):
                    body = f"{subject}: {names.LOREM[: rng.randint(30, 120)]}"
                else:
                    body = None
                duration = (float(rng.randint(5, 60)) if kind == "call"
                            else float(rng.choice((30, 45, 60, 90))) if kind == "meeting" else None)
                logged = self._later(rng, at, 3600 if kind != "email" else 1)
                updated = self._later(rng, logged, 20 * DAY) if rng.random() < 0.1 else logged
                owner = a.owner if rng.random() < 0.85 else 1 + rng.randrange(self.users)
                rows.append((at, owner, kind, direction, subject, body, duration, people, logged, updated,
                             1 if rng.random() < 0.01 else 0))
        rows.sort(key=lambda r: r[0])
        for at, owner, kind, direction, subject, body, duration, people, logged, updated, deleted in rows:
            w.add("activities", (w.take("activities"), a.n, owner, kind, direction, _iso(at), subject, body,
                                 duration, _ids(people), _iso(logged), _iso(updated), deleted))

    def _tickets_and_surveys(self, w: _Writer, a: _Account) -> None:
        rng = a.rng
        surveyed = [c.email for c in a.contacts if c.email]  # surveys go out by email
        for m in range(HISTORY_MONTHS):
            month_start = self.start + m * self.bucket
            if month_start + self.bucket <= a.created or month_start >= a.end:
                continue
            h = a.path[m]
            low = 1.0 - h
            for _ in range(_poisson(rng, 0.35 * a.scale * (0.25 + 2.5 * low**2))):
                opened = self._when(rng, m, a.created, a.end)
                roll = rng.random()
                priority = ("urgent" if roll < 0.02 + 0.3 * low**2 else "high" if roll < 0.15 + 0.45 * low
                            else "medium" if roll < 0.65 else "low")
                escalated = rng.random() < 0.02 + 0.5 * low**2
                closed_ts = opened + int(rng.expovariate(1.0 / (1.5 + 12.0 * low)) * DAY) + rng.randrange(3600)
                contact = rng.choice(a.contacts) if a.contacts and rng.random() < 0.9 else None
                if closed_ts < self.now:
                    status, closed_at, updated = "closed", _iso(closed_ts), closed_ts
                else:
                    status, closed_at = rng.choice(("new", "open", "open", "pending")), None
                    updated = self._later(rng, opened, self.now - opened)
                w.add("tickets", (w.take("tickets"), a.n, contact.n if contact else None,
                                  rng.choice(names.TICKET_SUBJECTS), priority, status, int(status == "closed"),
                                  int(escalated), _iso(opened), closed_at, _iso(opened), _iso(updated),
                                  1 if rng.random() < 0.01 else 0))
                if status == "closed" and contact and contact.email and rng.random() < 0.3:
                    score = float(round(1 + 4 * _clip(h + rng.gauss(0.0, 0.2))))
                    self._survey(w, rng, ("csat", score, None), self._later(rng, closed_ts, 2 * DAY), contact.email)
            if surveyed and rng.random() < 0.22:
                email = rng.choice(surveyed)
                score = float(round(_clip(10 * h + rng.gauss(0.0, 1.6), 0.0, 10.0)))
                comments = (names.NPS_COMMENTS_LOW if score <= 6 else names.NPS_COMMENTS_MID if score <= 8
                            else names.NPS_COMMENTS_HIGH)
                self._survey(w, rng, ("nps", score, rng.choice(comments) or None),
                             self._when(rng, m, a.created, a.end), email)
            if rng.random() < 0.012:
                # Someone the CRM does not know answers the survey (a forwarded link, a personal address).
                stranger = f"respondent{rng.randint(1, 10**6)}@{rng.choice(names.PERSONAL_DOMAINS)}"
                self._survey(w, rng, ("nps", float(rng.randint(0, 10)), None),
                             self._when(rng, m, a.created, a.end), stranger)

    def _survey(self, w: _Writer, rng: random.Random, answer: tuple[str, float, str | None], responded: int,
                email: str) -> None:
        kind, score, comment = answer
        updated = self._later(rng, responded, 3 * DAY) if rng.random() < 0.2 else responded
        w.add("survey_responses", (w.take("survey_responses"), kind, score, comment, _iso(responded), email,
                                   _iso(responded), _iso(updated)))

    def _intent(self, w: _Writer, a: _Account) -> None:
        rng, domain = a.rng, a.domain
        for m, h in enumerate(a.path):
            if rng.random() >= 0.35:
                continue
            roll = rng.random()
            spelled = (domain if roll < 0.8 else f"www.{domain}" if roll < 0.88
                       else f"{rng.choice(('eu.', 'app.', 'mail.'))}{domain}" if roll < 0.95 else domain.upper())
            active = self.start + m * self.bucket < a.end
            if active and rng.random() < h:
                topic, score = rng.choice(names.EXPANSION_TOPICS), 25 + 65 * h + rng.gauss(0.0, 12.0)
            elif rng.random() < 0.5:
                topic, score = rng.choice(names.RISK_TOPICS), 25 + 65 * (1.0 - h) + rng.gauss(0.0, 12.0)
            else:
                topic, score = rng.choice(names.OTHER_TOPICS), rng.uniform(5, 80)
            observed = self._when(rng, m, 0)
            w.add("intent_signals", (w.take("intent_signals"), spelled, topic, round(_clip(score, 0, 100), 1),
                                     _iso(observed), _iso(self._later(rng, observed, 6 * 3600))))
            if rng.random() < 0.05:
                prospect = f"prospect{rng.randint(1, 10**6)}.com"
                observed = self._when(rng, m, 0)
                w.add("intent_signals", (w.take("intent_signals"), prospect, rng.choice(names.OTHER_TOPICS),
                                         round(rng.uniform(5, 95), 1), _iso(observed), _iso(observed)))

    def _usage(self, w: _Writer, a: _Account) -> None:
        rng = a.rng
        for month, month_ts, next_month_ts in self.usage_months:
            if next_month_ts <= a.created or month_ts >= a.end:
                continue
            h = a.h_at(month_ts + 15 * DAY)
            active = round(a.seats * _clip(0.12 + 0.8 * h + rng.gauss(0.0, 0.13)))
            adoption = round(_clip(0.05 + 0.8 * h + rng.gauss(0.0, 0.08)), 3)
            w.add("usage", (w.take("usage"), a.n, a.domain, month.isoformat(), active, a.seats, adoption))

    def _invoices(self, w: _Writer, a: _Account) -> None:
        rng = a.rng
        created_day = datetime.fromtimestamp(a.created, UTC).date()
        quarter = 0
        while (issued := _add_months(created_day, 3 * quarter)) < self.anchor:
            quarter += 1
            issued_ts = _epoch(issued)
            if issued_ts < self.start or issued_ts >= a.end:
                continue
            h = a.h_at(issued_ts)
            due = issued + timedelta(days=30)
            failed = 0
            if rng.random() < 0.01:
                paid, status = None, "void"
            else:
                late = rng.random() < 0.04 + 0.6 * (1.0 - h) ** 2
                if late:
                    failed = rng.randint(1, 3) if rng.random() < 0.5 else 0
                    paid_day = due + timedelta(days=rng.randint(5, 90))
                else:
                    paid_day = issued + timedelta(days=rng.randint(0, 28))
                if paid_day < self.anchor:
                    paid, status = paid_day.isoformat(), "paid"
                else:
                    paid, status = None, "failed" if failed else "open"
            w.add("invoices", (w.take("invoices"), a.n, round(a.arr / 4, 2), issued.isoformat(), due.isoformat(),
                               paid, status, failed))

    def _deals(self, w: _Writer, a: _Account, outcomes: list[tuple[date, str]], next_renewal: date) -> None:
        rng = a.rng

        def add(title: str, kind: str, stage: str, close: date, amount: float, *, opened: int) -> None:
            closed = stage.startswith("Closed")
            close_ts = min(_epoch(close) + 17 * 3600, self.now - 1)
            updated = close_ts if closed else self._later(rng, opened, self.now - opened)
            people = rng.sample(a.contacts, min(len(a.contacts), rng.randint(1, 3))) if a.contacts else []
            w.add("deals", (w.take("deals"), a.n, title, kind, stage, int(closed), int(stage == "Closed Won"),
                            close.isoformat(), round(amount, 2), _ids([c.n for c in people]), _iso(opened),
                            _iso(max(updated, opened)), 1 if rng.random() < 0.01 else 0))

        created_day = datetime.fromtimestamp(a.created, UTC).date()
        add(f"{a.name} - New Business", "new_business", "Closed Won", created_day, a.arr, opened=a.created - 60 * DAY)
        for renewal, outcome in outcomes:
            add(f"{a.name} - Renewal {renewal.year}", "renewal", "Closed Won" if outcome == "won" else "Closed Lost",
                renewal, a.arr, opened=_epoch(renewal) - 120 * DAY)
        if a.end == self.now:
            days_left = (next_renewal - self.anchor).days
            stage = ("Prospecting" if days_left > 90 else "Qualification" if days_left > 45
                     else "Proposal" if days_left > 20 else "Negotiation")
            opened = max(a.created, min(_epoch(next_renewal) - 120 * DAY, self.now - DAY - rng.randrange(30 * DAY)))
            add(f"{a.name} - Renewal {next_renewal.year}", "renewal", stage, next_renewal, a.arr, opened=opened)
        for m, h in enumerate(a.path):
            month_start = self.start + m * self.bucket
            if month_start < a.created or month_start >= a.end or h < 0.6 or rng.random() >= 0.06 * h:
                continue
            opened = self._when(rng, m, a.created, a.end)
            close = datetime.fromtimestamp(opened + rng.randint(30, 90) * DAY, UTC).date()
            if close < self.anchor:
                stage = "Closed Won" if rng.random() < 0.4 + 0.5 * h else "Closed Lost"
            else:
                stage = rng.choice(("Proposal", "Negotiation"))
            add(f"{a.name} - Expansion {close.isoformat()[:7]}", "expansion", stage, close,
                a.arr * rng.uniform(0.1, 0.5), opened=opened)


_SUBJECTS = {
    "email": names.EMAIL_SUBJECTS,
    "call": names.CALL_SUBJECTS,
    "meeting": names.MEETING_SUBJECTS,
    "note": names.NOTE_SUBJECTS,
}


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m sandbox.book", description=__doc__)
    parser.add_argument("--accounts", type=int, default=300)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--anchor", type=date.fromisoformat, default=None, help="the book's today, YYYY-MM-DD")
    parser.add_argument("--cache-dir", type=Path, default=None)
    parser.add_argument("--describe", action="store_true", help="print the book's figures as JSON")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    book = build_book(args.accounts, args.seed, args.anchor, args.cache_dir)
    elapsed = time.perf_counter() - started
    print(f"book: {book.path} ({book.path.stat().st_size / 1e6:.1f} MB, {elapsed:.1f} s)")
    if args.describe:
        print(json.dumps(describe(book), indent=2))


if __name__ == "__main__":
    main()
