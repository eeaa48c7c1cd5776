"""The book generator: its contract with the emulators, determinism, realistic mess, and health-driven signals."""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest

from sandbox import book as book_module
from sandbox.book import Book, build_book, describe

ANCHOR = date(2026, 11, 1)
ANCHOR_TS = "2026-11-01T00:00:00Z"

CONTRACT_COLUMNS = {
    "accounts": ["n", "name", "domain", "website", "industry", "employees", "arr", "tier", "owner_n", "created_at",
                 "updated_at", "renewal_date", "description", "is_deleted"],
    "users": ["n", "first_name", "last_name", "email", "title", "is_active", "created_at", "updated_at"],
    "contacts": ["n", "account_n", "first_name", "last_name", "email", "title", "department", "phone", "has_left",
                 "created_at", "updated_at", "is_deleted"],
    "activities": ["n", "account_n", "owner_n", "kind", "direction", "occurred_at", "subject", "body",
                   "duration_minutes", "contact_ns", "created_at", "updated_at", "is_deleted"],
    "deals": ["n", "account_n", "name", "kind", "stage", "is_closed", "is_won", "close_date", "amount", "contact_ns",
              "created_at", "updated_at", "is_deleted"],
    "tickets": ["n", "account_n", "contact_n", "subject", "priority", "status", "is_closed", "is_escalated",
                "opened_at", "closed_at", "created_at", "updated_at", "is_deleted"],
    "survey_responses": ["n", "kind", "score", "comment", "responded_at", "email", "created_at", "updated_at"],
    "intent_signals": ["n", "domain", "topic", "score", "observed_at", "updated_at"],
    "usage": ["n", "account_n", "account_domain", "period_start", "active_users", "licensed_seats",
              "feature_adoption"],
    "invoices": ["n", "account_n", "amount", "issued_at", "due_date", "paid_at", "status", "failed_payments"],
}
TIMESTAMP_COLUMNS = {
    "accounts": ["created_at", "updated_at"],
    "users": ["created_at", "updated_at"],
    "contacts": ["created_at", "updated_at"],
    "activities": ["occurred_at", "created_at", "updated_at"],
    "deals": ["created_at", "updated_at"],
    "tickets": ["opened_at", "closed_at", "created_at", "updated_at"],
    "survey_responses": ["responded_at", "created_at", "updated_at"],
    "intent_signals": ["observed_at", "updated_at"],
}


@pytest.fixture(scope="module")
def book300(tmp_path_factory: pytest.TempPathFactory) -> Book:
    return build_book(300, 7, ANCHOR, tmp_path_factory.mktemp("book300"))


@pytest.fixture
def db(book300: Book) -> Iterator[sqlite3.Connection]:
    conn = book300.connect()
    yield conn
    conn.close()


def _one(conn: sqlite3.Connection, sql: str, params: tuple[object, ...] = ()) -> int:
    return int(conn.execute(sql, params).fetchone()[0])


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_same_inputs_give_byte_identical_database_and_truth(tmp_path: Path) -> None:
    first = build_book(120, 11, ANCHOR, tmp_path / "a")
    second = build_book(120, 11, ANCHOR, tmp_path / "b")
    assert _digest(first.path) == _digest(second.path)
    assert _digest(first.truth_path) == _digest(second.truth_path)


def test_another_seed_gives_another_book(tmp_path: Path) -> None:
    first = build_book(50, 1, ANCHOR, tmp_path)
    second = build_book(50, 2, ANCHOR, tmp_path)
    assert first.path != second.path
    assert _digest(first.path) != _digest(second.path)


def test_cache_dir_reuses_the_book_built_from_the_same_inputs(tmp_path: Path) -> None:
    first = build_book(20, 3, ANCHOR, tmp_path)
    stamp = first.path.stat().st_mtime_ns
    second = build_book(20, 3, ANCHOR, tmp_path)
    assert second == first
    assert second.path.stat().st_mtime_ns == stamp
    assert f"v{book_module.GENERATOR_VERSION}" in first.path.name


