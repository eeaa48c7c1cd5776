"""The real simple-salesforce 1.12.10 against the emulator over TLS: paging, queryAll, writes, collections,
describe and Tooling, limits, token expiry and renewal, replication, determinism."""

from __future__ import annotations

import json
import math
import time
from dataclasses import replace
from datetime import timedelta
from typing import Any
from urllib.parse import quote

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from simple_salesforce.api import Salesforce
from simple_salesforce.exceptions import (
    SalesforceAuthenticationFailed,
    SalesforceExpiredSession,
    SalesforceMalformedRequest,
    SalesforceRefusedRequest,
    SalesforceResourceNotFound,
)

from sandbox.faults import FaultProfile, FaultState
from sandbox.http import SandboxRequest, SandboxTokens
from sandbox.ids import salesforce_id
from sandbox.runtime import Sandbox
from sandbox.salesforce import SalesforceApp
from tests.sandbox.sf_helpers import direct_client, sf, sf_app, sf_sandbox, sf_session, tls_session

__all__ = ["sf", "sf_app", "sf_sandbox", "sf_session"]


def content(exc: BaseException) -> Any:
    """The parsed error body simple-salesforce attaches to its exceptions."""
    return getattr(exc, "content")  # noqa: B009


def live_tasks(sandbox: Sandbox) -> int:
    conn = sandbox.book.connect()
    try:
        sql = "SELECT COUNT(*) FROM activities WHERE kind IN ('email', 'call', 'note') AND is_deleted = 0"
        return int(conn.execute(sql).fetchone()[0])
    finally:
        conn.close()


def query_calls(sandbox: Sandbox) -> int:
    return sum(1 for e in sandbox.ledger("salesforce").entries() if "/query" in e.path)


def test_query_all_iter_pages_through_every_task_with_batch_size(sf: Any, sf_sandbox: Sandbox) -> None:
    expected = live_tasks(sf_sandbox)
    assert expected > 5000
    ids = [
        r["Id"]
        for r in sf.query_all_iter(
            "SELECT Id, Subject, Owner.Email FROM Task", headers={"Sforce-Query-Options": "batchSize=500"}
        )
    ]
    assert len(ids) == expected
    assert len(set(ids)) == expected
    assert query_calls(sf_sandbox) == math.ceil(expected / 500)


def test_first_page_has_2000_records_and_a_path_only_next_records_url(sf: Any) -> None:
    page = sf.query("SELECT Id FROM Task")
    assert len(page["records"]) == 2000
    assert page["done"] is False
    assert page["nextRecordsUrl"].startswith("/services/data/v59.0/query/01g")
    assert page["nextRecordsUrl"].endswith("-2000")
    second = sf.query_more(page["nextRecordsUrl"], identifier_is_url=True)
    assert second["totalSize"] == page["totalSize"]
    assert second["records"][0]["Id"] != page["records"][-1]["Id"]


def test_cursor_keeps_its_snapshot_while_records_change(sf: Any, sf_app: SalesforceApp) -> None:
    page = sf.query("SELECT Id FROM Task ORDER BY Id")
    first_of_page_two = sf.query_more(page["nextRecordsUrl"], identifier_is_url=True)["records"][0]["Id"]
    sf_app.delete("Task", page["records"][0]["Id"])
    again = sf.query_more(page["nextRecordsUrl"], identifier_is_url=True)
    assert again["records"][0]["Id"] == first_of_page_two


def test_unknown_locator_is_invalid_query_locator(sf: Any) -> None:
    with pytest.raises(SalesforceMalformedRequest) as caught:
        sf.query_more("/services/data/v59.0/query/01gDg0000000099AAA-2000", identifier_is_url=True)
    assert content(caught.value)[0]["errorCode"] == "INVALID_QUERY_LOCATOR"


