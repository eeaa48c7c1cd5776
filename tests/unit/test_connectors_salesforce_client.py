"""SalesforceClient through simple-salesforce, intercepted with `responses`: paging, re-login, budget, writes."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import responses
from pydantic import SecretStr

from connectors.base import ApiStats
from connectors.credentials import Credentials
from connectors.salesforce.client import SalesforceClient
from core.config.runtime import LimitsConfig
from core.errors import AuthError, BudgetExhaustedError, ConfigError, FatalApiError

BASE = "https://acme.my.salesforce.com"
API = f"{BASE}/services/data/v59.0"
TOKEN = Credentials(salesforce_instance_url=BASE, salesforce_access_token=SecretStr("00Dtoken-one"))
PASSWORD = Credentials(
    salesforce_login_url="https://login.example.test", salesforce_username="u@x", salesforce_consumer_key="ck",
    salesforce_client_secret=SecretStr("cs-secret"), salesforce_password=SecretStr("pw-secret"),
)
EXPIRED = [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]


@pytest.fixture
def rsps():
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        yield mock


def _client(creds: Credentials = TOKEN, **limits) -> tuple[SalesforceClient, list[float], ApiStats]:
    sleeps: list[float] = []
    stats = ApiStats()
    client = SalesforceClient(creds, limits=LimitsConfig(**limits), stats=stats, sleep=sleeps.append)
    return client, sleeps, stats


def test_query_pages_follow_next_records_url_and_count_calls(rsps):
    rsps.get(f"{API}/query/", json={"done": False, "totalSize": 3, "nextRecordsUrl": "/services/data/v59.0/query/01g-2",
                                    "records": [{"attributes": {"type": "Account"}, "Id": "1"}, {"Id": "2"}]})
    rsps.get(f"{API}/query/01g-2", json={"done": True, "totalSize": 3, "records": [{"Id": "3"}]})
    client, _, stats = _client()
    pages = list(client.query_pages("SELECT Id FROM Account"))
    assert pages == [[{"Id": "1"}, {"Id": "2"}], [{"Id": "3"}]]
    assert parse_qs(urlsplit(rsps.calls[0].request.url).query)["q"] == ["SELECT Id FROM Account"]
    assert rsps.calls[0].request.headers["Sforce-Query-Options"] == "batchSize=2000"
    assert (stats.snapshot("salesforce").calls, stats.snapshot("salesforce").pages) == (2, 2)


def test_query_refuses_a_next_records_url_that_repeats(rsps):
    page = {"done": False, "totalSize": 9, "nextRecordsUrl": "/services/data/v59.0/query/01g-2", "records": []}
    rsps.get(f"{API}/query/", json=page)
    rsps.get(f"{API}/query/01g-2", json=page)
    client, _, _ = _client()
    with pytest.raises(FatalApiError, match="twice"):
        list(client.query_pages("SELECT Id FROM Account"))


def test_include_deleted_uses_query_all(rsps):
    rsps.get(f"{API}/queryAll/", json={"done": True, "totalSize": 0, "records": []})
    client, _, _ = _client()
    assert list(client.query_iter("SELECT Id FROM Account", include_deleted=True)) == []


def test_server_errors_and_concurrency_limits_are_retried_with_backoff(rsps):
    rsps.get(f"{API}/query/", status=503, json=[{"errorCode": "SERVER_UNAVAILABLE", "message": "down"}])
    rsps.get(f"{API}/query/", status=403, headers={"Retry-After": "2"},
             json=[{"errorCode": "REQUEST_LIMIT_EXCEEDED", "message": "ConcurrentPerOrgLongTxn Limit exceeded"}])
    rsps.get(f"{API}/query/", json={"done": True, "totalSize": 0, "records": []})
    client, sleeps, stats = _client()
    assert list(client.query_iter("SELECT Id FROM Account")) == []
    assert sleeps == [0.5, 2.0]
    snap = stats.snapshot("salesforce")
    assert (snap.calls, snap.retries, snap.rate_limited) == (3, 2, 1)


def test_an_invalid_field_fails_at_once_with_the_code(rsps):
    rsps.get(f"{API}/query/", status=400, json=[{"errorCode": "INVALID_FIELD", "message": "No such column 'Nope__c'"}])
    client, sleeps, _ = _client()
    with pytest.raises(FatalApiError, match=r"INVALID_FIELD.*Nope__c"):
        list(client.query_iter("SELECT Nope__c FROM Account"))
    assert sleeps == []


def test_an_expired_direct_token_is_an_auth_error(rsps):
    rsps.get(f"{API}/limits/", status=401, json=EXPIRED)
    client, _, _ = _client()
    with pytest.raises(AuthError, match="no login flow is configured"):
        client.limits()


def test_an_expired_token_is_renewed_through_the_login_flow_and_the_call_retried(rsps):
    login = rsps.post("https://login.example.test/services/oauth2/token",
                      json={"access_token": "00Dfirst", "instance_url": BASE})
    rsps.get(f"{API}/limits/", json={"DailyApiRequests": {"Max": 1000, "Remaining": 900}})
    client, _, _ = _client(PASSWORD)
    assert client.flow == "password"
    assert parse_qs(login.calls[0].request.body)["grant_type"] == ["password"]
    assert parse_qs(login.calls[0].request.body)["password"] == ["pw-secret"]
    relogin = rsps.replace(responses.POST, "https://login.example.test/services/oauth2/token",
                           json={"access_token": "00Dsecond", "instance_url": BASE})
    rsps.get(f"{API}/query/", status=401, json=EXPIRED)
    rsps.get(f"{API}/query/", json={"done": True, "totalSize": 0, "records": []})
    client.limits()
    assert list(client.query_iter("SELECT Id FROM Account")) == []
    assert len(relogin.calls) == 1
    assert [urlsplit(c.request.url).path.rstrip("/").split("/")[-1] for c in rsps.calls] == [
        "token", "limits", "query", "token", "query"]
    assert rsps.calls[-1].request.headers["Authorization"] == "Bearer 00Dsecond"
    assert (client.token.token, client.token.renewals) == ("00Dsecond", 1)


def test_missing_credentials_name_the_environment_variable():
    with pytest.raises(ConfigError, match="SALESFORCE_ACCESS_TOKEN"):
        SalesforceClient(Credentials(salesforce_instance_url=BASE), limits=LimitsConfig())


def test_reads_stop_at_the_pull_share_of_the_daily_limit(rsps):
    rsps.get(f"{API}/query/", json={"done": False, "totalSize": 5, "nextRecordsUrl": "/services/data/v59.0/query/01g-2",
                                    "records": [{"Id": "1"}]}, headers={"Sforce-Limit-Info": "api-usage=500/1000"})
    client, _, _ = _client()
    pages = client.query_pages("SELECT Id FROM Account")
    assert next(pages) == [{"Id": "1"}]
    assert client.budget_left() == 0
    with pytest.raises(BudgetExhaustedError, match="500/1000"):
        next(pages)
    assert client.budget_left(write=True) == 300  # writes may go on up to 1 - reserve_share


def test_composite_update_chunks_and_returns_save_results_in_order(rsps):
    def answer(request):
        body = json.loads(request.body)
        results = [{"id": r["Id"], "success": r["Id"] != "001B", "errors": [] if r["Id"] != "001B" else
                    [{"statusCode": "UNABLE_TO_LOCK_ROW", "message": "locked", "fields": []}]} for r in body["records"]]
        return 200, {}, json.dumps(results)

    rsps.add_callback(responses.PATCH, f"{API}/composite/sobjects", callback=answer)
    client, _, _ = _client(salesforce={"write_batch_size": 2})
    records = [{"Id": i, "Health_Score__c": 50} for i in ("001A", "001B", "001C")]
    results = client.composite_update(records, sobject="Account")
    assert [(r.id, r.success) for r in results] == [("001A", True), ("001B", False), ("001C", True)]
    assert results[1].errors[0].status_code == "UNABLE_TO_LOCK_ROW"
    sent = [json.loads(c.request.body) for c in rsps.calls]
    assert [len(b["records"]) for b in sent] == [2, 1]
    assert sent[0]["records"][0]["attributes"] == {"type": "Account"}
    assert sent[0]["allOrNone"] is False


def test_every_call_has_a_timeout(rsps):
    rsps.get(f"{API}/limits/", json={})
    client, _, _ = _client(http={"connect_timeout_seconds": 3, "read_timeout_seconds": 7})
    client.limits()
    assert rsps.calls[0].request.req_kwargs["timeout"] == (3.0, 7.0)


def test_a_checkbox_field_is_created_with_its_default_value(rsps):
    bodies: list[dict[str, Any]] = []

    def answer(request):
        bodies.append(json.loads(request.body))
        return 201, {}, json.dumps({"id": f"00N{len(bodies)}", "success": True, "errors": []})

    rsps.add_callback(responses.POST, f"{API}/tooling/sobjects/CustomField/", callback=answer)
    rsps.add_callback(responses.POST, f"{API}/tooling/sobjects/CustomField/", callback=answer)
    client, _, _ = _client()
    assert client.tooling_create_custom_field("Account", "Health_Flag__c", label="Health flag",
                                              field_type="Checkbox", length=None, default_value="false") == "00N1"
    assert client.tooling_create_custom_field("Account", "Health_Score__c", label="Health score",
                                              field_type="Number", length=None, precision=5, scale=1) == "00N2"
    assert bodies[0] == {"FullName": "Account.Health_Flag__c", "Metadata": {
        "label": "Health flag", "type": "Checkbox", "description": "", "defaultValue": "false"}}
    assert "defaultValue" not in bodies[1]["Metadata"]


def test_record_counts_ask_once_for_every_object_and_key_the_answer_by_lower_case_name(rsps):
    rsps.get(f"{API}/limits/recordCount", json={"sObjects": [{"count": 10, "name": "Contact"},
                                                              {"count": 3, "name": "Account"}]})
    client, _, stats = _client()
    assert client.record_counts(["Account", "Contact", "Widget__c", "Account"]) == {"account": 3, "contact": 10}
    assert parse_qs(urlsplit(rsps.calls[0].request.url).query)["sObjects"] == ["Account,Contact,Widget__c"]
    assert stats.snapshot("salesforce").calls == 1


def test_describe_many_sends_25_describes_per_composite_call_and_keeps_each_failure_to_its_object(rsps):
    names = [f"Obj{n}__c" for n in range(27)]

    def answer(request):
        subrequests = json.loads(request.body)["compositeRequest"]
        out = []
        for sub in subrequests:
            failed = sub["referenceId"] == "Obj3__c"
            out.append({"body": [{"errorCode": "NOT_FOUND", "message": "The requested resource does not exist"}]
                        if failed else {"name": sub["referenceId"], "fields": [{"name": "Id", "type": "id"}]},
                        "httpHeaders": {}, "httpStatusCode": 404 if failed else 200,
                        "referenceId": sub["referenceId"]})
        return 200, {}, json.dumps({"compositeResponse": out})

    rsps.add_callback(responses.POST, f"{API}/composite", callback=answer)
    rsps.add_callback(responses.POST, f"{API}/composite", callback=answer)
    client, _, stats = _client()
    described = client.describe_many(names)
    sent = [json.loads(c.request.body) for c in rsps.calls]
    assert [len(b["compositeRequest"]) for b in sent] == [25, 2]
    assert sent[0]["allOrNone"] is False
    assert sent[0]["compositeRequest"][0] == {
        "method": "GET", "url": "/services/data/v59.0/sobjects/Obj0__c/describe", "referenceId": "Obj0__c"}
    assert list(described) == names
    failure = described["Obj3__c"]
    assert isinstance(failure, FatalApiError)
    assert (failure.status, failure.code) == (404, "NOT_FOUND")
    assert "describe of Obj3__c" in failure.user_message
    assert described["Obj26__c"] == {"name": "Obj26__c", "fields": [{"name": "Id", "type": "id"}]}
    assert stats.snapshot("salesforce").calls == 2


def test_describe_many_is_a_read_for_the_budget_although_composite_is_a_post(rsps):
    rsps.get(f"{API}/limits/", json={"DailyApiRequests": {"Max": 1000, "Remaining": 450}})
    client, _, _ = _client()
    client.limits()
    assert (client.budget_left(), client.budget_left(write=True)) == (-50, 250)
    with pytest.raises(BudgetExhaustedError, match="pulls"):
        client.describe_many(["Account"])