def test_tables_have_exactly_the_contract_columns(db: sqlite3.Connection) -> None:
    tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
    assert tables == sorted(CONTRACT_COLUMNS)
    for table, columns in CONTRACT_COLUMNS.items():
        assert [r[1] for r in db.execute(f"PRAGMA table_info({table})")] == columns, table


def test_every_n_column_and_updated_at_is_indexed(db: sqlite3.Connection) -> None:
    for table, columns in CONTRACT_COLUMNS.items():
        indexed = {
            db.execute(f"PRAGMA index_info({ix[1]})").fetchone()[2] for ix in db.execute(f"PRAGMA index_list({table})")
        }
        wanted = {c for c in columns if c.endswith("_n") or c == "updated_at"}
        assert wanted <= indexed, (table, wanted - indexed)


def test_connection_is_read_only(db: sqlite3.Connection) -> None:
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        db.execute("UPDATE accounts SET name = 'x' WHERE n = 1")


def test_every_timestamp_is_iso_utc_and_before_the_anchor(db: sqlite3.Connection) -> None:
    pattern = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
    for table, columns in TIMESTAMP_COLUMNS.items():
        for column in columns:
            values = [r[0] for r in db.execute(f"SELECT {column} FROM {table} WHERE {column} IS NOT NULL")]
            assert values, (table, column)
            assert all(pattern.match(v) for v in values), (table, column)
            assert max(values) < ANCHOR_TS, (table, column)
    assert _one(db, "SELECT COUNT(*) FROM activities WHERE updated_at < created_at") == 0
    assert _one(db, "SELECT COUNT(*) FROM tickets WHERE closed_at < opened_at") == 0


def test_figures_match_the_brief(book300: Book, db: sqlite3.Connection) -> None:
    figures = describe(book300)
    assert figures["records"]["accounts"] == 300
    assert figures["records"]["users"] == 12  # one owner per 25 accounts
    assert 0.12 <= figures["churn_share"] <= 0.22
    assert 15 <= figures["activities_per_account"] <= 25
    assert 4.0 <= figures["records"]["contacts"] / 300 <= 6.5
    assert figures["churned_accounts"] == figures["renewals"]["lost"]
    assert figures["latent_health"]["p10"] < figures["latent_health"]["p50"] < figures["latent_health"]["p90"]
    assert _one(db, "SELECT COUNT(DISTINCT owner_n) FROM accounts") <= 12
    assert _one(db, "SELECT MIN(tier IN ('enterprise', 'mid_market', 'smb')) FROM accounts") == 1
    assert _one(db, "SELECT COUNT(*) FROM activities WHERE kind NOT IN ('email', 'call', 'meeting', 'note')") == 0
    assert _one(db, "SELECT COUNT(*) FROM activities WHERE direction IS NOT NULL AND kind IN ('meeting', 'note')") == 0


def test_small_book_still_has_at_least_three_owners(tmp_path: Path) -> None:
    small = build_book(10, 7, ANCHOR, tmp_path)
    assert describe(small)["records"]["users"] == 3


