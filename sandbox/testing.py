"""Pytest fixtures for any test suite that needs the sandbox.

In a ``conftest.py``::

    from sandbox.testing import sandbox_fixture, sandbox_session  # noqa: F401

gives ``sandbox_session`` (started once per test session on ephemeral ports: 60 accounts, seed 7,
anchor ``SANDBOX_TEST_ANCHOR``) and ``sandbox`` (the same sandbox, reset before each test: writes undone,
ledgers empty, no faults).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date

import pytest

from sandbox.runtime import Sandbox, start_sandbox

SANDBOX_TEST_ACCOUNTS = 60
SANDBOX_TEST_SEED = 7
SANDBOX_TEST_ANCHOR = date(2026, 11, 1)


@pytest.fixture(scope="session")
def sandbox_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    """One sandbox for the whole test session."""
    with start_sandbox(
        accounts=SANDBOX_TEST_ACCOUNTS,
        seed=SANDBOX_TEST_SEED,
        anchor=SANDBOX_TEST_ANCHOR,
        workdir=tmp_path_factory.mktemp("sandbox"),
    ) as running:
        yield running


@pytest.fixture(name="sandbox")
def sandbox_fixture(sandbox_session: Sandbox) -> Sandbox:
    """The session's sandbox, back at its starting state."""
    sandbox_session.reset()
    return sandbox_session
