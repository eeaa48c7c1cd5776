"""HEALTH_AGENT_CA_BUNDLE is honoured even when REQUESTS_CA_BUNDLE points elsewhere."""

from __future__ import annotations

import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests
import trustme

from core.errors import ConfigError
from core.tls import make_session


class _Hello(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        body = b"hello"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    ca = trustme.CA()
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(ctx)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hello)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    ca_path = tmp_path_factory.mktemp("ca") / "sandbox-ca.pem"
    ca.cert_pem.write_to_path(str(ca_path))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"https://127.0.0.1:{server.server_address[1]}/", ca_path
    server.shutdown()
    server.server_close()


def test_extra_ca_is_trusted_even_when_requests_ca_bundle_points_elsewhere(
    tls_server: tuple[str, Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    url, ca_path = tls_server
    other = trustme.CA()
    other_path = tmp_path / "other.pem"
    other.cert_pem.write_to_path(str(other_path))
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(other_path))
    monkeypatch.setenv("CURL_CA_BUNDLE", str(other_path))

    plain = requests.Session()
    plain.verify = str(ca_path)
    with pytest.raises(requests.exceptions.SSLError):
        plain.get(url, timeout=5)  # the trap: the environment silently wins over session.verify

    assert make_session(ca_path).get(url, timeout=5).text == "hello"


def test_without_the_extra_ca_the_server_is_not_trusted(
    tls_server: tuple[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    with pytest.raises(requests.exceptions.SSLError):
        make_session(None).get(tls_server[0], timeout=5)


def test_an_unreadable_or_non_pem_bundle_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        make_session(tmp_path / "missing.pem")
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate")
    with pytest.raises(ConfigError, match="no PEM certificate"):
        make_session(junk)
