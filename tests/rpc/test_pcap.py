"""Wireshark captures (``pcap=``, ``H2RPC_PCAP``, ``rpc.PcapWriter``): what tshark decodes from
them is what our own trace of the same connection saw, frame by frame and message by message.

The sans-I/O part (pcapng blocks, TCP/IP headers, checksums, sequence numbers) is checked on its
own bytes; the rest with Debian's tshark reading captures of real calls (skipped only where
tshark is not installed: .ci/run installs it).
"""

from __future__ import annotations

import io
import ipaddress
import json
import logging
import os
import socket
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import rpc
from examples.route_guide import route_guide_h2rpc
from examples.route_guide.client import run as route_guide_calls
from examples.route_guide.server import RouteGuide
from rpc._trace import capture as _capture
from rpc._trace.pcapng import (
    Endpoint,
    TcpConversation,
    _ones_complement_sum,
    enhanced_packet,
    interface_description,
    section_header,
)
from tests.interop.peers import REPO_ROOT, peer_environment
from tests.rpc.helpers import generic_server, run, serving
from tests.rpc.tshark import (
    check_against_trace,
    client_port_of,
    decode,
    needs_tshark,
    protobuf_config,
    run_tshark,
    tcp_is_consistent,
)
from transport import ConnectionOptions
from transport.core import ConnectionCore

ROUTE_GUIDE_PROTOS = REPO_ROOT / "examples" / "route_guide"

# ====================================================================== bytes (no tools)


def _naive_sum(data: bytes) -> int:
    """RFC 1071 the slow way: add 16-bit words, fold the carries."""
    if len(data) % 2:
        data += b"\0"
    total = 0
    for i in range(0, len(data), 2):
        total += (data[i] << 8) | data[i + 1]
        total = (total & 0xFFFF) + (total >> 16)
    return total


@pytest.mark.parametrize(
    "data",
    [
        b"\x01",
        b"\xff\xff",
        b"\xff\xff\xff\xff",
        b"\x00\x01" * 3,
        os.urandom(1001),
        os.urandom(65536),
    ],
)
def test_ones_complement_sum_matches_rfc_1071(data: bytes):
    assert _ones_complement_sum(data) == _naive_sum(data)


def _blocks(data: bytes) -> list[tuple[int, bytes]]:
    """Split a little-endian pcapng file into (block type, body), checking both lengths."""
    out = []
    pos = 0
    while pos < len(data):
        block_type, total = struct.unpack_from("<II", data, pos)
        assert total % 4 == 0 and total >= 12
        assert struct.unpack_from("<I", data, pos + total - 4)[0] == total
        out.append((block_type, data[pos + 8 : pos + total - 4]))
        pos += total
    assert pos == len(data)
    return out


def test_pcapng_blocks_are_well_formed():
    data = (
        section_header(comment="c", application="a")
        + interface_description(name="h2rpc", description="d")
        + enhanced_packet(b"\x01\x02\x03", 1_700_000_000_123_456, direction=2, comment="x")
    )
    blocks = _blocks(data)
    assert [t for t, _ in blocks] == [0x0A0D0D0A, 1, 6]
    magic, major, minor = struct.unpack_from("<IHH", blocks[0][1])
    assert (magic, major, minor) == (0x1A2B3C4D, 1, 0)
    assert struct.unpack_from("<HHI", blocks[1][1]) == (1, 0, 0)  # Ethernet, no snap limit
    _, high, low, caplen, length = struct.unpack_from("<IIIII", blocks[2][1])
    assert (high << 32 | low, caplen, length) == (1_700_000_000_123_456, 3, 3)


