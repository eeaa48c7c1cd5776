"""Connector contract tests run against the sandbox (real simple-salesforce and hubspot-api-client)."""

from sandbox.testing import sandbox_fixture, sandbox_session  # noqa: F401
