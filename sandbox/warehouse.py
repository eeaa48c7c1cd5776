"""The book's product usage and billing, exported the way a data warehouse would hold them: a SQLite
"warehouse" database plus the same tables as CSV files, for the usage and billing connectors.

``product_usage(account_id, domain, month, mau, seats, adoption)``: one row per account and month
(``month`` = ``YYYY-MM-01``, ``mau`` monthly active users, ``seats`` licensed seats, ``adoption`` 0-1).
``billing_invoices(invoice_id, account_id, amount, issued_on, due_on, paid_on, status, failed_attempts)``:
``status`` in paid|open|failed|void, ``paid_on`` empty while unpaid. ``account_id`` is the book's account
index as text (the same index the CRM ids derive from).
"""

from __future__ import annotations

import csv
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from sandbox.book import Book

USAGE_COLUMNS = ("account_id", "domain", "month", "mau", "seats", "adoption")
BILLING_COLUMNS = (
    "invoice_id", "account_id", "amount", "issued_on", "due_on", "paid_on", "status", "failed_attempts",
)
_SELECTS = {
    "product_usage": (
        "SELECT CAST(account_n AS TEXT), account_domain, period_start, active_users, licensed_seats, feature_adoption "
        "FROM book.usage ORDER BY n",
        USAGE_COLUMNS,
        "account_id TEXT NOT NULL, domain TEXT, month TEXT NOT NULL, mau INTEGER NOT NULL, seats INTEGER NOT NULL, "
        "adoption REAL NOT NULL, PRIMARY KEY (account_id, month)",
    ),
    "billing_invoices": (
        "SELECT CAST(n AS TEXT), CAST(account_n AS TEXT), amount, issued_at, due_date, paid_at, status, "
        "failed_payments FROM book.invoices ORDER BY n",
        BILLING_COLUMNS,
        "invoice_id TEXT PRIMARY KEY, account_id TEXT NOT NULL, amount REAL NOT NULL, issued_on TEXT NOT NULL, "
        "due_on TEXT NOT NULL, paid_on TEXT, status TEXT NOT NULL, failed_attempts INTEGER NOT NULL",
    ),
}


@dataclass(frozen=True)
class WarehouseFiles:
    sqlite_path: Path
    usage_csv: Path
    billing_csv: Path

    @property
    def sqlite_url(self) -> str:
        """A SQLAlchemy URL for the warehouse database."""
        return f"sqlite:///{self.sqlite_path.resolve()}"


def export_warehouse(book: Book, directory: Path) -> WarehouseFiles:
    """Write ``warehouse.db``, ``product_usage.csv`` and ``billing_invoices.csv`` into ``directory`` (replacing)."""
    directory.mkdir(parents=True, exist_ok=True)
    files = WarehouseFiles(
        sqlite_path=directory / "warehouse.db",
        usage_csv=directory / "product_usage.csv",
        billing_csv=directory / "billing_invoices.csv",
    )
    files.sqlite_path.unlink(missing_ok=True)
    conn = sqlite3.connect(files.sqlite_path.resolve().as_uri(), uri=True)  # uri: ATTACH a read-only book
    try:
        conn.execute("ATTACH DATABASE ? AS book", (f"{book.path.resolve().as_uri()}?mode=ro",))
        for (table, (select, columns, ddl)), csv_path in zip(
            _SELECTS.items(), (files.usage_csv, files.billing_csv), strict=True
        ):
            conn.execute(f"CREATE TABLE {table} ({ddl})")
            conn.execute(f"INSERT INTO {table} {select}")
            with csv_path.open("w", newline="", encoding="utf-8") as handle:
                writer = csv.writer(handle)
                writer.writerow(columns)
                writer.writerows(conn.execute(f"SELECT * FROM {table} ORDER BY rowid"))
        conn.commit()
        conn.execute("DETACH DATABASE book")
    finally:
        conn.close()
    return files
