"""The loopback server: keep-alive, TLS, the request ledger and every transport fault, around a tiny echo app."""

from __future__ import annotations

import http.client
import json
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from sandbox.faults import FaultProfile, FaultState
from sandbox.http import SandboxRequest, SandboxResponse
from sandbox.server import STATUS_RESET, SandboxCA, SandboxServer


class EchoApp:
    """Answers every request with what it received; ``/boom`` raises."""

    name = "echo"

    def __init__(self) -> None:
        self.calls = 0

    def handle(self, request: SandboxRequest) -> SandboxResponse:
        self.calls += 1
        if request.path == "/boom":
            raise RuntimeError("app bug")
        return SandboxResponse.of_json(
            200,
            {
                "method": request.method,
                "path": request.path,
                "query": request.query,
                "body": request.body.decode(),
                "auth": request.headers.get("authorization"),
            },
        )

    def reset(self) -> None:
        self.calls = 0

    def error_response(self, kind: str) -> SandboxResponse:
        status = 429 if kind == "rate_limited" else 503
        return SandboxResponse.of_json(status, {"error": kind}, {"Retry-After": "0"})


@pytest.fixture
def echo() -> Iterator[SandboxServer]:
    server = SandboxServer(EchoApp(), FaultState()).start()
    yield server
    server.stop()


@pytest.fixture
def session() -> Iterator[requests.Session]:
    s = requests.Session()
    s.trust_env = False  # REQUESTS_CA_BUNDLE is set on this machine
    yield s
    s.close()


def test_request_reaches_the_app_with_method_path_query_and_body(
    echo: SandboxServer, session: requests.Session
) -> None:
    r = session.patch(f"{echo.url}/a/b?x=1&x=2&y=", data=b'{"k":"v"}', headers={"Authorization": "Bearer t"})
    assert r.status_code == 200
    assert r.json() == {
        "method": "PATCH",
        "path": "/a/b",
        "query": {"x": ["1", "2"], "y": [""]},
        "body": '{"k":"v"}',
        "auth": "Bearer t",
    }
    assert r.headers["Content-Length"] == str(len(r.content))


def test_chunked_request_body_is_read_whole(echo: SandboxServer, session: requests.Session) -> None:
    r = session.post(f"{echo.url}/upload", data=iter([b"Id,Name\n", b"1,Acme\n"]))
    assert r.json()["body"] == "Id,Name\n1,Acme\n"


def test_keep_alive_serves_many_requests_on_one_connection(echo: SandboxServer) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", echo.port, timeout=5)
    conn.request("GET", "/first")
    first = conn.getresponse()
    first.read()
    sock = conn.sock
    for i in range(5):
        conn.request("GET", f"/again/{i}")
        response = conn.getresponse()
        assert json.loads(response.read())["path"] == f"/again/{i}"
        assert not response.will_close
    assert conn.sock is sock
    conn.close()


def test_tls_server_is_trusted_through_the_sandbox_ca_only(tmp_path: Path, session: requests.Session) -> None:
    ca = SandboxCA(tmp_path)
    server = SandboxServer(EchoApp(), tls=ca.server_context()).start()
    try:
        assert server.url.startswith("https://127.0.0.1:")
        session.verify = str(ca.path)
        assert session.get(f"{server.url}/secure").json()["path"] == "/secure"
        assert session.get(f"{server.url}/again").status_code == 200
        untrusted = requests.Session()
        untrusted.trust_env = False
        with pytest.raises(requests.exceptions.SSLError):
            untrusted.get(f"{server.url}/secure")
        context = ssl.create_default_context(cafile=str(ca.path))
        conn = http.client.HTTPSConnection("localhost", server.port, context=context, timeout=5)
        conn.request("GET", "/by-name")
        assert conn.getresponse().status == 200
        conn.close()
    finally:
        server.stop()


