"""``SSLKEYLOGFILE``: the TLS secrets of our contexts, on both sides, decrypt a real capture.

A TLS call on loopback is captured with tcpdump (as root: CI runs as root; elsewhere the test
skips, saying why) and decrypted by tshark with the key log of the server alone, then of the
client alone: either shows the HTTP/2 HEADERS with the method's path, and without a key log the
capture shows no HTTP/2 at all. The server's context comes from ``rpc.ssl_server_context`` and
the client's is built by hand (``ssl.SSLContext``): neither is one the standard library would
give a key log by itself (only ``ssl.create_default_context`` reads the variable).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import rpc
from rpc import _tls
from tests.debian_tools import find_program, missing
from tests.rpc.helpers import generic_server
from tests.rpc.tshark import decode, needs_tshark, run_tshark

TCPDUMP = find_program("tcpdump")

needs_keylog = pytest.mark.skipif(
    not _tls.KEYLOG_SUPPORTED, reason="this ssl module has no key log (PyPy)"
)


def test_keylog_is_set_only_when_asked_and_never_replaces_the_applications(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
):
    monkeypatch.delenv("SSLKEYLOGFILE", raising=False)
    plain = _tls.require_alpn_h2(ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT))
    assert getattr(plain, "keylog_filename", None) is None
    wanted = tmp_path / "keys.log"
    monkeypatch.setenv("SSLKEYLOGFILE", str(wanted))
    if not _tls.KEYLOG_SUPPORTED:
        with caplog.at_level(logging.WARNING, logger="rpc._tls"):
            _tls.require_alpn_h2(ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT))
        assert "TLS secrets not logged" in caplog.text
        return
    assert _tls.require_alpn_h2(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)).keylog_filename == str(
        wanted
    )
    own = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    own.keylog_filename = str(tmp_path / "mine.log")
    assert _tls.require_alpn_h2(own).keylog_filename == str(tmp_path / "mine.log")
    monkeypatch.setenv("SSLKEYLOGFILE", str(tmp_path / "no" / "such" / "dir"))
    with caplog.at_level(logging.WARNING, logger="rpc._tls"):
        context = _tls.require_alpn_h2(ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT))
    assert context.keylog_filename is None
    assert "TLS secrets not logged" in caplog.text


class Tcpdump:
    """``tcpdump -i lo`` of one TCP port into a pcap file, for the life of a ``with`` block."""

    def __init__(self, path: Path, port: int) -> None:
        self.path = path
        self.port = port

    def __enter__(self) -> Tcpdump:
        assert TCPDUMP is not None
        only = f"tcp port {self.port}"
        self.proc = subprocess.Popen(
            [TCPDUMP, "-i", "lo", "-U", "--immediate-mode", "-w", str(self.path), only],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stderr is not None
        first = self.proc.stderr.readline()  # "listening on lo, ..." once it captures
        if "listening on" not in first:
            self.proc.kill()
            rest = self.proc.communicate(timeout=10)[1]
            pytest.skip(f"tcpdump cannot capture on lo here (CI runs as root): {first}{rest}")
        return self

    def wait_for_fins(self, count: int = 2, timeout: float = 10.0) -> None:
        """Until the capture holds the connection's end (no fixed sleep)."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                found = run_tshark(["-r", str(self.path), "-Y", "tcp.flags.fin==1"])
            except AssertionError:  # the last packet is half written: read again
                found = ""
            if len(found.splitlines()) >= count:
                return
            time.sleep(0.05)
        raise AssertionError("tcpdump did not see the connection close")

    def __exit__(self, *exc: object) -> None:
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.communicate()


@pytest.fixture
def certificates(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    pem = tmp_path / "server.pem"
    ca.issue_cert("localhost").private_key_and_cert_chain_pem.write_to_path(str(pem))
    roots = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(roots))
    yield pem, roots


async def _hello(request: bytes, context: rpc.ServicerContext) -> bytes:
    return b"hello " + request


def _sync_hello(request: bytes, context: rpc.ServicerContext) -> bytes:
    return b"hello " + request


def _headers_decrypted(capture: Path, port: int, keylog: Path) -> list[list[tuple[str, str]]]:
    """The header lists of the HEADERS frames tshark decrypts with ``keylog``."""
    decoded = decode(
        capture, extra=("-o", f"tls.keylog_file:{keylog}", "-d", f"tcp.port=={port},tls")
    )
    return [frame.headers for frame in decoded.frames if frame.type == 1]


@needs_keylog
@needs_tshark
@pytest.mark.skipif(TCPDUMP is None, reason=missing("tcpdump", "tcpdump"))
@pytest.mark.parametrize("api", ["aio", "sync"])
def test_tls_capture_decrypts_with_either_sides_key_log(
    api: str,
    certificates: tuple[Path, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
):
    pem, roots = certificates
    server_keys, client_keys = tmp_path / "server.keys", tmp_path / "client.keys"
    capture = tmp_path / "tls.pcap"
    # Each side's context is made while the variable names that side's file.
    monkeypatch.setenv("SSLKEYLOGFILE", str(server_keys))
    server_context = rpc.ssl_server_context(pem, pem)
    server: Any
    handlers = {"Hello": rpc.unary_unary_rpc_method_handler(_hello)}
    if api == "aio":
        server = generic_server(handlers, pcap=False, trace=False)
    else:
        sync_handlers = {"Hello": rpc.unary_unary_rpc_method_handler(_sync_hello)}
        server = rpc.sync.Server(
            [rpc.method_handlers_generic_handler("t.T", sync_handlers)], max_workers=2
        )
    monkeypatch.setenv("SSLKEYLOGFILE", str(client_keys))
    client_context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client_context.load_verify_locations(str(roots))

    async def aio_call(port: int) -> bytes:
        await server.start()
        try:
            async with rpc.Channel(
                f"127.0.0.1:{port}", ssl_context=client_context, server_hostname="localhost"
            ) as channel:
                return await channel.unary_unary("/t.T/Hello")(b"tls", timeout=10)
        finally:
            await server.stop(1)

    port = server.add_secure_port("127.0.0.1:0", server_context)
    with Tcpdump(capture, port) as dump:
        if api == "aio":
            reply = asyncio.run(asyncio.wait_for(aio_call(port), 30))
        else:
            server.start()
            try:
                with rpc.sync.Channel(
                    f"127.0.0.1:{port}", ssl_context=client_context, server_hostname="localhost"
                ) as channel:
                    reply = channel.unary_unary("/t.T/Hello")(b"tls", timeout=10)
            finally:
                server.stop(1)
        assert reply == b"hello tls"
        dump.wait_for_fins()
    assert server_keys.read_text().count("CLIENT_TRAFFIC_SECRET_0") == 1
    assert client_keys.read_text().count("CLIENT_TRAFFIC_SECRET_0") == 1
    for keylog in (server_keys, client_keys):
        request, response, trailers = _headers_decrypted(capture, port, keylog)
        assert request[:3] == [(":method", "POST"), (":scheme", "https"), (":path", "/t.T/Hello")]
        assert response[:2] == [(":status", "200"), ("content-type", "application/grpc")]
        assert trailers == [("grpc-status", "0")]
    # without the secrets: TLS records only
    assert _headers_decrypted(capture, port, tmp_path / "nothing.keys") == []
    protocols = run_tshark(
        ["-r", str(capture), "-d", f"tcp.port=={port},tls", "-T", "fields", "-e", "frame.protocols"]
    )
    assert "tls" in protocols and "http2" not in protocols
