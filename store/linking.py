"""Matching survey, intent, usage and invoice rows to accounts, set-based, into ``account_links``.

- Survey responses: by the respondent's email to a contact (then the contact's account, same source),
  else by the email's domain to an account domain (personal mail domains never match). Unmatched
  responses stay in their table and are counted, never dropped.
- Intent signals: by normalized domain, the account's main and extra domains, subdomains included
  (``eu.app.acme.com`` matches ``acme.com``).
- Usage and invoices: by account external id (any CRM), else by account domain.

Every run rebuilds the links in one transaction with a handful of INSERT ... SELECT statements.
"""

from __future__ import annotations

from sqlalchemy import Connection, Engine, text

from core.domains import PERSONAL_EMAIL_DOMAINS


def _email_domain_sql(conn: Connection, column: str) -> str:
    if conn.dialect.name == "postgresql":
        return f"split_part({column}, '@', 2)"
    return f"substr({column}, instr({column}, '@') + 1)"


def _insert(conn: Connection, entity: str, select_sql: str, method: str) -> int:
    """Insert links from ``select_sql`` (record_id, account_id) for records not linked yet."""
    sql = (
        "INSERT INTO account_links (entity, record_id, account_id, method) "
        f"SELECT DISTINCT :entity, m.record_id, m.account_id, :method FROM ({select_sql}) m "
        "WHERE NOT EXISTS (SELECT 1 FROM account_links l WHERE l.entity = :entity AND l.record_id = m.record_id)"
    )
    result = conn.execute(text(sql), {"entity": entity, "method": method})
    return int(result.rowcount or 0)


def _count(conn: Connection, sql: str, **params: object) -> int:
    return int(conn.execute(text(sql), params).scalar_one())


def link_accounts(engine: Engine) -> dict[str, int]:
    """Rebuild ``account_links``; returns linked and unmatched counts per entity (e.g. ``survey_responses``,
    ``survey_responses_unmatched``)."""
    personal = ", ".join(f"'{d}'" for d in sorted(PERSONAL_EMAIL_DOMAINS))
    counts: dict[str, int] = {}
    with engine.begin() as conn:
        false = "false" if conn.dialect.name == "postgresql" else "0"
        live = f"a.is_deleted = {false}"
        conn.execute(text("DELETE FROM account_links WHERE entity IN "
                          "('survey_responses', 'intent_signals', 'usage_metrics', 'invoices')"))
        email_domain = _email_domain_sql(conn, "s.email")
        _insert(conn, "survey_responses", (
            "SELECT s.id AS record_id, a.id AS account_id FROM survey_responses s "
            "JOIN contacts c ON c.email = s.email AND c.is_deleted = " + false + " "
            "JOIN accounts a ON a.source = c.source AND a.external_id = c.account_external_id AND " + live + " "
            "WHERE s.is_deleted = " + false
        ), "email")
        _insert(conn, "survey_responses", (
            "SELECT s.id AS record_id, d.account_id FROM survey_responses s "
            f"JOIN account_domains d ON d.domain = {email_domain} "
            "JOIN accounts a ON a.id = d.account_id AND " + live + " "
            f"WHERE s.is_deleted = {false} AND s.email LIKE '%@%' AND {email_domain} NOT IN ({personal})"
        ), "domain")
        _insert(conn, "intent_signals", (
            "SELECT i.id AS record_id, d.account_id FROM intent_signals i "
            "JOIN account_domains d ON (i.domain = d.domain OR i.domain LIKE '%.' || d.domain) "
            "JOIN accounts a ON a.id = d.account_id AND " + live + " WHERE i.is_deleted = " + false
        ), "domain")
        for entity in ("usage_metrics", "invoices"):
            _insert(conn, entity, (
                f"SELECT r.id AS record_id, a.id AS account_id FROM {entity} r "
                "JOIN accounts a ON a.external_id = r.account_external_id AND " + live + " "
                f"WHERE r.is_deleted = {false}"
            ), "external_id")
            _insert(conn, entity, (
                f"SELECT r.id AS record_id, d.account_id FROM {entity} r "
                "JOIN account_domains d ON d.domain = r.account_domain "
                "JOIN accounts a ON a.id = d.account_id AND " + live + " "
                f"WHERE r.is_deleted = {false}"
            ), "domain")
        for entity in ("survey_responses", "intent_signals", "usage_metrics", "invoices"):
            total = _count(conn, f"SELECT COUNT(*) FROM {entity} WHERE is_deleted = {false}")
            linked = _count(conn, "SELECT COUNT(DISTINCT record_id) FROM account_links WHERE entity = :e", e=entity)
            counts[entity] = linked
            counts[f"{entity}_unmatched"] = total - linked
    return counts