def test_book_holds_the_mess_real_crms_hold(db: sqlite3.Connection) -> None:
    names = [r[0] for r in db.execute("SELECT last_name FROM contacts UNION ALL SELECT name FROM accounts")]
    assert any("'" in n for n in names)
    assert any("\\" in n for n in names)
    assert any(re.search(r"[\u3040-\u30ff\u4e00-\u9fff\u0400-\u04ff]", n) for n in names)
    assert any("ü" in n or "ö" in n for n in names)
    assert _one(db, "SELECT COUNT(*) FROM contacts WHERE email LIKE '%@gmail.com' OR email LIKE '%@yahoo.com' "
                    "OR email LIKE '%@hotmail.com' OR email LIKE '%@outlook.com' OR email LIKE '%@icloud.com' "
                    "OR email LIKE '%@gmx.de' OR email LIKE '%@proton.me'") > 0
    duplicates = _one(db, "SELECT COUNT(*) FROM (SELECT account_n, lower(email) FROM contacts WHERE email IS NOT NULL "
                          "GROUP BY 1, 2 HAVING COUNT(*) > 1)")
    assert duplicates > 0
    for table in ("accounts", "contacts", "activities", "deals", "tickets"):
        assert _one(db, f"SELECT COUNT(*) FROM {table} WHERE is_deleted = 1") > 0, table
    assert _one(db, "SELECT COUNT(*) FROM accounts a WHERE NOT EXISTS "
                    "(SELECT 1 FROM activities t WHERE t.account_n = a.n)") > 0
    assert _one(db, "SELECT COUNT(*) FROM accounts WHERE industry IS NULL") > 0
    assert _one(db, "SELECT COUNT(*) FROM accounts WHERE employees IS NULL") > 0
    assert _one(db, "SELECT COUNT(*) FROM contacts WHERE title IS NULL") > 0
    assert _one(db, "SELECT COUNT(*) FROM accounts WHERE length(description) >= 10000") > 0
    assert _one(db, "SELECT COUNT(*) FROM intent_signals WHERE domain LIKE 'www.%'") > 0
    assert _one(db, "SELECT COUNT(*) FROM intent_signals WHERE domain <> lower(domain)") > 0
    assert _one(db, "SELECT COUNT(*) FROM survey_responses s WHERE NOT EXISTS "
                    "(SELECT 1 FROM contacts c WHERE c.email = s.email)") > 0


def test_titles_spread_over_every_seniority(db: sqlite3.Connection) -> None:
    titles = {r[0] for r in db.execute("SELECT DISTINCT title FROM contacts WHERE title IS NOT NULL")}
    for sample in ("CEO", "VP Sales", "Director of IT", "IT Manager", "Software Engineer"):
        assert sample in titles


def test_truth_file_has_every_account_and_no_served_table_holds_it(book300: Book, db: sqlite3.Connection) -> None:
    truth = book300.truth()
    assert sorted(truth) == list(range(1, 301))
    assert all(0.0 <= t.latent_health <= 1.0 for t in truth.values())
    assert all(len(t.health_by_month) == 18 and t.health_by_month[-1] == t.latent_health for t in truth.values())
    for table in CONTRACT_COLUMNS:
        columns = " ".join(r[1] for r in db.execute(f"PRAGMA table_info({table})"))
        assert "health" not in columns and "churn" not in columns
    for t in truth.values():
        assert t.churned == (t.churn_date is not None)
        if t.churned:
            assert t.renewal_outcomes[-1] == (t.churn_date, "lost")
        assert all(outcome == "won" for _, outcome in t.renewal_outcomes[:-1])
    payload = json.loads(book300.truth_path.read_text())
    assert payload["generator_version"] == book_module.GENERATOR_VERSION


def test_renewal_deals_record_each_true_outcome(book300: Book, db: sqlite3.Connection) -> None:
    truth = book300.truth()
    lost = sum(1 for t in truth.values() for _, o in t.renewal_outcomes if o == "lost")
    won = sum(1 for t in truth.values() for _, o in t.renewal_outcomes if o == "won")
    assert _one(db, "SELECT COUNT(*) FROM deals WHERE kind = 'renewal' AND stage = 'Closed Lost'") == lost
    assert _one(db, "SELECT COUNT(*) FROM deals WHERE kind = 'renewal' AND stage = 'Closed Won' AND is_won = 1") == won
    still_customers = sum(1 for t in truth.values() if not t.churned)
    assert _one(db, "SELECT COUNT(*) FROM deals WHERE kind = 'renewal' AND is_closed = 0") == still_customers
    for n, renewal_date in db.execute("SELECT n, renewal_date FROM accounts"):
        churn_date = truth[n].churn_date
        assert renewal_date == (churn_date.isoformat() if churn_date else renewal_date)
        assert churn_date is not None or renewal_date >= ANCHOR.isoformat()


