"""Record counts (``limits/recordCount``) and Composite describes: the emulator's answers through simple-salesforce,
and the connector's backfill preflight against them (one call of each per run, none on an incremental run)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from simple_salesforce.exceptions import SalesforceMalformedRequest, SalesforceResourceNotFound

from connectors.credentials import Credentials
from connectors.salesforce.client import SalesforceClient
from connectors.salesforce.streams import SalesforceConnector
from core.config.runtime import LimitsConfig
from core.config.sources import SalesforceSourceConfig
from sandbox.runtime import Sandbox
from sandbox.salesforce import SalesforceApp
from store.db import make_engine
from store.migrate import upgrade
from store.sync import pull_all
from tests.sandbox.sf_helpers import sf, sf_app, sf_sandbox, sf_session

__all__ = ["sf", "sf_app", "sf_sandbox", "sf_session"]

API = "/services/data/v59.0"
# On the 300-account org Contact (1,479), Opportunity (1,058), its contact roles (2,025) and Task (5,239) hold more
# than this and go Bulk; Account, User, Case and Event go through REST paging.
THRESHOLD = 1000
BULK = {"contacts": "bulk", "opportunities": "bulk", "tasks": "bulk",
        "accounts": "rest", "users": "rest", "cases": "rest", "events": "rest"}  # fmt: skip


def _describe_subrequest(name: str) -> dict[str, str]:
    return {"method": "GET", "url": f"{API}/sobjects/{name}/describe", "referenceId": name}


# -- the emulator ------------------------------------------------------------------------------------------------


def test_record_count_lists_live_records_of_the_objects_asked_and_leaves_out_unknown_ones(
    sf: Any, sf_app: SalesforceApp
) -> None:
    account = sf.query("SELECT Id FROM Account LIMIT 1")["records"][0]["Id"]
    sf_app.delete("Account", account)
    answer = sf.restful("limits/recordCount", params={"sObjects": "Account,contact,Widget__c"})
    counts = {o["name"]: o["count"] for o in answer["sObjects"]}
    assert counts == {"Account": sf.query("SELECT COUNT() FROM Account")["totalSize"],
                      "Contact": sf.query("SELECT COUNT() FROM Contact")["totalSize"]}
    everything = sf.restful("limits/recordCount")["sObjects"]
    assert {"Account", "Contact", "OpportunityContactRole", "Task"} <= {o["name"] for o in everything}


def test_composite_answers_each_subrequest_in_order_as_one_api_call(sf: Any, sf_app: SalesforceApp) -> None:
    before = sf_app.api_calls
    body = {"allOrNone": False, "compositeRequest": [
        _describe_subrequest("Account"), _describe_subrequest("Widget__c"),
        {"method": "GET", "url": f"{API}/query/?q=SELECT+Id+FROM+User+LIMIT+1", "referenceId": "oneUser"},
    ]}
    answers = sf.restful("composite", method="POST", json=body)["compositeResponse"]
    assert sf_app.api_calls == before + 1
    assert [(a["referenceId"], a["httpStatusCode"]) for a in answers] == [
        ("Account", 200), ("Widget__c", 404), ("oneUser", 200)]
    assert set(answers[0]) == {"body", "httpHeaders", "httpStatusCode", "referenceId"}
    assert answers[0]["body"] == sf.Account.describe()
    assert answers[1]["body"][0]["errorCode"] == "NOT_FOUND"
    assert answers[2]["body"]["totalSize"] == 1


def test_composite_refuses_more_than_25_subrequests_and_duplicate_reference_ids(sf: Any) -> None:
    too_many = [_describe_subrequest("Account") | {"referenceId": f"a{n}"} for n in range(26)]
    with pytest.raises(SalesforceMalformedRequest):
        sf.restful("composite", method="POST", json={"compositeRequest": too_many})
    with pytest.raises(SalesforceMalformedRequest):
        sf.restful("composite", method="POST", json={"compositeRequest": [_describe_subrequest("Account")] * 2})


def test_composite_all_or_none_rolls_back_the_writes_and_halts_the_other_subrequests(sf: Any) -> None:
    accounts = sf.query("SELECT COUNT() FROM Account")["totalSize"]
    body = {"allOrNone": True, "compositeRequest": [
        {"method": "POST", "url": f"{API}/sobjects/Account", "referenceId": "good", "body": {"Name": "Kept?"}},
        {"method": "POST", "url": f"{API}/sobjects/Account", "referenceId": "bad", "body": {"Website": "x.test"}},
    ]}
    answers = sf.restful("composite", method="POST", json=body)["compositeResponse"]
    assert [a["httpStatusCode"] for a in answers] == [400, 400]
    assert [a["body"][0]["errorCode"] for a in answers] == ["PROCESSING_HALTED", "REQUIRED_FIELD_MISSING"]
    assert sf.query("SELECT COUNT() FROM Account")["totalSize"] == accounts


def test_an_object_the_user_lost_access_to_is_still_counted_but_cannot_be_described_or_queried(
    sf: Any, sf_app: SalesforceApp
) -> None:
    sf_app.revoke_access("Task")
    with pytest.raises(SalesforceResourceNotFound):
        sf.Task.describe()
    with pytest.raises(SalesforceMalformedRequest, match="INVALID_TYPE"):
        sf.query("SELECT Id FROM Task")
    assert [o["name"] for o in sf.restful("limits/recordCount", params={"sObjects": "Task"})["sObjects"]] == ["Task"]
    sf_app.reset()
    assert sf.Task.describe()["name"] == "Task"


# -- the connector's backfill preflight ----------------------------------------------------------------------------


def _connector(sandbox: Sandbox, threshold: int = THRESHOLD) -> SalesforceConnector:
    limits = LimitsConfig(salesforce={"bulk_threshold": threshold}, http={"backoff_base_seconds": 0.001})
    client = SalesforceClient(Credentials.from_env(sandbox.env()), limits=limits, bulk_poll_seconds=0)
    return SalesforceConnector(client, SalesforceSourceConfig(enabled=True), limits)


def _calls(sandbox: Sandbox) -> dict[str, int]:
    ledger = sandbox.ledger("salesforce")
    return {
        "recordCount": ledger.count("GET", f"{API}/limits/recordCount"),
        "composite": ledger.count("POST", f"{API}/composite"),
        "describe": ledger.count(path_prefix=f"{API}/sobjects"),
        "rest pages": ledger.count("GET", f"{API}/query"),  # queryAll too; a SELECT COUNT() would be one more
        "bulk jobs": ledger.count("POST", f"{API}/jobs/query"),
    }


def _read_all(connector: SalesforceConnector) -> dict[str, list[dict[str, Any]]]:
    return {s.name: [r.model_dump() for r in s.read(None)] for s in connector.streams()}


def test_a_first_backfill_asks_the_counts_and_the_describes_once_for_every_object(sf_sandbox: Sandbox) -> None:
    connector = _connector(sf_sandbox)
    bulk = _read_all(connector)
    assert {s.name: getattr(s, "backfill_mode", None) for s in connector.streams()} == BULK
    assert _calls(sf_sandbox) == {"recordCount": 1, "composite": 1, "describe": 0, "rest pages": 4, "bulk jobs": 4}
    assert connector.preflight.calls == {"accounts": 1, "contacts": 1}
    assert bulk == _read_all(_connector(sf_sandbox, threshold=0))  # every Bulk stream typed from the one Composite


def test_an_incremental_run_asks_neither_counts_nor_describes(sf_sandbox: Sandbox, tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'store.db'}")
    upgrade(engine)
    connector = _connector(sf_sandbox)
    limits = connector.limits
    assert [r.error for r in pull_all(engine, [connector], run_id="full", limits=limits) if r.error] == []
    sf_sandbox.ledger("salesforce").clear()
    assert [r.error for r in pull_all(engine, [connector], run_id="incr", limits=limits) if r.error] == []
    calls = _calls(sf_sandbox)
    assert (calls["recordCount"], calls["composite"], calls["bulk jobs"]) == (0, 0, 0)
    assert connector.preflight.calls == {}
    engine.dispose()


def test_an_object_missing_from_the_record_counts_is_counted_with_soql(
    sf_sandbox: Sandbox, sf_app: SalesforceApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    snapshot = sf_app._record_counts
    monkeypatch.setattr(sf_app, "_record_counts", lambda wanted: {
        "sObjects": [o for o in snapshot(wanted)["sObjects"] if o["name"] != "Task"]})
    connector = _connector(sf_sandbox)
    counted: list[str] = []
    count = connector.client.count

    def spy(sobject: str) -> int:
        counted.append(sobject)
        return count(sobject)

    monkeypatch.setattr(connector.client, "count", spy)
    _read_all(connector)
    assert counted == ["Task"]
    assert {s.name: getattr(s, "backfill_mode", None) for s in connector.streams()} == BULK
    # Task was not known to be large when the others were described: its describe is a second Composite call.
    assert _calls(sf_sandbox) == {"recordCount": 1, "composite": 2, "describe": 0, "rest pages": 5, "bulk jobs": 4}


def test_a_failed_describe_fails_only_its_stream_with_the_object_named(
    sf_sandbox: Sandbox, sf_app: SalesforceApp, tmp_path: Path
) -> None:
    sf_app.revoke_access("Task")
    engine = make_engine(f"sqlite:///{tmp_path / 'store.db'}")
    upgrade(engine)
    connector = _connector(sf_sandbox)
    reports = {r.stream: r for r in pull_all(engine, [connector], run_id="full", limits=connector.limits)}
    failed = {name: r.error for name, r in reports.items() if r.error}
    assert list(failed) == ["tasks"]
    assert "404 NOT_FOUND on describe of Task" in (failed["tasks"] or "")
    assert all(r.read > 0 for name, r in reports.items() if name != "tasks")
    assert _calls(sf_sandbox)["composite"] == 1
    assert _calls(sf_sandbox)["bulk jobs"] == 3  # no job for Task
    engine.dispose()