def _ip_tcp(frame: bytes) -> tuple[bytes, bytes, bytes]:
    """(IP header, TCP header + payload, pseudo-header) of one of our Ethernet frames."""
    ethertype = struct.unpack_from("!H", frame, 12)[0]
    ip = frame[14:]
    if ethertype == 0x0800:
        header_length = (ip[0] & 0xF) * 4
        total = struct.unpack_from("!H", ip, 2)[0]
        assert total == len(ip) <= 65535
        tcp = ip[header_length:]
        pseudo = ip[12:20] + struct.pack("!xBH", 6, len(tcp))
        return ip[:header_length], tcp, pseudo
    assert ethertype == 0x86DD
    payload_length = struct.unpack_from("!H", ip, 4)[0]
    assert payload_length == len(ip) - 40 <= 65535
    tcp = ip[40:]
    pseudo = ip[8:40] + struct.pack("!IxxxB", len(tcp), 6)
    return ip[:40], tcp, pseudo


@pytest.mark.parametrize(("client", "server"), [("127.0.0.1", "10.1.2.3"), ("::1", "fe80::2")])
def test_tcp_conversation_numbers_checksums_and_segment_sizes(client: str, server: str):
    tcp = TcpConversation(Endpoint.of(client, 40001), Endpoint.of(server, 50051))
    big = os.urandom(200_000)
    frames = [
        *tcp.open(),
        *tcp.send(True, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"),
        *tcp.send(False, big),
        *tcp.send(True, b"x"),
        *tcp.close(client_first=False),
    ]
    # next sequence number expected from each port, once its SYN is seen
    expected: dict[int, int] = {}
    payload_from_server = b""
    flags_seen = []
    for frame in frames:
        ip, segment, pseudo = _ip_tcp(frame)
        if len(ip) == 20:
            assert _naive_sum(ip) == 0xFFFF  # a valid IPv4 header checksum
        assert _naive_sum(pseudo + segment) == 0xFFFF  # a valid TCP checksum
        src, dst, seq, ack, offset, flags = struct.unpack_from("!HHIIBB", segment)
        payload = segment[(offset >> 4) * 4 :]
        assert len(payload) <= tcp.max_segment
        if flags & 0x02:  # SYN
            expected[src] = (seq + 1) & 0xFFFFFFFF
        else:
            assert seq == expected[src], "sequence numbers run on from the last segment"
            expected[src] = (seq + len(payload) + (flags & 0x01)) & 0xFFFFFFFF
        if flags & 0x10 and dst in expected:
            assert ack == expected[dst], "every segment acknowledges all the peer sent"
        if src == 50051:
            payload_from_server += payload
        flags_seen.append(flags)
    assert payload_from_server == big
    assert flags_seen[:3] == [0x02, 0x12, 0x10]  # SYN, SYN-ACK, ACK
    assert flags_seen[-3:] == [0x11, 0x11, 0x10]  # FIN, FIN, ACK
    assert len(frames) == 3 + 1 + 4 + 1 + 3  # 200,000 bytes in 4 segments of <= 64 KiB


def test_ipv4_mapped_addresses_become_ipv4():
    assert Endpoint.of("::ffff:127.0.0.1", 1).address == ipaddress.ip_address("127.0.0.1")
    assert Endpoint.of("fe80::1%lo", 1).address == ipaddress.ip_address("fe80::1")
    with pytest.raises(ValueError, match="IP versions"):
        TcpConversation(Endpoint.of("::1", 1), Endpoint.of("127.0.0.1", 2))


# ====================================================================== options


def test_no_capture_no_tap_the_core_holds_none():
    assert ConnectionCore(client_side=True)._tracer is None


def test_pcap_option_values(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(_capture, "_ENV_WRITER", [None])
    path = tmp_path / "a.pcapng"
    one = rpc.Channel("127.0.0.1:1", pcap=str(path))
    two = rpc.sync.Server(pcap=path)
    writer = one._connection_options.capture
    assert isinstance(writer, rpc.PcapWriter)
    assert two._connection_options.capture is writer, "one path, one writer, one file"
    assert rpc.Channel("127.0.0.1:1")._connection_options.capture is None
    with pytest.raises(ValueError, match="already being written"):
        rpc.PcapWriter(path)  # a second writer would clobber the first's file
    with rpc.PcapWriter(tmp_path / "b.pcapng") as active:
        assert rpc.Server()._connection_options.capture is active
        assert rpc.Server(pcap=False)._connection_options.capture is None
        assert rpc.Server(pcap=writer)._connection_options.capture is writer
    assert active.closed
    given = ConnectionOptions(capture=writer)
    assert rpc.Channel("x:1", connection_options=given)._connection_options.capture is writer
    refused = rpc.Channel("x:1", connection_options=given, pcap=False)
    assert refused._connection_options.capture is None
    for bad in (True, 3):
        with pytest.raises(TypeError, match="pcap must be"):
            rpc.Channel("127.0.0.1:1", pcap=bad)
    with pytest.raises(OSError):
        rpc.Channel("127.0.0.1:1", pcap=str(tmp_path / "no" / "such" / "dir.pcapng"))
    writer.close()


def test_environment_variable_is_read_once_with_pid(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(_capture, "_ENV_WRITER", [])
    monkeypatch.setenv("H2RPC_PCAP", str(tmp_path / "env-{pid}.pcapng"))
    writer = rpc.Channel("127.0.0.1:1")._connection_options.capture
    assert isinstance(writer, rpc.PcapWriter)
    assert writer.path == str(tmp_path / f"env-{os.getpid()}.pcapng")
    monkeypatch.setenv("H2RPC_PCAP", str(tmp_path / "other.pcapng"))
    assert rpc.Server()._connection_options.capture is writer  # read once per process
    writer.close()


def test_environment_variable_naming_an_unwritable_file_warns_and_captures_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
):
    monkeypatch.setattr(_capture, "_ENV_WRITER", [])
    monkeypatch.setenv("H2RPC_PCAP", str(tmp_path / "missing" / "x.pcapng"))
    with caplog.at_level(logging.WARNING, logger="rpc._trace.capture"):
        assert rpc.Channel("127.0.0.1:1")._connection_options.capture is None
    assert "H2RPC_PCAP" in caplog.text and "no capture" in caplog.text


class _FailingFile(io.BytesIO):
    """Accepts the file header, then fails every write (a full disk)."""

    def write(self, data: Any) -> int:
        if self.tell() > 0:
            raise OSError(28, "No space left on device")
        return super().write(data)


async def _echo(request: bytes, context: rpc.ServicerContext) -> bytes:
    return request


async def _stream_echo(requests: Any, context: rpc.ServicerContext) -> Any:
    async for request in requests:
        yield request


ECHO = {
    "Echo": rpc.unary_unary_rpc_method_handler(_echo),
    "Chat": rpc.stream_stream_rpc_method_handler(_stream_echo),
}


def test_a_capture_that_cannot_write_stops_without_failing_the_calls(
    caplog: pytest.LogCaptureFixture,
):
    writer = rpc.PcapWriter(_FailingFile())

    async def main() -> list[bytes]:
        async with serving(generic_server(ECHO, pcap=False)) as target:
            async with rpc.Channel(target, pcap=writer) as channel:
                echo = channel.unary_unary("/t.T/Echo")
                return [await echo(b"one", timeout=10), await echo(b"two", timeout=10)]

    with caplog.at_level(logging.WARNING, logger="rpc._trace.capture"):
        assert run(main()) == [b"one", b"two"]
    assert "capture stopped" in caplog.text
    assert writer.closed


# ====================================================================== tshark


def _events(tracer: rpc.Tracer) -> list[dict[str, Any]]:
    """The trace in its JSON form, as ``H2RPC_TRACE=all,json`` writes it."""
    return [json.loads(line) for line in tracer.json_lines().splitlines()]


async def _route_guide(
    *, client: dict[str, Any], server: dict[str, Any], address: str = "127.0.0.1:0"
) -> int:
    server_ = rpc.Server(**server)
    route_guide_h2rpc.add_RouteGuideServicer_to_server(RouteGuide(), server_)
    port = server_.add_insecure_port(address)
    await server_.start()
    host = address.rpartition(":")[0]
    try:
        await route_guide_calls(f"{host}:{port}", say=lambda text: None, **client)
    finally:
        await server_.stop(1)
    return port


@needs_tshark
def test_client_capture_of_each_call_kind_decodes_as_the_trace_says(tmp_path: Path):
    path = tmp_path / "client.pcapng"
    writer = rpc.PcapWriter(path)
    tracer = rpc.Tracer()
    port = run(
        _route_guide(
            client={"trace": tracer, "pcap": writer}, server={"trace": False, "pcap": False}
        )
    )
    writer.close()
    config = protobuf_config(tmp_path / "ws", ROUTE_GUIDE_PROTOS)
    decoded = decode(path, http2_port=port, config_dir=config)
    client_port = client_port_of(decoded, port)
    check_against_trace(
        decoded, _events(tracer), side="client", client_port=client_port, server_port=port
    )
    tcp_is_consistent(decoded)
    paths = [v for f in decoded.frames for k, v in f.headers if k == ":path"]
    assert paths == [
        f"/routeguide.RouteGuide/{m}"
        for m in ("GetFeature", "ListFeatures", "RecordRoute", "RouteChat")
    ]
    statuses = [v for f in decoded.frames for k, v in f.headers if k == "grpc-status"]
    assert statuses == ["0"] * 4
    types = {m.type for m in decoded.messages}
    assert {"routeguide.Point", "routeguide.Feature", "routeguide.RouteNote"} <= types


@needs_tshark
def test_blocking_server_capture_with_large_messages_and_tls(tmp_path: Path):
    """The server side, on the blocking API, over TLS (the capture holds the plaintext), with
    messages larger than a TCP segment and a HTTP/2 frame."""
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    cert = ca.issue_cert("localhost")
    pem = tmp_path / "server.pem"
    cert.private_key_and_cert_chain_pem.write_to_path(str(pem))
    path = tmp_path / "server.pcapng"
    tracer = rpc.Tracer()
    writer = rpc.PcapWriter(path)

    def echo(request: bytes, context: rpc.ServicerContext) -> bytes:
        return request[::-1]

    def chat(requests: Any, context: rpc.ServicerContext) -> Any:
        for request in requests:
            yield request * 2

    server = rpc.sync.Server(
        [
            rpc.method_handlers_generic_handler(
                "t.T",
                {
                    "Echo": rpc.unary_unary_rpc_method_handler(echo),
                    "Chat": rpc.stream_stream_rpc_method_handler(chat),
                },
            )
        ],
        trace=tracer,
        pcap=writer,
    )
    port = server.add_secure_port("127.0.0.1:0", rpc.ssl_server_context(pem, pem))
    server.start()
    big = os.urandom(300_000)
    try:
        context = rpc.ssl_channel_context(ca.cert_pem.bytes())
        with rpc.sync.Channel(
            f"127.0.0.1:{port}", ssl_context=context, server_hostname="localhost", trace=False
        ) as channel:
            assert channel.unary_unary("/t.T/Echo")(big, timeout=20) == big[::-1]
            replies = list(
                channel.stream_stream("/t.T/Chat")(iter([b"a", b"b" * 70_000]), timeout=20)
            )
            assert replies == [b"aa", b"b" * 140_000]
    finally:
        server.stop(1)
    writer.close()
    # The messages are raw bytes, not protobuf: tshark's protobuf dissector, which tries them
    # anyway, throws on them, and (tshark 4.0) that loses the rest of the TCP segment's frames.
    decoded = decode(path, http2_port=port, extra=("--disable-protocol", "protobuf"))
    client_port = client_port_of(decoded, port)
    check_against_trace(
        decoded, _events(tracer), side="server", client_port=client_port, server_port=port
    )
    tcp_is_consistent(decoded)
    assert max(s[5] for s in decoded.segments) > 60_000, "big writes went as big segments"
    assert any(length > 65535 for length in (m.length for m in decoded.messages))


@needs_tshark
def test_one_file_for_both_ends_and_several_connections(tmp_path: Path):
    """Client and server of one process into one file: each connection once (the second end to
    open stays silent; its SYN's comment names the end that recorded it), each connection its
    own TCP conversation."""
    path = tmp_path / "both.pcapng"
    tracer = rpc.Tracer()
    with rpc.PcapWriter(path):
        port = run(_route_guide(client={"trace": tracer}, server={"trace": tracer}))
        run(_route_guide(client={"trace": False}, server={"trace": False}))
    decoded = decode(path)
    conversations = {frozenset(s[:2]) for s in decoded.segments}
    assert len(conversations) == 2
    client_port = next(s[0] for s in decoded.segments if s[1] == port)
    alone = tmp_path / "first.pcapng"
    run_tshark(["-r", str(path), "-Y", f"tcp.port=={client_port}", "-w", str(alone)])
    [recorder] = [
        c
        for c in run_tshark(["-r", str(alone), "-T", "fields", "-e", "frame.comment"]).split("\n")
        if c
    ]
    side = "client" if recorder.startswith("h2rpc client#") else "server"
    assert recorder == f"h2rpc {side}#1 connection"
    single = decode(alone, http2_port=port)
    check_against_trace(
        single, _events(tracer), side=side, client_port=client_port, server_port=port
    )


@needs_tshark
@pytest.mark.skipif(not hasattr(socket, "AF_UNIX"), reason="no Unix sockets")
def test_unix_socket_connection_gets_made_up_addresses_decoded_by_default(tmp_path: Path):
    """Without a port of its own, the conversation uses port 80, which Wireshark decodes as
    HTTP and, from the client preface, as HTTP/2: no decode-as needed."""
    path = tmp_path / "unix.pcapng"
    writer = rpc.PcapWriter(path)
    tracer = rpc.Tracer()

    async def main() -> None:
        async with serving(generic_server(ECHO, pcap=False), f"unix:{tmp_path}/s.sock") as target:
            async with rpc.Channel(target, pcap=writer, trace=tracer) as channel:
                assert await channel.unary_unary("/t.T/Echo")(b"hi", timeout=10) == b"hi"

    run(main())
    writer.close()
    decoded = decode(path)
    client_port = client_port_of(decoded, 80)
    check_against_trace(
        decoded, _events(tracer), side="client", client_port=client_port, server_port=80
    )


@needs_tshark
@pytest.mark.skipif(not socket.has_ipv6, reason="no IPv6 on this machine")
def test_ipv6_connection(tmp_path: Path):
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback")
    path = tmp_path / "v6.pcapng"
    tracer = rpc.Tracer()
    with rpc.PcapWriter(path) as writer:
        port = run(
            _route_guide(
                client={"trace": tracer, "pcap": writer},
                server={"trace": False, "pcap": False},
                address="[::1]:0",
            )
        )
    decoded = decode(path, http2_port=port)
    sources = run_tshark(["-r", str(path), "-T", "fields", "-e", "ipv6.src"]).split()
    assert set(sources) == {"::1"}
    check_against_trace(
        decoded,
        _events(tracer),
        side="client",
        client_port=client_port_of(decoded, port),
        server_port=port,
    )


@needs_tshark
def test_environment_variable_in_a_fresh_process(tmp_path: Path):
    """``H2RPC_PCAP=FILE`` alone, as a user sets it: the route guide example, client and server
    in one process (the demo's calls), captured."""
    path = tmp_path / "env.pcapng"
    script = (
        "import asyncio, sys\n"
        "from tests.rpc.test_pcap import _route_guide\n"
        "print(asyncio.run(_route_guide(client={}, server={})))\n"
    )
    env = peer_environment()
    env["H2RPC_PCAP"] = str(path)
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    port = int(done.stdout.split()[-1])
    decoded = decode(path, http2_port=port)
    assert next(f.headers for f in decoded.frames if f.type == 1)[2] == (
        ":path",
        "/routeguide.RouteGuide/GetFeature",
    )
    tcp_is_consistent(decoded)
