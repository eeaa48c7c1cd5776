"""The HTTP endpoint of the running agent: ``/healthz`` (liveness), ``/readyz`` (readiness), ``/metrics``.

``/readyz`` answers 200 only when the store answers a query, the scheduler is alive and the last finished
run did not fail; its JSON body names every check. Served by a stdlib threading server on
``observability.listen`` (default 127.0.0.1:9464; 0.0.0.0:9464 in the container).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from sqlalchemy import Engine, select, text

from agent.metrics import CONTENT_TYPE, AgentMetrics
from core.errors import ConfigError
from store.models import Run

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Check:
    ok: bool
    detail: str


class Readiness:
    """The readiness checks: store reachable, scheduler alive, last finished run not failed."""

    def __init__(self, engine: Engine, scheduler_alive: Callable[[], bool]) -> None:
        self.engine = engine
        self.scheduler_alive = scheduler_alive

    def checks(self) -> dict[str, Check]:
        out = {"scheduler": Check(self.scheduler_alive(), "running" if self.scheduler_alive() else "not running")}
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
                last = conn.execute(
                    select(Run.status, Run.id).where(Run.status != "running").order_by(Run.started_at.desc()).limit(1)
                ).first()
        except Exception as exc:  # any driver error means the same thing here: the store does not answer
            out["store"] = Check(False, f"unreachable: {type(exc).__name__}")
            out["last_run"] = Check(False, "unknown (store unreachable)")
            return out
        out["store"] = Check(True, "reachable")
        if last is None:
            out["last_run"] = Check(True, "no run yet")
        else:
            out["last_run"] = Check(last.status != "failed", f"{last.status} ({last.id})")
        return out


def parse_listen(listen: str) -> tuple[str, int]:
    """``host:port`` -> (host, port); a bare ``:port`` listens on 127.0.0.1."""
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit():
        raise ConfigError(f"observability.listen: expected host:port, got {listen!r}")
    return (host.strip("[]") or "127.0.0.1"), int(port)


class HealthServer:
    """Serves the three endpoints in a background thread until ``stop()``."""

    def __init__(self, listen: str, *, metrics: AgentMetrics, readiness: Readiness) -> None:
        self.metrics = metrics
        self.readiness = readiness
        host, port = parse_listen(listen)
        try:
            self._httpd = ThreadingHTTPServer((host, port), self._handler())
        except OSError as exc:
            raise ConfigError(f"observability.listen: cannot listen on {listen} ({exc.strerror or exc})") from exc
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.1}, name="health-http", daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> HealthServer:
        self._thread.start()
        log.info("health and metrics endpoint on %s (/healthz, /readyz, /metrics)", self.url)
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/healthz":
                    self._send(200, b"ok\n", "text/plain; charset=utf-8")
                elif path == "/readyz":
                    checks = server.readiness.checks()
                    ready = all(c.ok for c in checks.values())
                    body: dict[str, Any] = {"ready": ready, "checks": {k: vars(v) for k, v in checks.items()}}
                    self._send(200 if ready else 503, json.dumps(body).encode() + b"\n", "application/json")
                elif path == "/metrics":
                    self._send(200, server.metrics.exposition(), CONTENT_TYPE)
                else:
                    self._send(404, b"not found\n", "text/plain; charset=utf-8")

            def _send(self, status: int, body: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                log.debug("health endpoint: " + format, *args)

        return Handler