def test_ledger_counts_calls_by_method_path_and_status(echo: SandboxServer, session: requests.Session) -> None:
    session.get(f"{echo.url}/v1/things?page=2")
    session.get(f"{echo.url}/v1/things")
    session.post(f"{echo.url}/v1/things", json={})
    session.get(f"{echo.url}/v2/other")
    session.get(f"{echo.url}/boom")
    ledger = echo.ledger
    assert ledger.count() == 5
    assert ledger.count(method="get") == 4
    assert ledger.count(path_prefix="/v1/") == 3
    assert ledger.count(method="GET", path_prefix="/v1/things") == 2
    assert ledger.count(status=500) == 1
    assert ledger.by_endpoint() == {"GET /v1/things": 2, "GET /boom": 1, "GET /v2/other": 1, "POST /v1/things": 1}
    assert all(e.duration_ms >= 0 for e in ledger.entries())
    assert [e.path for e in ledger.entries()][:2] == ["/v1/things", "/v1/things"]
    ledger.clear()
    assert ledger.count() == 0


def test_app_exception_becomes_a_500_and_the_server_keeps_serving(
    echo: SandboxServer, session: requests.Session
) -> None:
    assert session.get(f"{echo.url}/boom").status_code == 500
    assert session.get(f"{echo.url}/fine").status_code == 200


def test_injected_rate_limit_uses_the_apps_error_body(echo: SandboxServer, session: requests.Session) -> None:
    echo.faults.set(FaultProfile(rate_429=1.0))
    r = session.get(f"{echo.url}/x")
    assert (r.status_code, r.json(), r.headers["Retry-After"]) == (429, {"error": "rate_limited"}, "0")
    assert echo.app.calls == 0  # type: ignore[attr-defined]
    assert echo.ledger.entries()[0].fault == "rate_limited"


def test_injected_server_error_uses_the_apps_error_body(echo: SandboxServer, session: requests.Session) -> None:
    echo.faults.set(FaultProfile(rate_5xx=1.0))
    r = session.get(f"{echo.url}/x")
    assert (r.status_code, r.json()) == (503, {"error": "server_error"})
    assert echo.ledger.count(status=503) == 1


def test_injected_reset_closes_the_connection_without_an_answer(echo: SandboxServer, session: requests.Session) -> None:
    echo.faults.set(FaultProfile(rate_reset=1.0))
    with pytest.raises(requests.exceptions.ConnectionError):
        session.get(f"{echo.url}/x")
    assert echo.ledger.entries()[0].status == STATUS_RESET
    echo.faults.set(FaultProfile())
    assert session.get(f"{echo.url}/x").status_code == 200  # a fresh connection works


def test_injected_timeout_stalls_past_the_clients_read_timeout(echo: SandboxServer, session: requests.Session) -> None:
    echo.faults.set(FaultProfile(rate_timeout=1.0, timeout_seconds=0.3))
    with pytest.raises(requests.exceptions.ReadTimeout):
        session.get(f"{echo.url}/slow", timeout=0.05)
    echo.faults.set(FaultProfile())
    fresh = requests.Session()
    fresh.trust_env = False
    assert fresh.get(f"{echo.url}/fast", timeout=2).status_code == 200


def test_injected_latency_is_added_to_every_call(echo: SandboxServer, session: requests.Session) -> None:
    echo.faults.set(FaultProfile(latency_ms=25))
    session.get(f"{echo.url}/x")
    session.get(f"{echo.url}/y")
    assert all(e.duration_ms >= 25 for e in echo.ledger.entries())


def test_faults_apply_only_to_the_listed_endpoints(echo: SandboxServer, session: requests.Session) -> None:
    echo.faults.set(FaultProfile(rate_429=1.0, endpoints=("/limited",)))
    assert session.get(f"{echo.url}/limited/a").status_code == 429
    assert session.get(f"{echo.url}/free").status_code == 200


def test_same_fault_seed_replays_the_same_faults(echo: SandboxServer, session: requests.Session) -> None:
    def statuses() -> list[int]:
        echo.faults.set(FaultProfile(rate_429=0.3, rate_5xx=0.2, seed=42))
        return [session.get(f"{echo.url}/x").status_code for _ in range(30)]

    first = statuses()
    assert first == statuses()
    assert {429, 503, 200} <= set(first)


def test_stop_closes_open_connections_and_frees_the_port(session: requests.Session) -> None:
    server = SandboxServer(EchoApp()).start()
    url = server.url
    assert session.get(f"{url}/x").status_code == 200
    server.stop()
    with pytest.raises(requests.exceptions.ConnectionError):
        session.get(f"{url}/x", timeout=1)  # the kept-alive connection is closed too
    fresh = requests.Session()
    fresh.trust_env = False
    with pytest.raises(requests.exceptions.ConnectionError):
        fresh.get(f"{url}/x", timeout=1)
