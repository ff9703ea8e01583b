"""Reading captures with Debian's tshark: the HTTP/2 frames and gRPC messages it decodes.

``tshark -T json`` repeats keys (one ``http2`` layer per frame in a packet), so its output is
read with ``object_pairs_hook=list``: every object is a list of (key, value) pairs, in order.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import pytest

from tests.debian_tools import find_program, missing

TSHARK = find_program("tshark")
needs_tshark = pytest.mark.skipif(TSHARK is None, reason=missing("tshark", "tshark"))

Pairs = list[tuple[str, Any]]


@dataclass
class Frame:
    """One HTTP/2 frame as tshark decoded it; ``src_port`` is the TCP port that sent it."""

    src_port: int
    type: int
    flags: int
    stream: int
    length: int
    headers: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class Message:
    """One gRPC message as tshark's grpc dissector decoded it (protobuf too, given the .proto)."""

    src_port: int
    stream: int
    length: int
    compressed: bool
    data: bytes
    type: Optional[str]


@dataclass
class Decoded:
    frames: list[Frame]
    messages: list[Message]
    #: Per packet: (src port, dst port, TCP flags, seq, ack, payload length), raw numbers.
    segments: list[tuple[int, int, int, int, int, int]]
    magic: int


def _get(pairs: Pairs, key: str, default: Any = None) -> Any:
    for k, v in pairs:
        if k == key:
            return v
    return default


def _all(pairs: Pairs, key: str) -> list[Any]:
    return [v for k, v in pairs if k == key]


def _find(pairs: Any, key: str) -> list[Any]:
    """Every value of ``key`` anywhere under ``pairs`` (depth first, in order)."""
    found: list[Any] = []
    if isinstance(pairs, list):
        for item in pairs:
            if isinstance(item, tuple) and len(item) == 2:
                k, v = item
                if k == key:
                    found.append(v)
                else:
                    found.extend(_find(v, key))
            else:
                found.extend(_find(item, key))
    return found


def run_tshark(args: list[str], *, config_dir: Optional[Path] = None) -> str:
    assert TSHARK is not None
    env = dict(os.environ)
    with tempfile.TemporaryDirectory() as empty:
        # A config dir of our own: the user's preferences must not change what is decoded.
        env["WIRESHARK_CONFIG_DIR"] = str(config_dir or empty)
        done = subprocess.run(
            [TSHARK, *args], capture_output=True, text=True, timeout=120, env=env, check=False
        )
    assert done.returncode == 0, f"tshark {args} failed: {done.stderr}"
    return done.stdout


def protobuf_config(tmp: Path, *proto_dirs: Path) -> Path:
    """A Wireshark config dir whose protobuf dissector loads the .proto files of ``proto_dirs``
    (tshark then names each gRPC message's type, found from the call's :path)."""
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "protobuf_search_paths").write_text("".join(f'"{d}","TRUE"\n' for d in proto_dirs))
    return tmp


def decode(
    capture: Path,
    *,
    http2_port: Optional[int] = None,
    extra: tuple[str, ...] = (),
    config_dir: Optional[Path] = None,
) -> Decoded:
    """Every HTTP/2 frame and gRPC message tshark finds in ``capture``, in order."""
    args = ["-r", str(capture), "-T", "json", *extra]
    if http2_port is not None:
        args += ["-d", f"tcp.port=={http2_port},http2"]
    packets = json.loads(run_tshark(args, config_dir=config_dir), object_pairs_hook=list)
    frames: list[Frame] = []
    messages: list[Message] = []
    segments = []
    magic = 0
    for packet in packets:
        layers = _get(_get(packet, "_source"), "layers")
        tcp = _get(layers, "tcp")
        src = int(_get(tcp, "tcp.srcport"))
        segments.append(
            (
                src,
                int(_get(tcp, "tcp.dstport")),
                int(_get(tcp, "tcp.flags"), 16),
                int(_get(tcp, "tcp.seq_raw")),
                int(_get(tcp, "tcp.ack_raw")),
                int(_get(tcp, "tcp.len")),
            )
        )
        last_stream = 0
        for key, layer in layers:
            if key == "http2":
                magic += len(_find(layer, "http2.magic"))
                for stream in _find(layer, "http2.stream"):
                    if _get(stream, "http2.type") is None:
                        continue
                    frame = Frame(
                        src_port=src,
                        type=int(_get(stream, "http2.type")),
                        flags=int(_get(stream, "http2.flags"), 16),
                        stream=int(_get(stream, "http2.streamid")),
                        length=int(_get(stream, "http2.length")),
                    )
                    for header in _all(stream, "http2.header"):
                        frame.headers.append(
                            (_get(header, "http2.header.name"), _get(header, "http2.header.value"))
                        )
                    frames.append(frame)
                    last_stream = frame.stream
            elif key == "grpc":
                data = _get(layer, "grpc.message_data") or ""
                messages.append(
                    Message(
                        src_port=src,
                        stream=last_stream,
                        length=int(_get(layer, "grpc.message_length")),
                        compressed=_get(layer, "grpc.compressed_flag") == "1",
                        data=bytes.fromhex(data.replace(":", "")),
                        type=None,
                    )
                )
            elif key == "protobuf" and messages:
                names = _find(layer, "protobuf.message.name")
                if names and not names[0].startswith("<UNKNOWN>"):
                    messages[-1].type = names[0]
    return Decoded(frames, messages, segments, magic)


