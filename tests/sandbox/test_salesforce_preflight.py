"""Record counts (``limits/recordCount``) and Composite: the emulator's answers through simple-salesforce."""

from __future__ import annotations

from typing import Any

import pytest
from simple_salesforce.exceptions import SalesforceMalformedRequest, SalesforceResourceNotFound

from sandbox.salesforce import SalesforceApp
from tests.sandbox.sf_helpers import sf, sf_app, sf_sandbox, sf_session

__all__ = ["sf", "sf_app", "sf_sandbox", "sf_session"]

API = "/services/data/v59.0"


def _describe_subrequest(name: str) -> dict[str, str]:
    return {"method": "GET", "url": f"{API}/sobjects/{name}/describe", "referenceId": name}


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
