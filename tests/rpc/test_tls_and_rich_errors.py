"""TLS with ALPN h2, mutual TLS, and rich error details, h2rpc to h2rpc."""

from __future__ import annotations

import dataclasses
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme

import rpc
from tests.rpc.helpers import generic_server, run


async def hello(request: bytes, context: rpc.ServicerContext) -> bytes:
    return b"hello over " + context.peer().encode()


async def fail_rich(request: bytes, context: rpc.ServicerContext) -> bytes:
    raise rpc.RpcError(
        rpc.StatusCode.FAILED_PRECONDITION, "see details", status_details=b"\x08\x09\x12\x02hi"
    )


HANDLERS = {
    "Hello": rpc.unary_unary_rpc_method_handler(hello),
    "FailRich": rpc.unary_unary_rpc_method_handler(fail_rich),
}


class Pki:
    def __init__(self, tmp: Path) -> None:
        self.ca = trustme.CA()
        server_cert = self.ca.issue_cert("localhost", "127.0.0.1")
        client_cert = self.ca.issue_cert("client.example")
        self.ca_file = tmp / "ca.pem"
        self.ca.cert_pem.write_to_path(str(self.ca_file))
        self.server_chain = tmp / "server.pem"
        self.server_key = tmp / "server.key"
        server_cert.cert_chain_pems[0].write_to_path(str(self.server_chain))
        for pem in server_cert.cert_chain_pems[1:]:
            pem.write_to_path(str(self.server_chain), append=True)
        server_cert.private_key_pem.write_to_path(str(self.server_key))
        self.client_chain = b"".join(p.bytes() for p in client_cert.cert_chain_pems)
        self.client_key = client_cert.private_key_pem.bytes()


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pki]:
    yield Pki(tmp_path_factory.mktemp("pki"))


async def tls_call(server_ctx: ssl.SSLContext, channel_ctx: ssl.SSLContext, method: str) -> Any:
    server = generic_server(HANDLERS)
    port = server.add_secure_port("127.0.0.1:0", server_ctx)
    await server.start()
    try:
        async with rpc.Channel(
            f"127.0.0.1:{port}", ssl_context=channel_ctx, server_hostname="localhost"
        ) as channel:
            return await channel.unary_unary(method)(b"", timeout=10)
    finally:
        await server.stop(0)


def test_tls_call_with_certificates_from_pem_files(pki: Pki):
    server_ctx = rpc.ssl_server_context(pki.server_chain, pki.server_key)
    channel_ctx = rpc.ssl_channel_context(pki.ca_file)
    assert run(tls_call(server_ctx, channel_ctx, "/t.T/Hello")).startswith(b"hello over ipv4:")


def test_mutual_tls_accepts_a_client_certificate_and_refuses_a_client_without_one(pki: Pki):
    server_ctx = rpc.ssl_server_context(
        pki.server_chain, pki.server_key, root_certificates=pki.ca_file, require_client_auth=True
    )
    with_cert = rpc.ssl_channel_context(
        pki.ca_file.read_bytes(), private_key=pki.client_key, certificate_chain=pki.client_chain
    )
    assert run(tls_call(server_ctx, with_cert, "/t.T/Hello")).startswith(b"hello")
    server_ctx = rpc.ssl_server_context(
        pki.server_chain, pki.server_key, root_certificates=pki.ca_file, require_client_auth=True
    )
    without = rpc.ssl_channel_context(pki.ca_file)
    with pytest.raises(rpc.RpcError) as info:
        run(tls_call(server_ctx, without, "/t.T/Hello"))
    assert info.value.code() == rpc.StatusCode.UNAVAILABLE


def test_a_client_that_does_not_negotiate_alpn_h2_is_refused(pki: Pki):
    server_ctx = rpc.ssl_server_context(pki.server_chain, pki.server_key)
    plain = ssl.create_default_context(cafile=str(pki.ca_file))
    plain.set_alpn_protocols(["http/1.1"])

    async def body() -> None:
        server = generic_server(HANDLERS)
        port = server.add_secure_port("127.0.0.1:0", server_ctx)
        await server.start()
        try:
            channel = rpc.Channel(f"127.0.0.1:{port}", server_hostname="localhost")
            channel._ssl = plain  # bypass the channel's own ALPN setting, as a foreign client
            channel.settings = dataclasses.replace(channel.settings, scheme="https")
            async with channel:
                with pytest.raises(rpc.RpcError) as info:
                    await channel.unary_unary("/t.T/Hello")(b"", timeout=5)
                assert info.value.code() == rpc.StatusCode.UNAVAILABLE
        finally:
            await server.stop(0)

    run(body())


def test_untrusted_server_certificate_is_unavailable(pki: Pki):
    server_ctx = rpc.ssl_server_context(pki.server_chain, pki.server_key)
    other_ca = trustme.CA()
    channel_ctx = rpc.ssl_channel_context(other_ca.cert_pem.bytes())
    with pytest.raises(rpc.RpcError) as info:
        run(tls_call(server_ctx, channel_ctx, "/t.T/Hello"))
    assert info.value.code() == rpc.StatusCode.UNAVAILABLE


def test_status_details_travel_as_grpc_status_details_bin():
    async def body() -> None:
        server = generic_server(HANDLERS)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        try:
            async with rpc.Channel(f"127.0.0.1:{port}") as channel:
                with pytest.raises(rpc.RpcError) as info:
                    await channel.unary_unary("/t.T/FailRich")(b"")
        finally:
            await server.stop(0)
        error = info.value
        assert error.code() == rpc.StatusCode.FAILED_PRECONDITION
        assert error.status_details() == b"\x08\x09\x12\x02hi"
        assert "grpc-status-details-bin" not in dict(error.trailing_metadata())

    run(body())
