"""Writeback test fixtures: the sandbox (reset per test), the book's accounts in the store, provisioned clients."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Engine

from sandbox.runtime import Sandbox
from sandbox.testing import sandbox_fixture, sandbox_session
from tests.writeback.helpers import BookAccount, make_clients, make_config, seed_accounts

__all__ = ["sandbox_fixture", "sandbox_session"]


@pytest.fixture
def accounts(store_engine: Engine, sandbox: Sandbox) -> list[BookAccount]:
    return seed_accounts(store_engine, sandbox)


@pytest.fixture
def clients(sandbox: Sandbox) -> dict[str, Any]:
    from writeback.provision import provision

    made = make_clients(sandbox)
    report = provision(make_config(), made, apply=True)
    assert report.ok, report.to_dict()
    for name in ("salesforce", "hubspot"):
        sandbox.ledger(name).clear()
    return made
