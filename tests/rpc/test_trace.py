"""Wire tracing (rpc.Tracer): the frames, header blocks and messages of real calls, as recorded.

The expectations are frame by frame: order, types, flags, stream ids and HPACK representations
of what h2rpc itself sends, which are deterministic given our own user-agent and metadata.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from typing import Any

import pytest

import rpc
from examples.route_guide import route_guide_pb2 as pb
from rpc._trace import tracer as _trace
from tests.interop.peers import REPO_ROOT, peer_environment
from tests.rpc.helpers import eventually, run, serving
from transport import ConnectionOptions

GUIDE = pb.DESCRIPTOR.services_by_name["RouteGuide"]
POINT = pb.Point(latitude=409146138, longitude=-746188906)
FEATURE = pb.Feature(name="Berkshire Valley", location=POINT)


class Guide:
    async def GetFeature(self, request: pb.Point, context: rpc.ServicerContext) -> pb.Feature:
        if request.latitude == 404:
            raise rpc.RpcError(rpc.StatusCode.NOT_FOUND, "nothing here")
        if request.latitude == 1:
            context.set_compression("gzip")
        return pb.Feature(name="Berkshire Valley", location=request)

    async def ListFeatures(
        self, request: pb.Rectangle, context: rpc.ServicerContext
    ) -> AsyncIterator[pb.Feature]:
        for i in range(3):
            yield pb.Feature(name=f"f{i}", location=pb.Point(latitude=i))


def _server(**options: Any) -> rpc.Server:
    server = rpc.Server(**options)
    server.add_service(GUIDE, Guide())
    return server


def _shape(events: list[rpc.TraceEvent]) -> list[tuple[str, str, int, list[str]]]:
    return [(e.direction, e["type"], e.stream_id, e["flags"]) for e in events]


def _reps(block: rpc.TraceEvent) -> list[tuple[str, str, Any]]:
    """(name, representation, index or name index) of each field of a header block."""
    return [(f["name"], f["rep"], f.get("index", f.get("name_index"))) for f in block["fields"]]


async def _unary_twice(tracer: rpc.Tracer, **channel_options: Any) -> None:
    async with serving(_server(trace=False)) as target:
        async with rpc.Channel(target, trace=tracer, **channel_options) as channel:
            stub = rpc.Stub(channel, GUIDE)
            assert (await stub.GetFeature(POINT)).name == "Berkshire Valley"
            assert (await stub.GetFeature(POINT)).name == "Berkshire Valley"
            tracer.stop()  # the GOAWAY of close() is not part of the expectations


# ---------------------------------------------------------------------------- unary


def test_unary_call_frame_by_frame_on_a_fresh_connection():
    tracer = rpc.Tracer()
    run(_unary_twice(tracer))
    assert not tracer.select("error")
    [opened] = tracer.select("connection")
    assert (opened.side, opened.conn, opened["role"]) == ("client", 1, "client")
    [preface] = tracer.select("preface")
    assert preface.direction == "out"
    assert bytes.fromhex(preface["bytes"]) == b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

    # Each direction in order (the interleaving of the two SETTINGS ACKs may vary).
    assert _shape(tracer.frames(direction="out")) == [
        ("out", "SETTINGS", 0, []),
        ("out", "WINDOW_UPDATE", 0, []),
        ("out", "SETTINGS", 0, ["ACK"]),
        ("out", "HEADERS", 1, ["END_HEADERS"]),
        ("out", "DATA", 1, ["END_STREAM"]),
        ("out", "HEADERS", 3, ["END_HEADERS"]),
        ("out", "DATA", 3, ["END_STREAM"]),
    ]
    assert _shape(tracer.frames(direction="in")) == [
        ("in", "SETTINGS", 0, []),
        ("in", "WINDOW_UPDATE", 0, []),
        ("in", "SETTINGS", 0, ["ACK"]),
        ("in", "HEADERS", 1, ["END_HEADERS"]),
        ("in", "DATA", 1, []),
        ("in", "HEADERS", 1, ["END_STREAM", "END_HEADERS"]),
        ("in", "HEADERS", 3, ["END_HEADERS"]),
        ("in", "DATA", 3, []),
        ("in", "HEADERS", 3, ["END_STREAM", "END_HEADERS"]),
    ]
    # A call's frames in wire order: request head and body, then response head, body, trailers.
    assert _shape(tracer.frames(stream_id=1)) == [
        ("out", "HEADERS", 1, ["END_HEADERS"]),
        ("out", "DATA", 1, ["END_STREAM"]),
        ("in", "HEADERS", 1, ["END_HEADERS"]),
        ("in", "DATA", 1, []),
        ("in", "HEADERS", 1, ["END_STREAM", "END_HEADERS"]),
    ]

    settings = tracer.frames(direction="out")[0]
    assert settings["settings"]["INITIAL_WINDOW_SIZE"] == 4 * 1024 * 1024
    assert settings["settings"]["ENABLE_PUSH"] == 0
    assert settings["settings"]["MAX_FRAME_SIZE"] == 64 * 1024
    window = tracer.frames(direction="out")[1]
    assert window["increment"] == 16 * 1024 * 1024 - 65_535
    assert window["window"] == {"flow": "receive", "connection": 16 * 1024 * 1024}

    # HPACK, as h2rpc encodes by default: the static table and literals without indexing
    # (each distinct block encoded once and reused), so the dynamic tables stay empty.
    request1, request2 = tracer.header_blocks(direction="out")
    assert request1["block"] == "request" and not request1["end_stream"]
    assert _reps(request1) == [
        (":method", "indexed", 3),
        (":scheme", "indexed", 6),
        (":path", "literal-without-indexing", 4),
        (":authority", "literal-without-indexing", 1),
        ("te", "literal-without-indexing", None),
        ("content-type", "literal-without-indexing", 31),
        ("grpc-accept-encoding", "literal-without-indexing", None),
        ("user-agent", "literal-without-indexing", 58),
    ]
    assert request1["fields"][0]["bytes"] == "83"  # indexed, static 3: 0x80 | 3
    assert request1["fields"][2]["bytes"].startswith("04")  # 0000 + name index 4
    assert request1["table"]["entries"] == 0
    assert [f["value"] for f in request1["fields"][:3]] == [
        "POST",
        "http",
        "/routeguide.RouteGuide/GetFeature",
    ]
    assert request2["fields"] == request1["fields"]  # the same block, byte for byte

    head1, trailers1, head2, trailers2 = tracer.header_blocks(direction="in")
    assert (head1["block"], trailers1["block"]) == ("response", "trailers")
    assert _reps(head1) == [
        (":status", "indexed", 8),
        ("content-type", "literal-without-indexing", 31),
        ("grpc-accept-encoding", "literal-without-indexing", None),
    ]
    assert _reps(trailers1) == [("grpc-status", "literal-without-indexing", None)]
    assert trailers1["end_stream"]
    assert (head2["fields"], trailers2["fields"]) == (head1["fields"], trailers1["fields"])

    # Messages: the 5-byte prefix decoded, and the protobuf text.
    requests = tracer.messages(direction="out")
    responses = tracer.messages(direction="in")
    assert [m.stream_id for m in requests] == [1, 3]
    size = POINT.ByteSize()
    request = requests[0]
    assert (request["role"], request["index"], request["flag"], request["compressed"]) == (
        "request",
        1,
        0,
        False,
    )
    assert request["length"] == size
    assert request["prefix"] == "00" + size.to_bytes(4, "big").hex()
    assert request["path"] == "/routeguide.RouteGuide/GetFeature"
    assert request["type"] == "routeguide.Point"
    assert request["text"] == "latitude: 409146138 longitude: -746188906"
    assert bytes.fromhex(request["bytes"]) == POINT.SerializeToString()
    response = responses[0]
    assert response["role"] == "response" and response["type"] == "routeguide.Feature"
    assert 'name: "Berkshire Valley"' in response["text"]

    # DATA frames carry the windows as they are after them.
    data = tracer.frames(direction="out", stream_id=1)[1]
    assert data["length"] == 5 + size
    assert data["window"] == {
        "flow": "send",
        "connection": 16 * 1024 * 1024 - data["length"],
        "stream": 4 * 1024 * 1024 - data["length"],
    }
    # Timestamps: seconds since the connection started, never decreasing.
    times = [e.t for e in tracer.events]
    assert times == sorted(times) and times[0] == 0.0


def test_hpack_dynamic_table_representations_when_blocks_are_not_reused():
    tracer = rpc.Tracer("headers")
    run(_unary_twice(tracer, connection_options=ConnectionOptions(reuse_header_blocks=False)))
    request1, request2 = tracer.header_blocks(direction="out")
    # The first request fills the client's dynamic table, Huffman-coded...
    assert _reps(request1) == [
        (":method", "indexed", 3),
        (":scheme", "indexed", 6),
        (":path", "literal-incremental", 4),
        (":authority", "literal-incremental", 1),
        ("te", "literal-incremental", None),
        ("content-type", "literal-incremental", 31),
        ("grpc-accept-encoding", "literal-incremental", None),
        ("user-agent", "literal-incremental", 58),
    ]
    assert all(f["inserted"] and f["huffman"] for f in request1["fields"][2:])
    assert request1["table"]["entries"] == 6
    # ...and the second one only points into it: one byte per field.
    assert request2["length"] == 8
    assert [f["rep"] for f in request2["fields"]] == ["indexed"] * 8
    assert [f["table"] for f in request2["fields"]] == ["static"] * 2 + ["dynamic"] * 6
    assert [f["index"] for f in request2["fields"][2:]] == [67, 66, 65, 64, 63, 62]


def test_server_streaming_call_frame_by_frame_on_both_sides():
    tracer = rpc.Tracer()

    async def main() -> None:
        async with serving(_server(trace=tracer)) as target:
            async with rpc.Channel(target, trace=tracer) as channel:
                stub = rpc.Stub(channel, GUIDE)
                names = [f.name async for f in stub.ListFeatures(pb.Rectangle())]
                assert names == ["f0", "f1", "f2"]
                tracer.stop()

    run(main())
    assert not tracer.select("error")
    client = _shape(tracer.frames(side="client", stream_id=1))
    assert client == [
        ("out", "HEADERS", 1, ["END_HEADERS"]),
        ("out", "DATA", 1, ["END_STREAM"]),
        ("in", "HEADERS", 1, ["END_HEADERS"]),
        ("in", "DATA", 1, []),
        ("in", "DATA", 1, []),
        ("in", "DATA", 1, []),
        ("in", "HEADERS", 1, ["END_STREAM", "END_HEADERS"]),
    ]
    # The server saw the same frames the other way round, byte for byte.
    flip = {"in": "out", "out": "in"}
    server_frames = tracer.frames(side="server", stream_id=1)
    assert [(flip[d], t, s, f) for d, t, s, f in _shape(server_frames)] == client
    client_bytes = [(e["header"], e["body"]) for e in tracer.frames(side="client", stream_id=1)]
    assert [(e["header"], e["body"]) for e in server_frames] == client_bytes
    # The two sides' HPACK mirrors agree on every field and its representation.
    for direction in ("out", "in"):
        mine = tracer.header_blocks(side="client", direction=direction)
        theirs = tracer.header_blocks(side="server", direction=flip[direction])
        assert [b["fields"] for b in mine] == [b["fields"] for b in theirs]
    [connection] = tracer.select("connection", side="server")
    assert connection.conn == 1

    messages = tracer.messages(side="client", direction="in")
    assert [(m["index"], m["type"], m["text"]) for m in messages] == [
        (1, "routeguide.Feature", 'name: "f0" location { }'),
        (2, "routeguide.Feature", 'name: "f1" location { latitude: 1 }'),
        (3, "routeguide.Feature", 'name: "f2" location { latitude: 2 }'),
    ]
    assert [m["text"] for m in tracer.messages(side="server", direction="out")] == [
        m["text"] for m in messages
    ]
    # The client's receive window goes down by each DATA frame's length.
    data = [e for e in tracer.frames(side="client", direction="in") if e["type"] == "DATA"]
    expected = 4 * 1024 * 1024
    for frame in data:
        expected -= frame["length"]
        assert frame["window"]["stream"] == expected


# ---------------------------------------------------------------------------- failures


def test_failed_call_is_one_trailers_only_header_block():
    tracer = rpc.Tracer()

    async def main() -> None:
        async with serving(_server()) as target:
            async with rpc.Channel(target, trace=tracer) as channel:
                with pytest.raises(rpc.RpcError) as info:
                    await rpc.Stub(channel, GUIDE).GetFeature(pb.Point(latitude=404))
                assert info.value.code() == rpc.StatusCode.NOT_FOUND
                tracer.stop()

    run(main())
    assert _shape(tracer.frames(stream_id=1)) == [
        ("out", "HEADERS", 1, ["END_HEADERS"]),
        ("out", "DATA", 1, ["END_STREAM"]),
        ("in", "HEADERS", 1, ["END_STREAM", "END_HEADERS"]),
    ]
    [block] = tracer.header_blocks(direction="in", stream_id=1)
    assert block["block"] == "response" and block["end_stream"]
    fields = {f["name"]: f["value"] for f in block["fields"]}
    assert fields[":status"] == "200"
    assert fields["grpc-status"] == "5"
    assert fields["grpc-message"] == "nothing here"
    assert not tracer.messages(direction="in")
    text = tracer.text()
    assert "response headers, Trailers-Only" in text
    assert "grpc-status: 5" in text


def test_deadline_and_cancellation_show_rst_stream_cancel():
    tracer = rpc.Tracer()

    class Slow(Guide):
        async def GetFeature(self, request: pb.Point, context: rpc.ServicerContext) -> Any:
            await asyncio.sleep(10)

    async def main() -> None:
        server = rpc.Server()
        server.add_service(GUIDE, Slow())
        async with serving(server) as target:
            async with rpc.Channel(target, trace=tracer) as channel:
                stub = rpc.Stub(channel, GUIDE)
                call = stub.GetFeature(POINT, timeout=0.2)
                with pytest.raises(rpc.RpcError) as info:
                    await call
                assert info.value.code() == rpc.StatusCode.DEADLINE_EXCEEDED
                # The client's RST_STREAM is written (it may leave after the error is raised).
                await eventually(
                    lambda: any(e["type"] == "RST_STREAM" for e in tracer.frames(stream_id=1))
                )
                tracer.stop()

    run(main())
    [head] = tracer.header_blocks(direction="out")
    timeout = [f for f in head["fields"] if f["name"] == "grpc-timeout"]
    assert timeout and timeout[0]["value"].endswith("u")
    [reset] = [e for e in tracer.frames(stream_id=1) if e["type"] == "RST_STREAM"]
    assert (reset.direction, reset["error"], reset["error_code"]) == ("out", "CANCEL", 8)
    assert re.search(r"-> RST_STREAM    s=1   len=4 +CANCEL \(0x8\)", tracer.text())


def test_compressed_messages_are_decompressed_for_display():
    tracer = rpc.Tracer()

    async def main() -> None:
        async with serving(_server()) as target:
            async with rpc.Channel(target, trace=tracer, compression="gzip") as channel:
                await rpc.Stub(channel, GUIDE).GetFeature(pb.Point(latitude=1))
                tracer.stop()

    run(main())
    request, response = tracer.messages()
    for message in (request, response):
        assert message["compressed"] and message["flag"] == 1
        assert message["encoding"] == "gzip"
        assert message["prefix"].startswith("01")
        assert bytes.fromhex(message["bytes"]).startswith(b"\x1f\x8b")  # gzip magic
    assert request["decompressed_length"] == pb.Point(latitude=1).ByteSize()
    assert request["text"] == "latitude: 1"
    assert response["type"] == "routeguide.Feature"


# ---------------------------------------------------------------------------- output forms


def _validate(value: Any, schema: dict[str, Any], path: str = "$") -> None:
    """A small JSON Schema checker: the keywords TRACE_JSON_SCHEMA uses."""
    types = {
        "object": dict,
        "array": list,
        "string": str,
        "integer": int,
        "number": (int, float),
        "boolean": bool,
        "null": type(None),
    }
    if "type" in schema:
        wanted = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        ok = any(
            isinstance(value, types[t])
            and not (t in ("integer", "number") and value is True)
            and not (t in ("integer", "number") and value is False)
            for t in wanted
        )
        assert ok, f"{path}: {value!r} is not {wanted}"
    if "const" in schema:
        assert value == schema["const"], f"{path}: {value!r} != {schema['const']!r}"
    if "enum" in schema:
        assert value in schema["enum"], f"{path}: {value!r} not in {schema['enum']}"
    if "minimum" in schema:
        assert value >= schema["minimum"], f"{path}: {value!r} < {schema['minimum']}"
    if "pattern" in schema:
        assert re.search(schema["pattern"], value), f"{path}: {value!r} !~ {schema['pattern']}"
    if isinstance(value, dict):
        for key in schema.get("required", ()):
            assert key in value, f"{path}: missing {key!r}"
        properties = schema.get("properties", {})
        for key, item in value.items():
            if key in properties:
                _validate(item, properties[key], f"{path}.{key}")
            elif isinstance(schema.get("additionalProperties"), dict):
                _validate(item, schema["additionalProperties"], f"{path}.{key}")
            else:
                assert schema.get("additionalProperties", True) is not False, f"{path}.{key}"
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            _validate(item, schema["items"], f"{path}[{i}]")
    if "oneOf" in schema:
        matches = 0
        for option in schema["oneOf"]:
            try:
                _validate(value, option, path)
            except AssertionError:
                continue
            matches += 1
        assert matches == 1, f"{path}: matches {matches} of oneOf"


def test_json_lines_follow_the_published_schema():
    out = io.StringIO()
    tracer = rpc.Tracer(output=out, format="json")

    async def main() -> None:
        async with serving(_server(trace=tracer)) as target:
            async with rpc.Channel(target, trace=tracer, compression="deflate") as channel:
                stub = rpc.Stub(channel, GUIDE)
                await stub.GetFeature(POINT)
                [f async for f in stub.ListFeatures(pb.Rectangle())]
                with pytest.raises(rpc.RpcError):
                    await stub.GetFeature(pb.Point(latitude=404))

    run(main())
    lines = out.getvalue().splitlines()
    assert len(lines) == len(tracer.events) > 40
    kinds = set()
    for line in lines:
        event = json.loads(line)
        _validate(event, rpc.TRACE_JSON_SCHEMA)
        kinds.add(event["kind"])
    assert kinds == {"connection", "preface", "frame", "headers", "message"}
    first = json.loads(lines[0])
    assert list(first)[:6] == ["kind", "side", "conn", "dir", "t", "stream"]
    # An error event too (a byte stream the tracer cannot parse).
    broken = rpc.Tracer()
    conn = broken.open_connection(client_side=False)
    conn.bytes_in(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    [error] = broken.select("error")
    _validate(error.to_dict(), rpc.TRACE_JSON_SCHEMA)


def test_text_form_is_aligned_lines_with_arrows_and_indented_details():
    tracer = rpc.Tracer()
    run(_unary_twice(tracer))
    lines = tracer.text().splitlines()
    frame_lines = [line for line in lines if " -> HEADERS " in line or " <- DATA " in line]
    assert frame_lines
    # time, connection, arrow and frame type in fixed columns
    assert {line.index("client#1") for line in frame_lines} == {13}
    assert {line.index("HEADERS" if "HEADERS" in line else "DATA") for line in frame_lines} == {26}
    text = "\n".join(lines)
    assert "\n" + " " * 30 + ":method: POST" in text
    assert "indexed (static 3)" in text
    assert "literal without indexing (name: static 4)" in text
    assert "routeguide.Point { latitude: 409146138 longitude: -746188906 }" in text


# ---------------------------------------------------------------------------- switching on


def test_tracing_is_off_by_default_and_the_core_holds_no_tracer():
    async def main() -> None:
        async with serving(_server()) as target:
            async with rpc.Channel(target) as channel:
                await rpc.Stub(channel, GUIDE).GetFeature(POINT)
                conn = channel._conn
                assert conn is not None
                assert conn.session.core._tracer is None
                assert channel._connection_options.tracer is None

    if os.environ.get("H2RPC_TRACE"):
        pytest.skip("H2RPC_TRACE is set for this run")
    run(main())


def test_context_manager_traces_what_is_created_inside_it_and_trace_false_refuses():
    async def main() -> rpc.Tracer:
        with rpc.trace("frames") as tracer:
            async with serving(_server()) as target:
                async with rpc.Channel(target) as channel:
                    await rpc.Stub(channel, GUIDE).GetFeature(POINT)
                async with rpc.Channel(target, trace=False) as untraced:
                    await rpc.Stub(untraced, GUIDE).GetFeature(POINT)
                    assert untraced._connection_options.tracer is None
        after = rpc.Channel("127.0.0.1:1")
        assert after._connection_options.tracer is not tracer
        return tracer

    tracer = run(main())
    assert tracer.kinds == frozenset({"frames"})
    assert not tracer.recording
    sides = {(e.side, e.conn) for e in tracer.frames()}
    # The server (created inside) saw both connections; only the first channel was traced.
    assert sides == {("client", 1), ("server", 1), ("server", 2)}
    assert not tracer.header_blocks() and not tracer.messages()


def test_environment_variable_is_read_once(monkeypatch: pytest.MonkeyPatch, tmp_path):
    path = tmp_path / "trace.jsonl"
    monkeypatch.setattr(_trace, "_ENV_TRACER", [])
    monkeypatch.setenv("H2RPC_TRACE", "headers,messages,json")
    monkeypatch.setenv("H2RPC_TRACE_FILE", str(path))
    tracer = _trace.tracer_from_environment()
    assert tracer is not None and tracer.kinds == {"headers", "messages"} and not tracer.keep
    monkeypatch.setenv("H2RPC_TRACE", "off")
    assert _trace.tracer_from_environment() is tracer  # read once

    async def main() -> None:
        async with serving(_server()) as target:
            async with rpc.Channel(target) as channel:
                await rpc.Stub(channel, GUIDE).GetFeature(POINT)

    run(main())
    tracer.stop()
    events = [json.loads(line) for line in path.read_text().splitlines()]
    assert {e["kind"] for e in events} >= {"headers", "message"}
    assert "frame" not in {e["kind"] for e in events}
    assert {e["side"] for e in events} == {"client", "server"}


@pytest.mark.parametrize(
    ("spec", "kinds", "unknown"),
    [
        ("frame,messages", {"messages"}, "kind 'frame'"),  # a typo: the rest is traced
        ("bogus", {"frames", "headers", "messages"}, "kind 'bogus'"),  # nothing valid: everything
        ("headers,nope,json,xyz", {"headers"}, "kinds 'nope', 'xyz'"),
    ],
)
def test_environment_variable_with_an_unknown_kind_warns_and_the_application_runs(
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    tmp_path,
    spec: str,
    kinds: set[str],
    unknown: str,
):
    monkeypatch.setattr(_trace, "_ENV_TRACER", [])
    monkeypatch.setenv("H2RPC_TRACE", spec)
    monkeypatch.setenv("H2RPC_TRACE_FILE", str(tmp_path / "trace.txt"))

    async def main() -> None:  # channels and servers are made, calls go through
        async with serving(_server()) as target:
            async with rpc.Channel(target) as channel:
                await rpc.Stub(channel, GUIDE).GetFeature(POINT)
                assert channel._connection_options.tracer is _trace._ENV_TRACER[0]

    run(main())
    tracer = _trace._ENV_TRACER[0]
    assert tracer is not None and tracer.kinds == kinds
    tracer.stop()
    [record] = [r for r in caplog.records if r.name == "rpc._trace.tracer"]
    assert record.levelno == logging.WARNING
    message = record.getMessage()
    assert f"unknown trace {unknown} ignored" in message
    assert "valid kinds: frames, headers, messages, or all" in message


def test_environment_variable_with_a_file_that_cannot_be_opened_warns_and_traces_nothing(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, tmp_path
):
    monkeypatch.setattr(_trace, "_ENV_TRACER", [])
    monkeypatch.setenv("H2RPC_TRACE", "all")
    monkeypatch.setenv("H2RPC_TRACE_FILE", str(tmp_path / "no-such-directory" / "trace.txt"))
    assert _trace.tracer_from_environment() is None
    assert "H2RPC_TRACE='all': tracing off" in caplog.text


def test_environment_variable_traces_a_process_to_stderr():
    env = peer_environment()
    env["H2RPC_TRACE"] = "all"
    script = (
        "import asyncio, rpc\n"
        "from tests.rpc.test_trace import GUIDE, POINT, _server\n"
        "from tests.rpc.helpers import serving\n"
        "async def main():\n"
        "    async with serving(_server(trace=False)) as target:\n"
        "        async with rpc.Channel(target) as channel:\n"
        "            await rpc.Stub(channel, GUIDE).GetFeature(POINT)\n"
        "asyncio.run(main())\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "client#1  -> HEADERS       s=1" in result.stderr
    assert "routeguide.Point { latitude: 409146138" in result.stderr
    assert "server#" not in result.stderr  # trace=False wins over the environment


def test_sync_api_takes_trace_too():
    tracer = rpc.Tracer()

    class SyncGuide:
        def GetFeature(self, request: pb.Point, context: Any) -> pb.Feature:
            return FEATURE

    server = rpc.sync.Server(max_workers=2, trace=tracer)
    server.add_service(GUIDE, SyncGuide())
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        with rpc.sync.Channel(f"127.0.0.1:{port}", trace=tracer) as channel:
            assert rpc.Stub(channel, GUIDE).GetFeature(POINT, timeout=10) == FEATURE
    finally:
        server.stop(1)
    for side in ("client", "server"):
        assert [m["type"] for m in tracer.messages(side=side)] == [
            "routeguide.Point",
            "routeguide.Feature",
        ]


def test_message_types_registered_by_hand_for_generic_handlers():
    tracer = rpc.Tracer()
    tracer.register_method("/custom.Svc/Echo", pb.Point, pb.Point)

    async def echo(request: bytes, context: rpc.ServicerContext) -> bytes:
        return request

    async def main() -> None:
        server = rpc.Server(
            [
                rpc.method_handlers_generic_handler(
                    "custom.Svc", {"Echo": rpc.unary_unary_rpc_method_handler(echo)}
                )
            ]
        )
        async with serving(server) as target:
            async with rpc.Channel(target, trace=tracer) as channel:
                await channel.unary_unary("/custom.Svc/Echo")(POINT.SerializeToString())
                tracer.stop()

    run(main())
    request, response = tracer.messages()
    assert request["type"] == response["type"] == "routeguide.Point"
    assert response["text"] == "latitude: 409146138 longitude: -746188906"


def test_unknown_message_types_are_shown_as_bytes():
    tracer = rpc.Tracer("messages")

    async def echo(request: bytes, context: rpc.ServicerContext) -> bytes:
        return request

    async def main() -> None:
        server = rpc.Server(
            [
                rpc.method_handlers_generic_handler(
                    "other.Svc", {"Echo": rpc.unary_unary_rpc_method_handler(echo)}
                )
            ]
        )
        async with serving(server) as target:
            async with rpc.Channel(target, trace=tracer) as channel:
                await channel.unary_unary("/other.Svc/Echo")(b"\x01\x02\x03")
                tracer.stop()

    run(main())
    request, response = tracer.messages()
    assert request["type"] is None and request["text"] is None
    assert response["bytes"] == "010203"
    assert request["bytes"] == "010203"
    assert "(message type unknown): 010203" in tracer.text()
