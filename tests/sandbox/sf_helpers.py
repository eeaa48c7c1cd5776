"""Fixtures for the Salesforce emulator tests: one TLS sandbox (Salesforce only, 300 accounts, so Task
paging crosses 5,000 records) per test session, reset before each test, and real simple-salesforce clients."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from typing import Any

import pytest
import requests
from simple_salesforce.api import Salesforce

from sandbox.runtime import Sandbox, start_sandbox
from sandbox.salesforce import SalesforceApp

SF_ACCOUNTS = 300
SF_SEED = 7
SF_ANCHOR = date(2026, 11, 1)


@pytest.fixture(scope="session")
def sf_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    with start_sandbox(
        accounts=SF_ACCOUNTS,
        seed=SF_SEED,
        anchor=SF_ANCHOR,
        apps=("salesforce",),
        workdir=tmp_path_factory.mktemp("sf-sandbox"),
    ) as running:
        yield running


@pytest.fixture
def sf_sandbox(sf_session: Sandbox) -> Sandbox:
    """The session's Salesforce sandbox, back at its starting state."""
    sf_session.reset()
    return sf_session


@pytest.fixture
def sf_app(sf_sandbox: Sandbox) -> SalesforceApp:
    app = sf_sandbox.apps["salesforce"]
    assert isinstance(app, SalesforceApp)
    return app


def tls_session(sandbox: Sandbox) -> requests.Session:
    """A requests Session that trusts the sandbox CA and ignores REQUESTS_CA_BUNDLE (reference §3.3)."""
    session = requests.Session()
    session.trust_env = False
    session.verify = str(sandbox.ca_path)
    return session


def direct_client(sandbox: Sandbox, token: str | None = None, **kwargs: Any) -> Any:
    """simple-salesforce with the static sandbox access token (the direct flow: no login call)."""
    return Salesforce(
        instance_url=sandbox.salesforce_url,
        session_id=token or sandbox.tokens.salesforce_access_token,
        session=tls_session(sandbox),
        version="59.0",
        **kwargs,
    )


@pytest.fixture
def sf(sf_sandbox: Sandbox) -> Any:
    return direct_client(sf_sandbox)