def test_query_all_returns_deleted_rows_that_query_hides(sf: Any, sf_sandbox: Sandbox) -> None:
    conn = sf_sandbox.book.connect()
    deleted = int(conn.execute("SELECT COUNT(*) FROM accounts WHERE is_deleted = 1").fetchone()[0])
    conn.close()
    assert deleted > 0
    live = sf.query_all("SELECT Id, IsDeleted FROM Account")["records"]
    everything = sf.query_all("SELECT Id, IsDeleted FROM Account", include_deleted=True)["records"]
    assert len(everything) - len(live) == deleted
    assert sum(r["IsDeleted"] for r in everything) == deleted
    assert not any(r["IsDeleted"] for r in live)


def test_created_task_reads_back_through_get_and_query(sf: Any, sf_app: SalesforceApp) -> None:
    account = salesforce_id("Account", 5)
    before = sf_app.count_tasks(what_id=account)
    created = sf.Task.create({"Subject": "Health risk: review", "WhatId": account, "Priority": "High"})
    assert created["success"] is True
    assert created["id"].startswith("00T")
    record = sf.Task.get(created["id"])
    assert (record["Subject"], record["Status"], record["AccountId"], record["IsClosed"]) == (
        "Health risk: review", "Not Started", account, False,
    )  # fmt: skip
    found = sf.query(f"SELECT Id, What.Name FROM Task WHERE WhatId = '{account}' AND Subject = 'Health risk: review'")
    assert [r["Id"] for r in found["records"]] == [created["id"]]
    assert sf_app.count_tasks(what_id=account) == before + 1
    assert sf_app.count_tasks(created_by_api=True) == 1


def test_update_sets_system_modstamp_after_every_book_timestamp(sf: Any, sf_app: SalesforceApp) -> None:
    account = salesforce_id("Account", 7)
    sf.Account.update(account, {"Description": "checked"})
    record = sf_app.get_record("Account", account)
    assert record is not None
    assert record["Description"] == "checked"
    newest = sf.query("SELECT SystemModstamp FROM Account ORDER BY SystemModstamp DESC LIMIT 1")["records"][0]
    assert newest["SystemModstamp"] == record["SystemModstamp"]
    assert record["SystemModstamp"] > "2026-11-01T00:00:00.000+0000"


def test_writing_an_unknown_field_is_refused_with_invalid_field(sf: Any) -> None:
    with pytest.raises(SalesforceMalformedRequest) as caught:
        sf.Account.update(salesforce_id("Account", 1), {"Health_Score__c": 50})
    assert content(caught.value)[0]["errorCode"] == "INVALID_FIELD"


def test_composite_update_reports_mixed_results_in_order(sf: Any, sf_app: SalesforceApp) -> None:
    ids = [salesforce_id("Account", n) for n in (1, 2, 3)]
    records = [
        {"attributes": {"type": "Account"}, "id": ids[0], "Description": "one"},
        {"attributes": {"type": "Account"}, "id": ids[1], "Nope__c": "x"},
        {"attributes": {"type": "Account"}, "id": ids[2], "Description": "three"},
    ]
    results = sf.restful("composite/sobjects", method="PATCH", json={"allOrNone": False, "records": records})
    assert [r["success"] for r in results] == [True, False, True]
    assert results[1]["errors"][0]["statusCode"] == "INVALID_FIELD"
    assert [(sf_app.get_record("Account", i) or {})["Description"] for i in (ids[0], ids[2])] == ["one", "three"]


def test_composite_all_or_none_rolls_every_record_back(sf: Any, sf_app: SalesforceApp) -> None:
    ids = [salesforce_id("Account", n) for n in (1, 2)]
    before = [sf_app.get_record("Account", i) for i in ids]
    records = [
        {"attributes": {"type": "Account"}, "id": ids[0], "Description": "one"},
        {"attributes": {"type": "Account"}, "id": ids[1], "NumberOfEmployees": "many"},
    ]
    results = sf.restful("composite/sobjects", method="PATCH", json={"allOrNone": True, "records": records})
    assert [r["errors"][0]["statusCode"] for r in results] == [
        "ALL_OR_NONE_OPERATION_ROLLED_BACK",
        "INVALID_TYPE_ON_FIELD_IN_RECORD",
    ]
    assert [sf_app.get_record("Account", i) for i in ids] == before


