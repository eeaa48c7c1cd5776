"""SOQL subset: the parser on its own, then queries against the emulated org checked against the book."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sandbox.faults import FaultState
from sandbox.http import SandboxRequest, SandboxTokens
from sandbox.ids import salesforce_id
from sandbox.runtime import Sandbox
from sandbox.salesforce import SalesforceApp
from sandbox.salesforce.soql import And, Comparison, Not, Or, SoqlError, parse
from sandbox.salesforce.values import id_sql
from tests.sandbox.sf_helpers import sf_app, sf_sandbox, sf_session

__all__ = ["sf_app", "sf_sandbox", "sf_session"]


def run(app: SalesforceApp, soql: str, *, all_rows: bool = False) -> tuple[int, Any]:
    resource = "queryAll" if all_rows else "query"
    headers = {"authorization": f"Bearer {SandboxTokens().salesforce_access_token}"}
    response = app.handle(SandboxRequest("GET", f"/services/data/v59.0/{resource}/?q={quote(soql)}", headers))
    return response.status, json.loads(response.body)


def ok(app: SalesforceApp, soql: str, *, all_rows: bool = False) -> list[dict[str, Any]]:
    status, body = run(app, soql, all_rows=all_rows)
    assert status == 200, body
    assert body["done"] is True
    records: list[dict[str, Any]] = body["records"]
    assert body["totalSize"] == len(records)
    return records


def book_count(sandbox: Sandbox, sql: str, *params: Any) -> int:
    conn: sqlite3.Connection = sandbox.book.connect()
    try:
        return int(conn.execute(sql, params).fetchone()[0])
    finally:
        conn.close()


# -- parser ----------------------------------------------------------------------------------------------------


def test_escaped_quote_and_backslash_become_one_literal_value() -> None:
    query = parse(r"SELECT Id FROM Contact WHERE LastName = 'O\'Brien\\'")
    assert isinstance(query.where, Comparison)
    assert query.where.values[0].value == "O'Brien\\"


def test_injection_attempt_is_read_as_a_single_string_literal() -> None:
    query = parse(r"SELECT Id FROM Account WHERE Name = 'x\' OR Name != \''")
    assert isinstance(query.where, Comparison)
    assert query.where.op == "="
    assert query.where.values[0].value == "x' OR Name != '"


def test_like_pattern_keeps_escaped_wildcards_literal() -> None:
    query = parse(r"SELECT Id FROM Account WHERE Name LIKE '50\%\_off%' AND Description = 'a\nb\tc\"'")
    assert isinstance(query.where, And)
    like, plain = query.where.items
    assert isinstance(like, Comparison) and isinstance(plain, Comparison)
    assert like.values[0].value == "50%_off%"
    assert like.values[0].like == r"50\%\_off%"
    assert plain.values[0].value == 'a\nb\tc"'


def test_not_binds_tighter_than_and_which_binds_tighter_than_or() -> None:
    query = parse("SELECT Id FROM Account WHERE Name = 'a' OR Name = 'b' AND NOT Name = 'c'")
    assert isinstance(query.where, Or)
    first, second = query.where.items
    assert isinstance(first, Comparison) and first.values[0].value == "a"
    assert isinstance(second, And)
    assert isinstance(second.items[1], Not)


def test_parentheses_override_precedence() -> None:
    query = parse("SELECT Id FROM Account WHERE (Name = 'a' OR Name = 'b') AND Type = 'c'")
    assert isinstance(query.where, And)
    assert isinstance(query.where.items[0], Or)


def test_datetime_literals_with_offsets_and_millis_normalise_to_utc() -> None:
    query = parse(
        "SELECT Id FROM Task WHERE SystemModstamp >= 2026-01-05T12:00:00.000+02:00 AND CreatedDate < 2026-01-05T10:00:00Z"
        " AND ActivityDate = 2026-01-05"
    )
    assert isinstance(query.where, And)
    values = [c.values[0].value for c in query.where.items if isinstance(c, Comparison)]
    assert values == [datetime(2026, 1, 5, 10, tzinfo=UTC), datetime(2026, 1, 5, 10, tzinfo=UTC), date(2026, 1, 5)]


def test_select_list_order_limit_offset_and_in_lists_parse() -> None:
    query = parse(
        "select Id, Owner.Email, Account.Owner.Name from Opportunity where StageName not in ('Closed Lost', null) "
        "order by CloseDate desc nulls last, Name limit 10 offset 5"
    )
    assert [str(p) for p in query.fields] == ["Id", "Owner.Email", "Account.Owner.Name"]
    assert isinstance(query.where, Comparison) and query.where.op == "NOT IN"
    assert [v.kind for v in query.where.values] == ["string", "null"]
    assert [(str(o.path), o.descending, o.nulls_last) for o in query.order_by] == [
        ("CloseDate", True, True),
        ("Name", False, None),
    ]
    assert (query.limit, query.offset) == (10, 5)


@pytest.mark.parametrize(
    "soql",
    [
        "SELECT Id Account",
        "SELECT Id FROM Account WHERE",
        "SELECT Id FROM Account WHERE Name = 'open",
        r"SELECT Id FROM Account WHERE Name = 'bad \q escape'",
        "SELECT Id FROM Account GROUP BY Name",
        "SELECT Id FROM Account LIMIT ten",
        "SELECT Id FROM Account WHERE Name = 'a' extra",
        "SELECT FROM Account",
    ],
)
def test_malformed_queries_are_refused_with_malformed_query(soql: str) -> None:
    with pytest.raises(SoqlError) as caught:
        parse(soql)
    assert caught.value.code == "MALFORMED_QUERY"


# -- against the org -------------------------------------------------------------------------------------------


def test_escaped_literal_finds_the_contact_named_with_apostrophe_and_backslash(
    sf_app: SalesforceApp, sf_sandbox: Sandbox
) -> None:
    expected = book_count(
        sf_sandbox, "SELECT COUNT(*) FROM contacts WHERE last_name = ? AND is_deleted = 0", "O'Brien\\"
    )
    records = ok(sf_app, r"SELECT Id, LastName FROM Contact WHERE LastName = 'O\'Brien\\'")
    assert expected >= 1
    assert len(records) == expected
    assert {r["LastName"] for r in records} == {"O'Brien\\"}


def test_injection_literal_matches_no_account(sf_app: SalesforceApp) -> None:
    assert ok(sf_app, r"SELECT Id FROM Account WHERE Name = '\' OR Name != \''") == []


def test_like_is_case_insensitive_and_an_escaped_percent_is_literal(sf_app: SalesforceApp, sf_sandbox: Sandbox) -> None:
    expected = book_count(sf_sandbox, "SELECT COUNT(*) FROM accounts WHERE name LIKE 'o''brien%' AND is_deleted = 0")
    assert expected >= 1
    assert len(ok(sf_app, r"SELECT Id FROM Account WHERE Name LIKE 'o\'BRIEN%'")) == expected
    assert ok(sf_app, r"SELECT Id FROM Account WHERE Name LIKE 'O\'Brien\%'") == []


def test_not_equal_and_not_in_also_match_null_fields(sf_app: SalesforceApp, sf_sandbox: Sandbox) -> None:
    live = book_count(sf_sandbox, "SELECT COUNT(*) FROM contacts WHERE is_deleted = 0")
    null_email = book_count(sf_sandbox, "SELECT COUNT(*) FROM contacts WHERE is_deleted = 0 AND email IS NULL")
    assert null_email > 0
    assert len(ok(sf_app, "SELECT Id FROM Contact WHERE Email != 'nobody@example.com'")) == live
    assert len(ok(sf_app, "SELECT Id FROM Contact WHERE Email NOT IN ('nobody@example.com')")) == live
    assert len(ok(sf_app, "SELECT Id FROM Contact WHERE Email = null")) == null_email
    assert len(ok(sf_app, "SELECT Id FROM Contact WHERE NOT (Email != null)")) == null_email


def test_in_list_on_ids_and_picklist_values(sf_app: SalesforceApp, sf_sandbox: Sandbox) -> None:
    ids = [salesforce_id("Account", n) for n in (1, 2, 3)]
    records = ok(sf_app, f"SELECT Id FROM Account WHERE Id IN ('{ids[0]}', '{ids[1][:15]}', '{ids[2]}') ORDER BY Id")
    assert [r["Id"] for r in records] == sorted(ids)
    expected = book_count(
        sf_sandbox, "SELECT COUNT(*) FROM accounts WHERE tier IN ('enterprise', 'smb') AND is_deleted = 0"
    )
    assert len(ok(sf_app, "SELECT Id FROM Account WHERE Tier__c IN ('Enterprise', 'smb')")) == expected


def test_date_and_datetime_comparisons_match_the_book(sf_app: SalesforceApp, sf_sandbox: Sandbox) -> None:
    expected = book_count(
        sf_sandbox,
        "SELECT COUNT(*) FROM activities WHERE kind IN ('email', 'call', 'note') AND is_deleted = 0 "
        "AND updated_at >= '2026-06-01T00:00:00Z' AND occurred_at < '2026-09-01'",
    )
    records = ok(
        sf_app,
        "SELECT Id FROM Task WHERE SystemModstamp >= 2026-06-01T02:00:00+02:00 AND ActivityDate < 2026-09-01",
    )
    assert expected > 0
    assert len(records) == expected


def test_comparing_a_datetime_field_with_a_date_is_an_invalid_field(sf_app: SalesforceApp) -> None:
    status, body = run(sf_app, "SELECT Id FROM Task WHERE SystemModstamp >= 2026-06-01")
    assert status == 400
    assert body[0]["errorCode"] == "INVALID_FIELD"
    status, body = run(sf_app, "SELECT Id FROM Account WHERE NumberOfEmployees > '10'")
    assert (status, body[0]["errorCode"]) == (400, "INVALID_FIELD")


def test_relationship_paths_nest_and_a_missing_parent_is_null(sf_app: SalesforceApp) -> None:
    records = ok(sf_app, f"SELECT Id, Subject, Owner.Email, What.Name, Account.Owner.Name FROM Task "
                         f"WHERE WhatId = '{salesforce_id('Account', 1)}' ORDER BY Id LIMIT 1")  # fmt: skip
    record = records[0]
    assert list(record) == ["attributes", "Id", "Subject", "Owner", "What", "Account"]
    assert record["attributes"]["type"] == "Task"
    assert record["Owner"]["attributes"]["type"] == "User"
    assert record["What"]["attributes"]["type"] == "Account"
    assert record["Account"]["Owner"]["Name"]
    orphan = sf_app.store.insert(sf_app.store.schema.objects["Contact"], {"LastName": "Orphan"})
    found = ok(sf_app, f"SELECT Id, Account.Name, Account.Owner.Email FROM Contact WHERE Id = '{orphan}'")
    assert found[0]["Account"] is None


def test_order_by_several_fields_with_nulls_last_limit_and_offset(sf_app: SalesforceApp, sf_sandbox: Sandbox) -> None:
    conn = sf_sandbox.book.connect()
    expected = [
        salesforce_id("Contact", row[0])
        for row in conn.execute(
            "SELECT n FROM contacts WHERE is_deleted = 0 ORDER BY email IS NULL, lower(email) DESC, n LIMIT 7 OFFSET 3"
        )
    ]
    conn.close()
    records = ok(sf_app, "SELECT Id FROM Contact ORDER BY Email DESC NULLS LAST, Id LIMIT 7 OFFSET 3")
    assert [r["Id"] for r in records] == expected


def test_count_respects_the_where_clause(sf_app: SalesforceApp, sf_sandbox: Sandbox) -> None:
    expected = book_count(sf_sandbox, "SELECT COUNT(*) FROM deals WHERE is_won = 1 AND is_deleted = 0")
    status, body = run(sf_app, "SELECT COUNT() FROM Opportunity WHERE IsWon = true")
    assert status == 200
    assert (body["totalSize"], body["records"]) == (expected, [])


def test_last_n_days_counts_whole_days_back_from_the_clock(sf_sandbox: Sandbox) -> None:
    clock = datetime(2026, 11, 1, 9, 30, tzinfo=UTC)
    app = SalesforceApp(sf_sandbox.book, FaultState(), SandboxTokens(), clock=lambda: clock)
    try:
        expected = book_count(
            sf_sandbox,
            "SELECT COUNT(*) FROM activities WHERE kind = 'meeting' AND is_deleted = 0 AND updated_at >= '2026-10-02'",
        )
        assert len(ok(app, "SELECT Id FROM Event WHERE SystemModstamp = LAST_N_DAYS:30")) == expected
    finally:
        app.close()


@pytest.mark.parametrize(
    ("soql", "code"),
    [
        ("SELECT Id FROM Acount", "INVALID_TYPE"),
        ("SELECT Id, Nmae FROM Account", "INVALID_FIELD"),
        ("SELECT Id, Ownr.Email FROM Account", "INVALID_FIELD"),
        ("SELECT Id FROM Account WHERE Health_Score__c > 5", "INVALID_FIELD"),
        ("SELECT Id FROM Account ORDER", "MALFORMED_QUERY"),
    ],
)
def test_bad_queries_answer_400_with_the_salesforce_error_code(sf_app: SalesforceApp, soql: str, code: str) -> None:
    status, body = run(sf_app, soql)
    assert status == 400
    assert body[0]["errorCode"] == code


@pytest.mark.parametrize("n", [1, 61, 62, 3843, 3844, 238_328, 2_000_000, 14_776_336, 916_132_832, 10**12])
def test_sql_built_ids_equal_salesforce_id(n: int) -> None:
    conn = sqlite3.connect(":memory:")
    try:
        conn.execute("CREATE TABLE t (n INTEGER)")
        conn.execute("INSERT INTO t VALUES (?)", (n,))
        built = conn.execute(f"SELECT {id_sql('00T', 'n')}, {id_sql('001', 'n')} FROM t").fetchone()
    finally:
        conn.close()
    assert built == (salesforce_id("Task", n), salesforce_id("Account", n))


def test_task_and_event_relations_list_every_participant(sf_app: SalesforceApp, sf_sandbox: Sandbox) -> None:
    sql = "SELECT sum(json_array_length(contact_ns)) FROM activities WHERE is_deleted = 0 AND kind {}"
    task_people = book_count(sf_sandbox, sql.format("IN ('email', 'call', 'note')"))
    event_people = book_count(sf_sandbox, sql.format("= 'meeting'"))
    assert run(sf_app, "SELECT COUNT() FROM TaskRelation")[1]["totalSize"] == task_people
    assert run(sf_app, "SELECT COUNT() FROM EventRelation")[1]["totalSize"] == event_people
    first = ok(sf_app, "SELECT Task.WhoId, RelationId FROM TaskRelation ORDER BY Id LIMIT 1")[0]
    assert first["Task"]["WhoId"] == first["RelationId"]


def _soql_literal(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n").replace("\t", "\\t") + "'"


@given(st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=40))
def test_any_escaped_string_parses_back_to_itself(text: str) -> None:
    query = parse(f"SELECT Id FROM Account WHERE Name = {_soql_literal(text)} AND Type != 'x'")
    assert isinstance(query.where, And)
    first = query.where.items[0]
    assert isinstance(first, Comparison)
    assert first.values[0].value == text
