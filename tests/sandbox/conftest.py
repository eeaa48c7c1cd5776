"""Sandbox test fixtures: the session sandbox (``sandbox_session``), reset per test (``sandbox``)."""

from __future__ import annotations

from sandbox.testing import sandbox_fixture, sandbox_session

__all__ = ["sandbox_fixture", "sandbox_session"]