def test_churned_accounts_go_quiet_after_churn(book300: Book, db: sqlite3.Connection) -> None:
    churned = [(t.n, t.churn_date.isoformat()) for t in book300.truth().values() if t.churn_date]
    assert churned

    def total(sql: str) -> int:
        return sum(_one(db, sql, pair) for pair in churned)

    before = total("SELECT COUNT(*) FROM activities WHERE account_n = ? AND occurred_at < ?")
    after = total("SELECT COUNT(*) FROM activities WHERE account_n = ? AND occurred_at >= ?")
    assert after <= 0.05 * before
    assert total("SELECT COUNT(*) FROM usage WHERE account_n = ? AND period_start >= ?") == 0
    assert total("SELECT COUNT(*) FROM tickets WHERE account_n = ? AND opened_at >= ?") == 0


def _auc(positive: list[float], negative: list[float]) -> float:
    """The probability that a random positive scores above a random negative (ties count half)."""
    wins = sum((p > n) + 0.5 * (p == n) for p in positive for n in negative)
    return wins / (len(positive) * len(negative))


def test_signals_before_a_renewal_predict_its_outcome(tmp_path: Path) -> None:
    """A crude scorecard on the 120..30 days before each renewal separates lost from won renewals (AUC >= 0.8)."""
    big = build_book(800, 5, ANCHOR, tmp_path)
    conn = big.connect()
    risk_lost: list[float] = []
    risk_won: list[float] = []
    nps_lost: list[float] = []
    nps_won: list[float] = []
    for t in big.truth().values():
        for when, outcome in t.renewal_outcomes:
            lo = date.fromordinal(when.toordinal() - 120).isoformat()
            hi = date.fromordinal(when.toordinal() - 30).isoformat()
            acts = _one(conn, "SELECT COUNT(*) FROM activities WHERE account_n = ? AND occurred_at >= ? "
                              "AND occurred_at < ?", (t.n, lo, hi))
            tickets = _one(conn, "SELECT COUNT(*) FROM tickets WHERE account_n = ? AND opened_at >= ? "
                                 "AND opened_at < ?", (t.n, lo, hi))
            usage = conn.execute("SELECT AVG(1.0 * active_users / licensed_seats) FROM usage WHERE account_n = ? "
                                 "AND period_start >= ? AND period_start < ?", (t.n, lo, hi)).fetchone()[0]
            nps = conn.execute("SELECT AVG(s.score) FROM survey_responses s JOIN contacts c ON c.email = s.email "
                               "WHERE c.account_n = ? AND s.kind = 'nps' AND s.responded_at < ?",
                               (t.n, hi)).fetchone()[0]
            risk = -acts / 4 + tickets - 4 * (usage if usage is not None else 0.5)
            (risk_lost if outcome == "lost" else risk_won).append(risk)
            if nps is not None:
                (nps_lost if outcome == "lost" else nps_won).append(nps)
    conn.close()
    assert len(risk_lost) >= 40
    assert _auc(risk_lost, risk_won) >= 0.8
    assert sum(nps_lost) / len(nps_lost) < sum(nps_won) / len(nps_won) - 1.0


def test_describe_cli_prints_the_figures(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    book_module.main(["--accounts", "15", "--seed", "3", "--anchor", "2026-11-01", "--cache-dir", str(tmp_path),
                      "--describe"])
    out = capsys.readouterr().out
    figures = json.loads(out[out.index("{"):])
    assert figures["accounts"] == 15
    assert figures["records"]["accounts"] == 15
    assert set(figures["latent_health"]) == {"mean", "p10", "p25", "p50", "p75", "p90"}