# ---------------------------------------------------------------------- against our trace


def client_port_of(decoded: Decoded, server_port: int) -> int:
    """The client's port, from the SYN that opens the capture's first conversation."""
    syn = decoded.segments[0]
    assert syn[2] == 0x02 and syn[1] == server_port, f"not a SYN to {server_port}: {syn}"
    return syn[0]


def tcp_is_consistent(decoded: Decoded) -> None:
    """Each conversation starts with SYN, SYN-ACK, ACK and ends with FIN, FIN, ACK."""
    conversations: dict[frozenset[int], list[tuple[int, int, int, int, int, int]]] = {}
    for segment in decoded.segments:
        conversations.setdefault(frozenset(segment[:2]), []).append(segment)
    for segments in conversations.values():
        assert [s[2] for s in segments[:3]] == [0x02, 0x12, 0x10]
        assert [s[2] for s in segments[-3:]] == [0x11, 0x11, 0x10]


def check_against_trace(
    decoded: Decoded,
    events: list[dict[str, Any]],
    *,
    side: str,
    client_port: int,
    server_port: int,
) -> None:
    """tshark's frames, header blocks and gRPC messages are those of our trace (its JSON
    lines, ``TraceEvent.to_dict()``) of the connection's ``side``, in the same order."""
    from google.protobuf import text_format

    from rpc._trace.tracer import MESSAGE_TYPES

    assert decoded.magic == 1, "the client preface, once"
    mine = [e for e in events if e["side"] == side]

    def port(e: dict[str, Any]) -> int:
        return client_port if (e["dir"] == "out") == (side == "client") else server_port

    traced = []
    for e in mine:
        if e["kind"] == "frame":
            header = bytes.fromhex(e["header"])
            length = int.from_bytes(header[:3], "big")
            traced.append((port(e), header[3], header[4], e["stream"], length))
    seen = [(f.src_port, f.type, f.flags, f.stream, f.length) for f in decoded.frames]
    assert seen == traced

    blocks = [
        (port(e), e["stream"], [(f["name"], f["value"]) for f in e["fields"]])
        for e in mine
        if e["kind"] == "headers"
    ]
    assert [(f.src_port, f.stream, f.headers) for f in decoded.frames if f.type == 1] == blocks

    messages = [e for e in mine if e["kind"] == "message"]
    assert [(m.src_port, m.stream, m.length, m.compressed) for m in decoded.messages] == [
        (port(e), e["stream"], e["length"], e["compressed"]) for e in messages
    ]
    for seen_message, e in zip(decoded.messages, messages):
        classes = MESSAGE_TYPES.lookup(e["path"]) if e["path"] else None
        if e["text"] is None or e["compressed"] or classes is None:
            continue
        parsed = classes[0 if e["role"] == "request" else 1].FromString(seen_message.data)
        assert text_format.MessageToString(parsed, as_one_line=True) == e["text"]
        if seen_message.type is not None:
            assert seen_message.type == e["type"]
