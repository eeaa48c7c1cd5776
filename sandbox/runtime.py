"""Start the whole sandbox: build (or reuse) the book, export the warehouse, and serve Salesforce (TLS),
HubSpot, NPS and intent on loopback ports, each with its own fault state and request ledger.

``start_sandbox()`` is what ``health-agent sandbox serve``, the pytest fixture (``sandbox.testing``)
and the benchmarks call; ``Sandbox.env()`` gives the environment a plain ``health-agent run --once`` needs.
"""

from __future__ import annotations

import importlib
import logging
import signal
import tempfile
import threading
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from types import TracebackType
from typing import Any

from sandbox.book import Book, build_book
from sandbox.faults import FaultProfile, FaultState, profile
from sandbox.http import App, SandboxTokens
from sandbox.intent import IntentApp
from sandbox.nps import NpsApp
from sandbox.server import RequestLedger, SandboxCA, SandboxServer
from sandbox.warehouse import WarehouseFiles, export_warehouse

logger = logging.getLogger(__name__)

# name -> (module, class, serve over TLS, port offset from port_base)
APP_SPECS: dict[str, tuple[str, str, bool, int]] = {
    "salesforce": ("sandbox.salesforce.app", "SalesforceApp", True, 0),
    "hubspot": ("sandbox.hubspot.app", "HubSpotApp", False, 1),
    "nps": ("sandbox.nps", "NpsApp", False, 2),
    "intent": ("sandbox.intent", "IntentApp", False, 3),
}
_BUILT_IN: dict[str, type[Any]] = {"nps": NpsApp, "intent": IntentApp}


@dataclass
class Sandbox:
    """A running sandbox. Stop it with ``stop()`` or use it as a context manager."""

    book: Book
    warehouse: WarehouseFiles
    ca_path: Path
    tokens: SandboxTokens
    initial_faults: FaultProfile
    workdir: Path
    apps: dict[str, App] = field(default_factory=dict)
    servers: dict[str, SandboxServer] = field(default_factory=dict)
    missing: dict[str, str] = field(default_factory=dict)  # app name -> why it could not be loaded

    @property
    def truth_path(self) -> Path:
        return self.book.truth_path

    def url(self, name: str) -> str:
        """Base URL of an emulated API, without a trailing slash."""
        if name not in self.servers:
            reason = self.missing.get(name, "no such app")
            raise RuntimeError(f"the {name} emulator is not running: {reason}")
        return self.servers[name].url

    @property
    def salesforce_url(self) -> str:
        return self.url("salesforce")

    @property
    def hubspot_url(self) -> str:
        return self.url("hubspot")

    @property
    def nps_url(self) -> str:
        return self.url("nps")

    @property
    def intent_url(self) -> str:
        return self.url("intent")

    def ledger(self, name: str) -> RequestLedger:
        return self.servers[name].ledger

    def faults(self, name: str) -> FaultState:
        return self.servers[name].faults

    def set_faults(self, name: str, new: FaultProfile | str) -> None:
        """Change one app's fault profile at run time (a profile or a named one: none, flaky, slow, chaos)."""
        self.servers[name].faults.set(profile(new) if isinstance(new, str) else new)

    def reset(self) -> None:
        """Every app back to the book as generated, every ledger empty, every fault profile as at start."""
        for name, server in self.servers.items():
            server.faults.set(self.initial_faults)
            self.apps[name].reset()
            server.ledger.clear()

    def env(self) -> dict[str, str]:
        """The environment variables that point the agent at this sandbox (empty values for missing apps)."""

        def url_or_empty(name: str) -> str:
            return self.servers[name].url if name in self.servers else ""

        return {
            "SALESFORCE_INSTANCE_URL": url_or_empty("salesforce"),
            "SALESFORCE_ACCESS_TOKEN": self.tokens.salesforce_access_token,
            "SALESFORCE_LOGIN_URL": url_or_empty("salesforce"),
            "HUBSPOT_BASE_URL": url_or_empty("hubspot"),
            "HUBSPOT_ACCESS_TOKEN": self.tokens.hubspot_access_token,
            "NPS_BASE_URL": url_or_empty("nps"),
            "NPS_API_KEY": self.tokens.nps_api_key,
            "INTENT_BASE_URL": url_or_empty("intent"),
            "INTENT_API_KEY": self.tokens.intent_api_key,
            "HEALTH_AGENT_CA_BUNDLE": str(self.ca_path),
        }

    def stop(self) -> None:
        for server in self.servers.values():
            server.stop()
        for app in self.apps.values():
            close = getattr(app, "close", None)
            if callable(close):
                close()

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def _app_class(name: str) -> type[Any]:
    if name in _BUILT_IN:
        return _BUILT_IN[name]
    module_name, class_name, _, _ = APP_SPECS[name]
    return getattr(importlib.import_module(module_name), class_name)  # type: ignore[no-any-return]


def start_sandbox(
    accounts: int = 300,
    seed: int = 7,
    anchor: date | None = None,
    faults: str | FaultProfile = "none",
    port_base: int | None = None,
    workdir: Path | None = None,
    *,
    book_cache: Path | None = None,
    apps: tuple[str, ...] = tuple(APP_SPECS),
) -> Sandbox:
    """Build the book and start the emulators on 127.0.0.1.

    Ports are ephemeral unless ``port_base`` is given (salesforce = base, hubspot +1, nps +2, intent +3).
    ``workdir`` (default: a new temporary directory) holds the CA, the warehouse and, unless ``book_cache``
    names another directory to reuse books from, the book. An app whose module cannot be imported is
    skipped with a warning and named in ``Sandbox.missing``.
    """
    workdir = workdir or Path(tempfile.mkdtemp(prefix="sandbox-"))
    workdir.mkdir(parents=True, exist_ok=True)
    initial = profile(faults) if isinstance(faults, str) else faults
    book = build_book(accounts, seed, anchor, book_cache or workdir / "book")
    ca = SandboxCA(workdir)
    tokens = SandboxTokens()
    sandbox = Sandbox(
        book=book,
        warehouse=export_warehouse(book, workdir / "warehouse"),
        ca_path=ca.path,
        tokens=tokens,
        initial_faults=initial,
        workdir=workdir,
    )
    try:
        for name in apps:
            try:
                cls = _app_class(name)
            except ImportError as exc:
                logger.warning("sandbox: the %s emulator is not available (%s); starting without it", name, exc)
                sandbox.missing[name] = f"cannot import {APP_SPECS[name][0]}: {exc}"
                continue
            _, _, tls, offset = APP_SPECS[name]
            state = FaultState(initial)
            app: App = cls(book, state, tokens)
            server = SandboxServer(
                app, state, port=0 if port_base is None else port_base + offset,
                tls=ca.server_context() if tls else None,
            ).start()
            set_base_url = getattr(app, "set_base_url", None)
            if callable(set_base_url):
                set_base_url(server.url)
            sandbox.apps[name] = app
            sandbox.servers[name] = server
    except BaseException:
        sandbox.stop()
        raise
    logger.info("sandbox: %s", ", ".join(f"{n}={s.url}" for n, s in sandbox.servers.items()))
    return sandbox


def serve_forever(sandbox: Sandbox) -> None:
    """Block until SIGINT or SIGTERM, then stop the sandbox."""
    stopped = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        stopped.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        while not stopped.wait(0.5):
            pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        sandbox.stop()