def test_composite_create_over_200_records_is_refused(sf: Any) -> None:
    records = [{"attributes": {"type": "Task"}, "Subject": f"t{i}"} for i in range(201)]
    with pytest.raises(SalesforceMalformedRequest):
        sf.restful("composite/sobjects", method="POST", json={"allOrNone": False, "records": records})


def test_injected_write_failures_are_lock_or_validation_errors(sf: Any, sf_sandbox: Sandbox) -> None:
    sf_sandbox.set_faults("salesforce", FaultProfile(write_failure_rate=1.0, seed=3))
    records = [{"attributes": {"type": "Task"}, "Subject": f"t{i}"} for i in range(20)]
    results = sf.restful("composite/sobjects", method="POST", json={"allOrNone": False, "records": records})
    codes = {r["errors"][0]["statusCode"] for r in results}
    assert codes == {"UNABLE_TO_LOCK_ROW", "FIELD_CUSTOM_VALIDATION_EXCEPTION"}
    assert not any(r["success"] for r in results)


def test_tooling_custom_field_shows_in_describe_and_takes_writes(sf: Any, sf_app: SalesforceApp) -> None:
    body = {"FullName": "Account.Health_Score__c", "Metadata": {"label": "Health Score", "type": "Number",
                                                                "precision": 5, "scale": 1}}  # fmt: skip
    created = sf.restful("tooling/sobjects/CustomField", method="POST", json=body)
    assert created["success"] is True and created["id"].startswith("00N")
    fields = {f["name"]: f for f in sf.Account.describe()["fields"]}
    assert (fields["Health_Score__c"]["type"], fields["Health_Score__c"]["custom"]) == ("double", True)
    account = salesforce_id("Account", 2)
    sf.Account.update(account, {"Health_Score__c": 61.5})
    assert (
        sf.query(f"SELECT Health_Score__c FROM Account WHERE Id = '{account}'")["records"][0]["Health_Score__c"] == 61.5
    )
    listed = sf.restful("tooling/query", params={"q": "SELECT Id, FullName FROM CustomField"})
    assert [r["FullName"] for r in listed["records"]] == ["Account.Health_Score__c"]
    with pytest.raises(SalesforceMalformedRequest) as caught:
        sf.restful("tooling/sobjects/CustomField", method="POST", json=body)
    assert content(caught.value)[0]["errorCode"] == "DUPLICATE_DEVELOPER_NAME"
    sf_app.reset()
    assert "Health_Score__c" not in {f["name"] for f in sf.Account.describe()["fields"]}


def test_every_answer_carries_the_limit_header_and_limits_counts_calls(sf: Any, sf_sandbox: Sandbox) -> None:
    sf.query("SELECT Id FROM User")
    assert sf.api_usage["api-usage"].used == 1
    limits = sf.limits()
    assert limits["DailyApiRequests"] == {"Max": 15000, "Remaining": 15000 - 2}
    session = tls_session(sf_sandbox)
    refused = session.get(f"{sf_sandbox.salesforce_url}/services/data/v59.0/limits/")
    assert refused.status_code == 401
    assert refused.headers["Sforce-Limit-Info"] == "api-usage=2/15000"


