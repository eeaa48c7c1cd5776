"""Bulk API 2.0 through simple-salesforce's ``sf.bulk2`` (wait=0): query jobs with CSV pages, ingest jobs."""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest
from simple_salesforce.exceptions import SalesforceOperationError

from sandbox.faults import FaultProfile
from sandbox.ids import salesforce_id
from sandbox.runtime import Sandbox
from sandbox.salesforce import SalesforceApp
from tests.sandbox.sf_helpers import sf, sf_app, sf_sandbox, sf_session

__all__ = ["sf", "sf_app", "sf_sandbox", "sf_session"]


def rows(pages: list[str]) -> list[dict[str, str]]:
    out: list[dict[str, str]] = []
    for page in pages:
        out.extend(csv.DictReader(io.StringIO(page)))
    return out


def book_accounts(sandbox: Sandbox, deleted: bool | None = None) -> int:
    conn = sandbox.book.connect()
    try:
        where = "" if deleted is None else f" WHERE is_deleted = {int(deleted)}"
        return int(conn.execute(f"SELECT COUNT(*) FROM accounts{where}").fetchone()[0])
    finally:
        conn.close()


def test_bulk_query_pages_csv_with_relationship_columns(sf: Any, sf_sandbox: Sandbox) -> None:
    pages = list(sf.bulk2.Account.query("SELECT Id, Name, Owner.Email, IsDeleted FROM Account", max_records=100, wait=0))
    records = rows(pages)
    live = book_accounts(sf_sandbox, deleted=False)
    assert len(pages) == -(-live // 100)
    assert len(records) == live
    assert list(records[0]) == ["Id", "Name", "Owner.Email", "IsDeleted"]
    assert records[0]["Id"] == salesforce_id("Account", 1)
    assert records[0]["Owner.Email"].endswith(".example")
    assert {r["IsDeleted"] for r in records} == {"false"}


def test_bulk_query_all_includes_deleted_rows(sf: Any, sf_sandbox: Sandbox) -> None:
    records = rows(list(sf.bulk2.Account.query_all("SELECT Id, IsDeleted FROM Account", wait=0)))
    assert len(records) == book_accounts(sf_sandbox)
    assert sum(r["IsDeleted"] == "true" for r in records) == book_accounts(sf_sandbox, deleted=True)


def test_query_results_carry_locator_and_record_count_headers(sf: Any, sf_sandbox: Sandbox) -> None:
    job = sf.bulk2.Contact._client.create_job("query", "SELECT Id FROM Contact")
    assert job["state"] == "UploadComplete"
    assert sf.bulk2.Contact._client.get_job(job["id"], True)["state"] == "JobComplete"
    first = sf.bulk2.Contact._client.get_query_results(job["id"], max_records=1000)
    assert first["number_of_records"] == 1000
    assert first["locator"]
    second = sf.bulk2.Contact._client.get_query_results(job["id"], first["locator"], max_records=1000)
    assert second["locator"] == ""  # the server sent the string "null"
    conn = sf_sandbox.book.connect()
    live = int(conn.execute("SELECT COUNT(*) FROM contacts WHERE is_deleted = 0").fetchone()[0])
    conn.close()
    assert first["number_of_records"] + second["number_of_records"] == live


def test_bulk_query_with_a_bad_field_is_refused(sf: Any) -> None:
    with pytest.raises(Exception, match="INVALID_FIELD"):
        list(sf.bulk2.Account.query("SELECT Id, Nope FROM Account", wait=0))


def test_bulk_update_writes_records_and_reports_failures(sf: Any, sf_app: SalesforceApp) -> None:
    good = [salesforce_id("Account", n) for n in (1, 2)]
    records = [
        {"Id": good[0], "Description": "bulk one"},
        {"Id": good[1], "Description": "bulk two"},
        {"Id": salesforce_id("Account", 99_999), "Description": "missing"},
    ]
    result = sf.bulk2.Account.update(records=records, wait=0)
    assert [(r["numberRecordsProcessed"], r["numberRecordsFailed"]) for r in result] == [(3, 1)]
    assert [(sf_app.get_record("Account", i) or {})["Description"] for i in good] == ["bulk one", "bulk two"]
    failed = list(csv.DictReader(io.StringIO(sf.bulk2.Account.get_failed_records(result[0]["job_id"]))))
    assert [f["sf__Error"].split(":")[0] for f in failed] == ["INVALID_CROSS_REFERENCE_KEY"]
    succeeded = list(csv.DictReader(io.StringIO(sf.bulk2.Account.get_successful_records(result[0]["job_id"]))))
    assert sorted(s["sf__Id"] for s in succeeded) == good
    assert {s["sf__Created"] for s in succeeded} == {"false"}


def test_bulk_upsert_on_an_external_id_inserts_then_updates(sf: Any, sf_app: SalesforceApp) -> None:
    sf.restful(
        "tooling/sobjects/CustomField",
        method="POST",
        json={"FullName": "Task.Health_Key__c", "Metadata": {"label": "Health Key", "type": "Text", "length": 80}},
    )
    first = sf.bulk2.Task.upsert(
        records=[{"Health_Key__c": "k1", "Subject": "Renewal risk"}, {"Health_Key__c": "k2", "Subject": "Low usage"}],
        external_id_field="Health_Key__c",
        wait=0,
    )
    assert [(r["numberRecordsProcessed"], r["numberRecordsFailed"]) for r in first] == [(2, 0)]
    second = sf.bulk2.Task.upsert(
        records=[{"Health_Key__c": "k1", "Subject": "Renewal risk (updated)"}],
        external_id_field="Health_Key__c",
        wait=0,
    )
    succeeded = list(csv.DictReader(io.StringIO(sf.bulk2.Task.get_successful_records(second[0]["job_id"]))))
    assert [s["sf__Created"] for s in succeeded] == ["false"]
    assert sf_app.count_tasks(created_by_api=True) == 2
    assert sf_app.count_tasks(subject="Renewal risk (updated)") == 1


def test_bulk_insert_and_delete_round_trip(sf: Any, sf_app: SalesforceApp) -> None:
    inserted = sf.bulk2.Task.insert(records=[{"Subject": f"bulk {i}"} for i in range(5)], wait=0)
    ids = [s["sf__Id"] for s in csv.DictReader(io.StringIO(sf.bulk2.Task.get_successful_records(inserted[0]["job_id"])))]
    assert len(ids) == 5
    assert sf_app.count_tasks(created_by_api=True) == 5
    deleted = sf.bulk2.Task.delete(records=[{"Id": i} for i in ids], wait=0)
    assert [(r["numberRecordsProcessed"], r["numberRecordsFailed"]) for r in deleted] == [(5, 0)]
    assert sf_app.count_tasks(created_by_api=True) == 0


def test_injected_write_failures_fail_bulk_rows(sf: Any, sf_sandbox: Sandbox) -> None:
    sf_sandbox.set_faults("salesforce", FaultProfile(write_failure_rate=1.0))
    result = sf.bulk2.Task.insert(records=[{"Subject": f"bulk {i}"} for i in range(4)], wait=0)
    assert [(r["numberRecordsProcessed"], r["numberRecordsFailed"]) for r in result] == [(4, 4)]


def test_unknown_column_fails_the_whole_job(sf: Any) -> None:
    with pytest.raises(SalesforceOperationError, match="Field name not found"):
        sf.bulk2.Account.update(records=[{"Id": salesforce_id("Account", 1), "Nope__c": "x"}], wait=0)


def test_batches_upload_is_201_and_delete_job_is_204(sf: Any, sf_sandbox: Sandbox) -> None:
    client = sf.bulk2.Account._client
    job = client.create_job("insert")
    assert job["state"] == "Open"
    url = f"{sf_sandbox.salesforce_url}/services/data/v59.0/jobs/ingest/{job['id']}"
    headers = {"Authorization": f"Bearer {sf_sandbox.tokens.salesforce_access_token}"}
    upload = sf.session.put(f"{url}/batches", data=b"Name\nAcme\n", headers={**headers, "Content-Type": "text/csv"})
    assert (upload.status_code, upload.content) == (201, b"")
    assert client.abort_job(job["id"], False)["state"] == "Aborted"
    unprocessed = sf.bulk2.Account.get_unprocessed_records(job["id"])
    assert unprocessed.splitlines() == ['"Name"', '"Acme"']
    removed = sf.session.delete(url, headers=headers)
    assert (removed.status_code, removed.content) == (204, b"")
