"""The loopback HTTP(S) server that carries one emulated API: keep-alive, TCP_NODELAY, optional TLS, the
request ledger and transport-level fault injection (rate limits, 5xx, timeouts, resets, latency).

One ``SandboxServer`` per ``App``, each on its own port. Handler threads are daemons; ``stop()`` closes
the listening socket and returns at once.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import ssl
import threading
import time
from collections import Counter
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import trustme

from sandbox.faults import FaultState
from sandbox.http import App, SandboxRequest, SandboxResponse

logger = logging.getLogger(__name__)

STATUS_RESET = 0  # the ledger's status for a connection closed without an answer


@dataclass(frozen=True)
class LedgerEntry:
    method: str
    path: str  # without the query string
    status: int  # 0 when the connection was reset without an answer
    duration_ms: float
    fault: str | None  # the injected fault, if any: rate_limited, server_error, timeout, reset


class RequestLedger:
    """Every call an emulated API received, in arrival order; safe to read while the server runs."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: list[LedgerEntry] = []

    def record(self, entry: LedgerEntry) -> None:
        with self._lock:
            self._entries.append(entry)

    def entries(self) -> list[LedgerEntry]:
        with self._lock:
            return list(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def count(self, method: str | None = None, path_prefix: str | None = None, status: int | None = None) -> int:
        """Calls matching every given filter (method upper case, path prefix, exact status)."""
        return sum(
            1
            for e in self.entries()
            if (method is None or e.method == method.upper())
            and (path_prefix is None or e.path.startswith(path_prefix))
            and (status is None or e.status == status)
        )

    def by_endpoint(self) -> dict[str, int]:
        """Call counts keyed ``"METHOD /path"``, most called first (ties by name)."""
        counts = Counter(f"{e.method} {e.path}" for e in self.entries())
        return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))


class SandboxCA:
    """A throw-away certificate authority (trustme) and a server certificate for 127.0.0.1 and localhost."""

    def __init__(self, directory: Path) -> None:
        self._ca = trustme.CA(organization_name="crm-health-agent sandbox")
        self._leaf = self._ca.issue_cert("127.0.0.1", "localhost")
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / "sandbox-ca.pem"
        self._ca.cert_pem.write_to_path(str(self.path))

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._leaf.configure_cert(context)
        return context


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], app: App, faults: FaultState, ledger: RequestLedger) -> None:
        super().__init__(address, _Handler)
        self.app = app
        self.faults = faults
        self.ledger = ledger
        self.tls: ssl.SSLContext | None = None
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, address = super().get_request()
        if self.tls is not None:
            # The handshake runs on the handler thread at first read, so a slow client never blocks accept().
            sock = self.tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        with self._open_lock:
            self._open.add(sock)
        return sock, address

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """End every open keep-alive connection (their handler threads then finish)."""
        with self._open_lock:
            open_sockets = list(self._open)
        for sock in open_sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        logger.debug("sandbox connection from %s ended with an error", client_address, exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive; every response carries Content-Length
    disable_nagle_algorithm = True  # TCP_NODELAY: without it a request costs ~40 ms of delayed-ACK stall
    timeout = 120  # idle keep-alive connections are closed after this many seconds
    server: _HTTPServer

    def version_string(self) -> str:
        return "crm-health-agent-sandbox"

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s " + format, self.address_string(), *args)

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()

    def do_PATCH(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def do_HEAD(self) -> None:
        self._serve()

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _serve(self) -> None:
        started = time.perf_counter()
        srv = self.server
        request = SandboxRequest(
            method=self.command,
            target=self.path,
            headers={k.lower(): v for k, v in self.headers.items()},
            body=self._read_body(),
        )
        path = request.path
        fault, response = self._inject(request, path)
        if fault == "reset":
            srv.ledger.record(LedgerEntry(self.command, path, STATUS_RESET, _ms(started), fault))
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        if response is None:
            try:
                response = srv.app.handle(request)
            except Exception:
                logger.exception("sandbox app %s failed on %s %s", srv.app.name, self.command, path)
                response = SandboxResponse.of_json(500, {"message": "sandbox app error", "errorCode": "UNKNOWN"})
        # Recorded before the answer goes out, so a client that got its answer always finds the call here.
        srv.ledger.record(LedgerEntry(self.command, path, response.status, _ms(started), fault))
        self._send(response)

    def _inject(self, request: SandboxRequest, path: str) -> tuple[str | None, SandboxResponse | None]:
        """Decide the transport fault for this call (in a fixed order, so a seed replays the same faults)."""
        state = self.server.faults
        profile = state.profile
        if not profile.applies_to(path):
            return None, None
        if profile.latency_ms > 0:
            time.sleep(profile.latency_ms / 1000)
        if state.roll(profile.rate_reset):
            return "reset", None
        if state.roll(profile.rate_timeout):
            time.sleep(profile.timeout_seconds)
            return "timeout", None
        if state.roll(profile.rate_429):
            return "rate_limited", self.server.app.error_response("rate_limited")
        if state.roll(profile.rate_5xx):
            return "server_error", self.server.app.error_response("server_error")
        return None, None

    def _send(self, response: SandboxResponse) -> None:
        self.send_response(response.status)
        for name, value in response.headers.items():
            if name.lower() not in ("content-length", "connection"):
                self.send_header(name, value)
        body = b"" if self.command == "HEAD" else response.body
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        if body:
            self.wfile.write(body)


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)


class SandboxServer:
    """One app on one loopback port, plain HTTP or TLS; ``start()`` returns once it accepts connections."""

    def __init__(
        self,
        app: App,
        faults: FaultState | None = None,
        *,
        port: int = 0,
        tls: ssl.SSLContext | None = None,
        ledger: RequestLedger | None = None,
    ) -> None:
        self.app = app
        self.faults = faults or FaultState()
        self.ledger = ledger or RequestLedger()
        self._httpd = _HTTPServer(("127.0.0.1", port), app, self.faults, self.ledger)
        self._httpd.tls = tls
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        """Base URL without a trailing slash, e.g. ``https://127.0.0.1:50123``."""
        scheme = "https" if self._httpd.tls is not None else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    def start(self) -> SandboxServer:
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name=f"sandbox-{self.app.name}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._httpd.server_close()
        self._httpd.close_connections()