def test_exhausted_daily_limit_is_a_403_request_limit_exceeded(sf: Any, sf_sandbox: Sandbox) -> None:
    sf_sandbox.set_faults("salesforce", FaultProfile(daily_limit=3))
    for _ in range(3):
        sf.query("SELECT Id FROM User")
    with pytest.raises(SalesforceRefusedRequest) as caught:
        sf.query("SELECT Id FROM User")
    assert content(caught.value) == [{"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}]


def test_direct_token_expires_after_n_calls_with_a_list_shaped_401(sf: Any, sf_sandbox: Sandbox) -> None:
    sf_sandbox.set_faults("salesforce", FaultProfile(token_expiry_after=2))
    sf.query("SELECT Id FROM User")
    sf.query("SELECT Id FROM User")
    with pytest.raises(SalesforceExpiredSession) as caught:
        sf.query("SELECT Id FROM User")
    assert content(caught.value) == [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]


def test_client_credentials_login_renews_an_expired_token(sf_sandbox: Sandbox, sf_app: SalesforceApp) -> None:
    sf_sandbox.set_faults("salesforce", FaultProfile(token_expiry_after=3))
    port = sf_sandbox.salesforce_url.rsplit(":", 1)[1]
    tokens = sf_sandbox.tokens
    client: Any = Salesforce(
        consumer_key=tokens.salesforce_client_id,
        consumer_secret=tokens.salesforce_client_secret,
        domain=f"127.0.0.1:{port}/emu",
        session=tls_session(sf_sandbox),
    )
    answers = [client.query("SELECT Id FROM User")["totalSize"] for _ in range(7)]
    assert answers == [answers[0]] * 7
    assert sf_app.auth.tokens_issued == 3  # 3 + 3 + 1 calls: the first login, then two renewals
    token_posts = [e for e in sf_sandbox.ledger("salesforce").entries() if e.path.endswith("/oauth2/token")]
    assert len(token_posts) == 3


def test_jwt_bearer_login_gets_a_token(sf_sandbox: Sandbox, sf_app: SalesforceApp) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    port = sf_sandbox.salesforce_url.rsplit(":", 1)[1]
    client: Any = Salesforce(
        username=sf_sandbox.tokens.salesforce_username,
        consumer_key=sf_sandbox.tokens.salesforce_client_id,
        privatekey=pem.decode(),
        domain=f"127.0.0.1:{port}/emu",
        session=tls_session(sf_sandbox),
    )
    assert client.query("SELECT COUNT() FROM Account")["totalSize"] > 0
    assert sf_app.auth.tokens_issued == 1


def test_bad_client_secret_is_invalid_grant(sf_sandbox: Sandbox) -> None:
    port = sf_sandbox.salesforce_url.rsplit(":", 1)[1]
    with pytest.raises(SalesforceAuthenticationFailed) as caught:
        Salesforce(
            consumer_key=sf_sandbox.tokens.salesforce_client_id,
            consumer_secret="wrong",
            domain=f"127.0.0.1:{port}/emu",
            session=tls_session(sf_sandbox),
        )
    assert caught.value.code == "invalid_grant"


def test_get_updated_and_get_deleted_see_recent_changes(sf: Any, sf_app: SalesforceApp) -> None:
    changed, removed = salesforce_id("Contact", 10), salesforce_id("Contact", 11)
    start = sf_app.store.clock() - timedelta(minutes=5)
    sf_app.set_field("Contact", changed, "Title", "VP Customer Success")
    sf_app.delete("Contact", removed)
    end = sf_app.store.clock() + timedelta(minutes=5)
    assert sf.Contact.updated(start, end)["ids"] == [changed]
    deleted = sf.Contact.deleted(start, end)["deletedRecords"]
    assert [d["id"] for d in deleted] == [removed]
    with pytest.raises(SalesforceMalformedRequest):
        sf.Contact.updated(start - timedelta(days=31), end)


def test_rate_limited_and_server_error_bodies_are_salesforce_lists(sf_app: SalesforceApp) -> None:
    limited = sf_app.error_response("rate_limited")
    assert (limited.status, json.loads(limited.body)[0]["errorCode"]) == (403, "REQUEST_LIMIT_EXCEEDED")
    failed = sf_app.error_response("server_error")
    assert (failed.status, json.loads(failed.body)[0]["errorCode"]) == (503, "SERVER_UNAVAILABLE")


def test_same_book_gives_byte_identical_answers(sf_sandbox: Sandbox) -> None:
    queries = [
        "SELECT Id, Name, Owner.Email, Tier__c, ARR__c, Usage_Score__c, SystemModstamp FROM Account ORDER BY Name",
        "SELECT Id, Subject, Who.Email, What.Name, CallDurationInSeconds FROM Task",
        "SELECT Id, CaseNumber, Priority, Status, IsEscalated FROM Case",
    ]
    answers = []
    for _ in range(2):
        app = SalesforceApp(sf_sandbox.book, FaultState(), SandboxTokens())
        headers = {"authorization": f"Bearer {SandboxTokens().salesforce_access_token}"}
        try:
            answers.append(
                [app.handle(SandboxRequest("GET", f"/services/data/v59.0/query?q={quote(q)}", headers)).body
                 for q in queries]
            )  # fmt: skip
        finally:
            app.close()
    assert answers[0] == answers[1]
    assert all(len(body) > 1000 for body in answers[0])


def test_reset_after_writes_is_fast_and_complete(sf: Any, sf_app: SalesforceApp) -> None:
    account = salesforce_id("Account", 3)
    original = sf_app.get_record("Account", account)
    for i in range(50):
        sf_app.set_field("Account", account, "Description", f"edit {i}")
    sf.Task.create({"Subject": "x", "WhatId": account})
    started = time.perf_counter()
    sf_app.reset()
    elapsed = time.perf_counter() - started
    assert elapsed < 0.5
    assert sf_app.get_record("Account", account) == original
    assert sf_app.count_tasks(created_by_api=True) == 0


def test_page_round_trip_is_a_few_milliseconds(sf: Any, sf_sandbox: Sandbox) -> None:
    sf.query("SELECT Id, Name FROM Account LIMIT 200")  # warm the connection
    started = time.perf_counter()
    rounds = 50
    for _ in range(rounds):
        sf.query("SELECT Id, Name FROM Account LIMIT 200")
    per_page_ms = (time.perf_counter() - started) * 1000 / rounds
    print(f"salesforce page of 200 accounts: {per_page_ms:.2f} ms per round trip")
    assert per_page_ms < 50


def test_direct_client_with_unknown_token_is_refused(sf_sandbox: Sandbox) -> None:
    client = direct_client(sf_sandbox, token="00Dnope")
    with pytest.raises(SalesforceExpiredSession):
        client.query("SELECT Id FROM User")


def test_daily_limit_follows_the_fault_profile_at_run_time(sf_sandbox: Sandbox, sf_app: SalesforceApp) -> None:
    state = sf_sandbox.faults("salesforce")
    sf_sandbox.set_faults("salesforce", replace(state.profile, daily_limit=7))
    headers = {"authorization": f"Bearer {sf_sandbox.tokens.salesforce_access_token}"}
    response = sf_app.handle(SandboxRequest("GET", "/services/data/v59.0/limits", headers))
    assert response.headers["Sforce-Limit-Info"] == "api-usage=1/7"
    assert json.loads(response.body)["DailyApiRequests"] == {"Max": 7, "Remaining": 6}


def test_touch_bumps_system_modstamp_but_not_last_modified_date(sf: Any, sf_app: SalesforceApp) -> None:
    contact = salesforce_id("Contact", 4)
    before = sf_app.get_record("Contact", contact) or {}
    sf_app.touch("Contact", [contact], Title="Chief Customer Officer")
    after = sf.Contact.get(contact)
    assert after["Title"] == "Chief Customer Officer"
    assert after["LastModifiedDate"] == before["LastModifiedDate"]
    assert after["SystemModstamp"] > before["SystemModstamp"]
    since = before["SystemModstamp"].replace(".000+0000", "Z")
    found = sf.query(f"SELECT Id FROM Contact WHERE SystemModstamp > {since} AND Id = '{contact}'")
    assert found["totalSize"] == 1


def test_opportunity_record_type_and_type_follow_the_deal_kind(sf: Any, sf_sandbox: Sandbox) -> None:
    conn = sf_sandbox.book.connect()
    renewals = int(conn.execute("SELECT COUNT(*) FROM deals WHERE kind = 'renewal' AND is_deleted = 0").fetchone()[0])
    conn.close()
    by_record_type = sf.query_all("SELECT Id FROM Opportunity WHERE RecordType.Name = 'Renewal'")["totalSize"]
    by_type = sf.query_all("SELECT Id, RecordType.Name FROM Opportunity WHERE Type = 'Renewal'")
    assert by_record_type == by_type["totalSize"] == renewals
    assert {r["RecordType"]["Name"] for r in by_type["records"]} == {"Renewal"}


def test_password_grant_issues_a_token_that_queries(sf_sandbox: Sandbox) -> None:
    tokens = sf_sandbox.tokens
    session = tls_session(sf_sandbox)
    form = {
        "grant_type": "password",
        "client_id": tokens.salesforce_client_id,
        "client_secret": tokens.salesforce_client_secret,
        "username": tokens.salesforce_username,
        "password": tokens.salesforce_password,
    }
    granted = session.post(f"{sf_sandbox.salesforce_url}/services/oauth2/token", data=form)
    assert granted.status_code == 200
    body = granted.json()
    assert (body["token_type"], body["instance_url"]) == ("Bearer", sf_sandbox.salesforce_url)
    client = direct_client(sf_sandbox, token=body["access_token"])
    assert client.query("SELECT COUNT() FROM User")["totalSize"] >= 1
    refused = session.post(f"{sf_sandbox.salesforce_url}/services/oauth2/token", data={**form, "password": "nope"})
    assert (refused.status_code, refused.json()) == (
        400, {"error": "invalid_grant", "error_description": "authentication failure"},
    )  # fmt: skip


def test_composite_get_returns_records_in_order_with_null_for_missing(sf: Any, sf_app: SalesforceApp) -> None:
    ids = [salesforce_id("Account", 2), salesforce_id("Account", 99_999), salesforce_id("Account", 1)]
    found = sf.restful("composite/sobjects/Account", params={"ids": ",".join(ids), "fields": "Id,Name,Owner.Email"})
    assert [r["Id"] if r else None for r in found] == [ids[0], None, ids[2]]
    assert found[0]["Owner"]["Email"].endswith(".example")
    sf_app.delete("Account", ids[0])
    with pytest.raises(SalesforceResourceNotFound):
        sf.Account.get(ids[0])


def test_a_new_checkbox_field_reads_false_until_written(sf: Any) -> None:
    body = {"FullName": "Account.Health_At_Risk__c", "Metadata": {"label": "At Risk", "type": "Checkbox"}}
    sf.restful("tooling/sobjects/CustomField", method="POST", json=body)
    account = salesforce_id("Account", 1)
    sf.Account.update(account, {"Health_At_Risk__c": True})
    flagged = sf.query_all("SELECT Id FROM Account WHERE Health_At_Risk__c = true")["records"]
    unflagged = sf.query_all("SELECT Id, Health_At_Risk__c FROM Account WHERE Health_At_Risk__c = false")["records"]
    assert [r["Id"] for r in flagged] == [account]
    assert unflagged and {r["Health_At_Risk__c"] for r in unflagged} == {False}


def test_registered_public_key_refuses_an_assertion_signed_by_another_key(sf_sandbox: Sandbox) -> None:
    registered, other = (rsa.generate_private_key(public_exponent=65537, key_size=2048) for _ in range(2))
    public_pem = registered.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    app = SalesforceApp(sf_sandbox.book, FaultState(), SandboxTokens(), jwt_public_key=public_pem.decode())
    tokens = SandboxTokens()
    claims = {"iss": tokens.salesforce_client_id, "sub": tokens.salesforce_username,
              "aud": "https://login.salesforce.com", "exp": str(int(time.time()) + 180)}  # fmt: skip
    try:
        statuses = []
        for key in (registered, other):
            assertion = jwt.encode(claims, key, algorithm="RS256")
            form = f"grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion={assertion}"
            answer = app.handle(SandboxRequest("POST", "/services/oauth2/token", {}, form.encode()))
            statuses.append(answer.status)
    finally:
        app.close()
    assert statuses == [200, 400]
