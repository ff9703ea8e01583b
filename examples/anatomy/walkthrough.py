"""Markdown from a real trace: each scenario's frames, what each is for, and its bytes.

Everything written here comes from the trace events (``rpc.TraceEvent``) of the run: the frame
headers and HPACK bytes, the message prefixes, the windows. The prose around them is fixed text
chosen by frame type, direction and scenario. Nothing time-dependent is printed (no timestamps,
no ports), so two runs give the same file, except for the lines marked ``VARIES`` (the
remaining time a ``grpc-timeout`` header carries), which ``normalize()`` drops before comparing.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import rpc
from rpc._trace.format import format_text, representation
from rpc._trace.ladder import build_ladder, render_svg
from rpc._trace.ladder.svg import standalone
from transport.core import SHUTDOWN_PING_DATA

from .scenarios import AUTHORITY, Scenario

#: The opaque data of the PING behind a graceful shutdown's first GOAWAY, as the trace shows it.
SHUTDOWN_PING_PAYLOAD = SHUTDOWN_PING_DATA.hex()

#: Appended to every line whose content may differ between two runs.
VARIES = "(varies from run to run)"

_ARROW = {"out": "→", "in": "←"}
_WHO = {"out": "client → server", "in": "server → client"}

_SETTING_MEANING = {
    "HEADER_TABLE_SIZE": "the most HPACK dynamic-table memory the sender's decoder allows",
    "ENABLE_PUSH": "no server push (gRPC never uses it)",
    "MAX_CONCURRENT_STREAMS": "how many streams (calls) the peer may have open at once",
    "INITIAL_WINDOW_SIZE": "each new stream's receive window, in bytes (HTTP/2's is 65,535)",
    "MAX_FRAME_SIZE": "the largest frame payload the sender accepts",
    "MAX_HEADER_LIST_SIZE": "the largest header list it accepts (gRPC metadata limit)",
    "ENABLE_CONNECT_PROTOCOL": "no extended CONNECT (RFC 8441); h2 sends it by default",
}

_INTROS = {
    "connect": (
        "Before the first call the channel opens a TCP connection and both ends introduce "
        "themselves. No call is sent before the server's SETTINGS have arrived, so that its "
        "limits (how many calls at once, how large a frame) are known from the first call on."
    ),
    "unary": (
        "One request, one response: the simplest call is still a whole HTTP/2 stream. The client "
        "sends a header block (the request head) and one DATA frame holding the length-prefixed "
        "request; the server answers with its own header block, one DATA frame and a trailing "
        "header block carrying the gRPC status. h2rpc encodes header blocks with HPACK's static "
        "table and literals without indexing only, so that each distinct block is encoded once "
        "and its bytes reused for every call with the same fields (the next section shows "
        "HPACK's dynamic table instead)."
    ),
    "dynamic-table": (
        "HPACK can also remember fields: a literal *with incremental indexing* adds the field "
        "to a dynamic table that the encoder and the decoder keep alike, and later blocks name "
        "it by index, in one byte. Here a second connection is opened with "
        "`connection_options=transport.ConnectionOptions(reuse_header_blocks=False)`, which "
        "makes the client use hpack's full encoder: its first request fills the table, the "
        "second is 8 bytes. (The server keeps the default.) It costs CPU per block and couples "
        "each block to every block before it, which is why h2rpc does not do it by default. "
        "The channel is closed at the end: the client says so with a GOAWAY of its own."
    ),
    "server-streaming": (
        "One request, a stream of responses: the server sends one DATA frame per message "
        "(here each message fits in one) and ends with trailers. Back on the first connection, "
        "whose blocks are encoded without the dynamic table."
    ),
    "client-streaming": (
        "A stream of requests, one response. The client does not know which request is the last "
        "when it sends it, so it ends its side with an empty DATA frame whose only content is "
        "the END_STREAM flag."
    ),
    "bidi": (
        "Streams both ways, interleaved: this client writes a note, reads the reply, writes "
        "again. Messages of both directions share the stream; each side ends its own half (the "
        "client with an empty END_STREAM DATA frame, the server with trailers)."
    ),
    "deadline": (
        "The call has a timeout of 150 ms; the client sends it as `grpc-timeout` (the time left "
        "when the request was built, rounded up). The server never answers. When the deadline "
        "passes, the client fails the call with DEADLINE_EXCEEDED and resets the stream with "
        "RST_STREAM(CANCEL); the server, which enforces the same deadline, cancels its handler "
        "when the reset arrives. (The script sends this request 50 ms after the call was made, "
        "so the server's copy of the deadline ends later than the client's and the client always "
        "acts first; otherwise either side may give up first, and both outcomes are correct "
        "gRPC: the server would then send a Trailers-Only DEADLINE_EXCEEDED.)"
    ),
    "cancel": (
        "A server-streaming call cancelled by the client after the first response: the client "
        "sends RST_STREAM(CANCEL), the server's handler is cancelled (it gets CancelledError at "
        "its next await) and nothing more is sent on the stream."
    ),
    "compressed": (
        "The same unary call compressed with gzip both ways: the client says so in "
        "`grpc-encoding` and sets the compressed flag in the message prefix; the server's "
        "handler asked for gzip too (`context.set_compression`). Both sides always list what "
        "they can decode in `grpc-accept-encoding`."
    ),
    "trailers-only": (
        "The handler fails before sending anything (here with NOT_FOUND). Having no message to "
        "send, the server answers with a single HEADERS frame that ends the stream: the response "
        "head and the trailers in one block, which gRPC calls Trailers-Only."
    ),
    "goaway": (
        "The server stops with a grace period while a call is in flight. It shuts down in two "
        "steps, as grpc-go and grpc-core do: a GOAWAY that names no last stream yet (2^31-1) "
        "and a PING at once; when the client answers the PING, a final GOAWAY naming the last "
        "stream it accepted. Calls already there (or on their way) finish, new calls go to a "
        "new connection. When the last call is done the server closes the connection."
    ),
}


#: Where the diagrams are, beside the walkthrough.
DIAGRAMS = "diagrams"


def diagram_name(number: int, scenario: Scenario) -> str:
    return f"{number:02d}-{scenario.key}.svg"


def diagrams(scenarios: list[Scenario]) -> dict[str, str]:
    """Each scenario's ladder diagram (SVG, no timestamps: the same every run but for the
    grpc-timeout value, which ``normalize_svg`` leaves out), by file name."""
    out = {}
    for number, scenario in enumerate(scenarios, 1):
        ladder = build_ladder(scenario.events)
        svg = render_svg(ladder, title=f"{number}. {scenario.title}", times=False)
        out[diagram_name(number, scenario)] = standalone(svg)
    return out


_ARROW_GROUP = re.compile(r'<g class="frame".*?</g>', re.DOTALL)


def normalize_svg(text: str) -> str:
    """A diagram without what varies between runs: the digits of an arrow that carries
    grpc-timeout (its value, and so its block's length), as ``normalize`` does for the text."""

    def mask(match: re.Match[str]) -> str:
        group = match.group(0)
        return re.sub(r"[0-9]+", "#", group) if "grpc-timeout" in group else group

    return _ARROW_GROUP.sub(mask, text)


def normalize(text: str) -> str:
    """The walkthrough without the lines that may differ between runs."""
    return "".join(line for line in text.splitlines(keepends=True) if VARIES not in line)


def _plural(n: int, one: str, many: str = "") -> str:
    return f"{n} {one}" if n == 1 else f"{n} {many or one + 's'}"


def _hex(hex_string: str) -> str:
    return " ".join(hex_string[i : i + 2] for i in range(0, len(hex_string), 2))


_VOLATILE: set[int] = set()  # id() of the events whose bytes depend on timing


def _volatile(event: rpc.TraceEvent) -> bool:
    """A header block carrying grpc-timeout, or its frame: its bytes depend on timing."""
    return id(event) in _VOLATILE


def _mark(scenario_events: list[rpc.TraceEvent]) -> None:
    """Note the frame and header block of every request head that carries grpc-timeout."""
    last_frame = None
    for event in scenario_events:
        if event.kind == "frame" and event["type"] in ("HEADERS", "CONTINUATION"):
            last_frame = event
        if event.kind == "headers" and any(f["name"] == "grpc-timeout" for f in event["fields"]):
            _VOLATILE.add(id(event))
            if last_frame is not None and last_frame.stream_id == event.stream_id:
                _VOLATILE.add(id(last_frame))


def _trace_block(events: Iterable[rpc.TraceEvent]) -> list[str]:
    """The events as ``rpc.Tracer`` prints them, timestamps cut off."""
    lines = ["```text"]
    for event in events:
        text = format_text(event)
        volatile = _volatile(event)
        for line in text.splitlines():
            line = line[13:].rstrip()  # the "  1234.567ms " column
            if volatile and (
                event.kind == "frame" or "grpc-timeout" in line or " bytes of HPACK" in line
            ):
                line += "  " + VARIES
            lines.append(line)
    lines.append("```")
    return lines


def _frame_header(event: rpc.TraceEvent) -> str:
    d = event.detail
    flag_byte = int(d["header"][8:10], 16)
    return (
        f"frame header `{_hex(d['header'])}`: length {d['length']}, type "
        f"0x{int(d['header'][6:8], 16):x} ({d['type']}), flags 0x{flag_byte:02x}"
        f"{' (' + ', '.join(d['flags']) + ')' if d['flags'] else ''}, stream {event.stream_id}"
    )


def _body(event: rpc.TraceEvent) -> str:
    d = event.detail
    if not d["length"]:
        return "payload: none"
    more = " ..." if d.get("body_truncated") else ""
    return f"payload `{_hex(d['body'])}{more}`"


class _Explainer:
    """The prose for each frame, from what it is and what came before it."""

    def __init__(self) -> None:
        self.requests = 0
        self.explained: set[str] = set()  # things said once, the first time they are seen

    def frame(self, scenario: str, event: rpc.TraceEvent, block: Any, messages: list[Any]) -> str:
        d = event.detail
        ftype = d["type"]
        out = event.direction == "out"
        sid = event.stream_id
        if sid == 0 and ftype in ("SETTINGS", "WINDOW_UPDATE"):
            key = f"{ftype} {event.direction} {d.get('ack')}"
            if key in self.explained:
                return "The same as when the first connection opened (section 1)."
            self.explained.add(key)
        if ftype == "SETTINGS":
            if d["ack"]:
                if out:
                    return (
                        "The client acknowledges the server's SETTINGS (an empty SETTINGS frame "
                        "with the ACK flag): the server may now rely on them being applied."
                    )
                return (
                    "The server acknowledges the client's SETTINGS: the client's windows and "
                    "frame size are in force on both ends."
                )
            who = "client" if out else "server"
            first = (
                "It must be the first frame after the preface. "
                if out
                else "It must be the server's first frame. "
            )
            return (
                f"The {who}'s SETTINGS: the limits it puts on what its peer sends. {first}Each "
                "entry is 6 bytes, a 16-bit identifier and a 32-bit value:\n\n"
                + "\n".join(
                    f"- `{name}` = {value}: {_SETTING_MEANING.get(name, 'an extension setting')}"
                    for name, value in d["settings"].items()
                )
            )
        if ftype == "WINDOW_UPDATE":
            window = d["window"]
            if sid == 0:
                who = "client" if out else "server"
                return (
                    f"The {who} raises its connection-level receive window by {d['increment']:,} "
                    f"to {window.get('connection', 0):,} bytes. SETTINGS_INITIAL_WINDOW_SIZE "
                    "only sizes streams; the connection window always starts at 65,535 bytes, "
                    "so a gRPC endpoint opens it wide at once, or bulk transfers would stall "
                    "waiting for credit."
                )
            return (
                f"Flow-control credit for stream {sid}: {d['increment']:,} bytes the receiver "
                "has consumed may be sent again."
            )
        if ftype == "HEADERS" and block is not None:
            return self._headers(scenario, event, block)
        if ftype == "DATA":
            return self._data(event, messages)
        if ftype == "RST_STREAM":
            if out:
                reason = {
                    "deadline": "the deadline has passed, so the client",
                    "cancel": "`call.cancel()`: the client",
                }.get(scenario, "the client")
                return (
                    f"RST_STREAM with error code {d['error']} ({d['error_code']}): {reason} "
                    "abandons the stream at once. Its 4-byte payload is the error code. The "
                    "server turns it into a cancelled handler; the client reports "
                    f"{'DEADLINE_EXCEEDED' if scenario == 'deadline' else 'CANCELLED'} itself."
                )
            return f"The server resets stream {sid} ({d['error']})."
        if ftype == "GOAWAY" and out:
            return (
                f"The client closes the connection: GOAWAY with last_stream_id "
                f"{d['last_stream_id']} (it processed no stream of the server's: in gRPC only "
                f"clients open streams) and {d['error']}. The socket is closed after it."
            )
        if ftype == "GOAWAY":
            last = d["last_stream_id"]
            if last == 2**31 - 1:
                return (
                    f"The first of the graceful shutdown's two GOAWAYs: last_stream_id {last} "
                    f"(2^31-1, the highest there is) and error code {d['error']} "
                    f"({d['error_code']}). The client must open no new stream here and sends "
                    "later calls on a new connection; but a stream it opened before reading "
                    "this may still be on its way, and the server will process it (RFC 9113 "
                    "§6.8). The 8-byte payload is the last stream id and the error code "
                    "(optional debug data would follow)."
                )
            if not self._goaways_seen:
                self._goaways_seen = True
                return (
                    f"The final GOAWAY (last_stream_id {last}, {d['error']}), sent when the "
                    "client has acknowledged the PING: every stream it opened before it read "
                    f"the first GOAWAY has arrived, and {last} is the last the server accepted. "
                    "Streams up to it still finish; any later one would be refused "
                    "(REFUSED_STREAM, safe to retry elsewhere)."
                )
            return (
                f"No call is left (or the grace period is over): the server closes the "
                f"connection, repeating the GOAWAY (last_stream_id {last}, {d['error']})."
            )
        if ftype == "PING" and d["payload"] == SHUTDOWN_PING_PAYLOAD:
            if not out:
                return (
                    "Right behind the GOAWAY, a PING. The client answers it as soon as it has "
                    "read both frames, so its acknowledgement tells the server that no stream "
                    "opened before the GOAWAY can still be on its way. The 8 bytes of opaque "
                    "data are the server's own choice, distinct from its keepalive PINGs'."
                )
            return "The client acknowledges the PING, echoing its 8 bytes."
        if ftype == "PING":
            return "A PING" + (" acknowledgement" if d["ack"] else "") + f" ({d['payload']})."
        return f"A {ftype} frame."

    _goaways_seen = False

    def _headers(self, scenario: str, event: rpc.TraceEvent, block: Any) -> str:
        d = block.detail
        fields = d["fields"]
        role = d["block"]
        sid = event.stream_id
        if role == "request":
            self.requests += 1
            text = (
                f"The request head opens stream {sid} (client streams are odd-numbered and "
                "always increasing). "
            )
            if self.requests == 1:
                text += (
                    "The pseudo-headers come first: `:method POST`, `:scheme`, `:path` (which "
                    "names the service and method) and `:authority`; then `te: trailers` (gRPC "
                    "needs trailers, and says it), `content-type: application/grpc`, "
                    "`grpc-accept-encoding` and `user-agent`. "
                )
            text += self._hpack(fields, d["length"])
            if any(f["name"] == "grpc-timeout" for f in fields):
                text += (
                    " `grpc-timeout` carries the deadline as the time left, at most 8 digits "
                    "and a unit (`u` is microseconds); its exact value, and so the size of "
                    "this block, differ a little from run to run."
                )
            if any(f["name"] == "grpc-encoding" for f in fields):
                text += " `grpc-encoding: gzip` says how compressed messages are compressed."
            return text
        if role == "response" and d["end_stream"]:
            return (
                "Trailers-Only: one HEADERS frame with END_STREAM that is the response head and "
                "the trailers at once: `:status 200`, `content-type`, then `grpc-status` and "
                "`grpc-message` (percent-encoded UTF-8). The client maps it straight to an "
                "`RpcError`. Note HTTP status 200: a gRPC error is still a successful HTTP "
                "exchange."
            )
        if role == "response":
            return (
                "The response head: `:status 200` and `content-type`; gRPC's own status comes "
                "at the end, in the trailers. " + self._hpack(fields, d["length"])
            )
        status = next((f["value"] for f in fields if f["name"] == "grpc-status"), "?")
        return (
            f"The trailers: HEADERS with END_STREAM after the data, carrying `grpc-status: "
            f"{status}`{' (OK)' if status == '0' else ''}. The call is over on both sides: the "
            f"client had already half-closed."
        )

    def _hpack(self, fields: list[dict[str, Any]], length: int) -> str:
        """How the block was encoded, in words; the longer explanations only once."""
        reps = [f["rep"] for f in fields]
        static = sum(1 for f in fields if f["rep"] == "indexed" and f["table"] == "static")
        dynamic = sum(1 for f in fields if f["rep"] == "indexed" and f["table"] == "dynamic")
        plain = reps.count("literal-without-indexing")
        added = reps.count("literal-incremental")
        parts = []
        if static:
            parts.append(
                f"{static} one-byte reference{'s' if static > 1 else ''} to the static table"
            )
        if dynamic:
            parts.append(f"{dynamic} to the dynamic table")
        if plain:
            parts.append(f"{plain} literal{'s' if plain > 1 else ''} without indexing")
        if added:
            parts.append(f"{added} literal{'s' if added > 1 else ''} added to the dynamic table")
        text = f"The block is {_plural(length, 'byte')}: {', '.join(parts)}."
        if plain and "plain" not in self.explained:
            self.explained.add("plain")
            text += (
                " A literal without indexing names its field by a static-table index when the "
                "name is there (`:path` is static entry 4) or spells it out, then spells out the "
                "value; it leaves the dynamic table alone, so the block means the same whatever "
                "was sent before it, and can be cached and reused."
            )
        if added and "added" not in self.explained:
            self.explained.add("added")
            text += (
                " Each literal with incremental indexing is Huffman-coded and becomes entry 62 "
                "of the dynamic table, pushing the older entries one index up."
            )
        if dynamic and "dynamic" not in self.explained:
            self.explained.add("dynamic")
            text += (
                " Each dynamic-table reference is one byte (0x80 | index) standing for a whole "
                "field an earlier block inserted."
            )
        return text

    def _data(self, event: rpc.TraceEvent, messages: list[Any]) -> str:
        d = event.detail
        out = event.direction == "out"
        window = d["window"]
        flow = (
            f"After it the client may still send {window.get('connection', 0):,} bytes on the "
            f"connection and {window.get('stream', 0):,} on this stream"
            if out
            else f"After it the server may still send {window.get('connection', 0):,} bytes on "
            f"the connection and {window.get('stream', 0):,} on this stream"
        )
        flow += " (flow-control windows: DATA counts against both)."
        if not messages:
            if "END_STREAM" in d["flags"] and not d["length"]:
                who = "client" if out else "server"
                return (
                    f"An empty DATA frame carrying only END_STREAM: the {who} has no more "
                    "messages to send."
                )
            return "DATA without a whole message (a piece of a larger one). " + flow
        parts = []
        for message in messages:
            m = message.detail
            who = "request" if m["role"] == "request" else "response"
            compressed = (
                f"compressed flag 1, so the {m['length']} bytes that follow are "
                f"{m['encoding']}-compressed ({m.get('decompressed_length', '?')} bytes "
                "inflated)"
                if m["compressed"]
                else f"compressed flag 0, then {m['length']} bytes of protobuf"
            )
            parts.append(f"gRPC {who} message #{m['index']}: the 5-byte prefix says {compressed}.")
            inflated = m.get("decompressed_length")
            if m["compressed"] and inflated is not None and inflated <= m["length"]:
                parts.append(
                    f"Compressed, it is larger than the {inflated} bytes it holds: gzip's 18 "
                    "bytes of header and trailer cost more than so small a message can save. "
                    "Compression pays off for large, repetitive messages, and a sender may "
                    "leave any message uncompressed (flag 0) within a compressed call."
                )
        end = ""
        if "END_STREAM" in d["flags"]:
            end = (
                " END_STREAM: that was the last request; the client's half of the stream is closed."
                if out
                else " END_STREAM: the server is done."
            )
        return " ".join(parts) + end + " " + flow


def _field_table(block: rpc.TraceEvent) -> list[str]:
    d = block.detail
    lines = ["| header field | sent as | bytes |", "|---|---|---|"]
    volatile = _volatile(block)
    for field in d["fields"]:
        value = field["value"]
        name = field["name"]
        rep = representation(field)
        mark = f" {VARIES}" if volatile and name == "grpc-timeout" else ""
        lines.append(f"| `{name}: {value}` | {rep} | `{_hex(field['bytes'])}` |{mark}")
    table = d["table"]
    who = "client's" if block.direction == "out" else "server's"
    summary = (
        f"The {who} HPACK encoder table (which the peer's decoder mirrors) afterwards: "
        f"{_plural(table['entries'], 'entry', 'entries')}, {table['size']} of "
        f"{table['max_size']} bytes (an entry costs its name and value plus 32 bytes)."
    )
    if d["evicted"]:
        summary += " Evicted: " + ", ".join(f"`{e['name']}: {e['value']}`" for e in d["evicted"])
    return [*lines, "", summary]


def _message_lines(message: rpc.TraceEvent) -> list[str]:
    m = message.detail
    prefix = m["prefix"]
    lines = [
        f"- prefix `{_hex(prefix[:2])} | {_hex(prefix[2:])}`: flag {m['flag']}, length "
        f"{m['length']}",
        f"- message bytes `{_hex(m.get('bytes', ''))}{' ...' if m.get('bytes_truncated') else ''}`",
    ]
    if m.get("text") is not None:
        lines.append(f"- decoded: `{m['type']} {{ {m['text']} }}`")
    return lines


def render(scenarios: list[Scenario]) -> str:
    """The whole walkthrough, as markdown."""
    _VOLATILE.clear()
    out = [
        "# The anatomy of gRPC calls, frame by frame",
        "",
        "<!-- Generated by `python -m examples.anatomy` from a real trace: do not edit. "
        "tests/examples/test_anatomy.py fails when it is stale. -->",
        "",
        "Generated by `python -m examples.anatomy`, which runs a route guide server and a client "
        "on one event loop, with the client's connection traced by `rpc.Tracer`, and turns the "
        "trace into this page. Every byte below was on the wire in that run. `→` is client to "
        "server, `←` server to client; byte strings are hex. The client sends "
        f"`:authority: {AUTHORITY}` whatever port the server got, so that the bytes are the "
        "same every run.",
        "",
        "Each section shows the trace as `rpc.Tracer` prints it (`H2RPC_TRACE=all`, or "
        "`trace=True`; timestamps removed here), then each frame again with what it is for and "
        "its bytes.",
        "",
    ]
    for number, scenario in enumerate(scenarios, 1):
        out.append(f"{number}. [{scenario.title}](#{_anchor(number, scenario.title)})")
    out.append("")
    explainer = _Explainer()
    for number, scenario in enumerate(scenarios, 1):
        events = [e for e in scenario.events if e.kind != "connection"]
        _mark(events)
        out += [f"## {number}. {scenario.title}", "", _INTROS[scenario.key], ""]
        out += [f"Outcome: {scenario.outcome}.", ""]
        out += [
            f"![Ladder diagram of {scenario.title}]({DIAGRAMS}/{diagram_name(number, scenario)})",
            "",
            "The ladder diagram (time flows down; open the SVG itself and hover an arrow to see "
            "the frame decoded; under it, the send windows and HPACK table sizes, row by row), "
            "then the trace as text:",
            "",
        ]
        out += _trace_block(events)
        out += ["", "Frame by frame:", ""]
        out += _frames(scenario.key, events, explainer)
    return "\n".join(out).rstrip() + "\n"


def _anchor(number: int, title: str) -> str:
    keep = "".join(c for c in f"{number}. {title}".lower() if c.isalnum() or c in " -")
    return keep.replace(" ", "-")


def _frames(key: str, events: list[rpc.TraceEvent], explainer: _Explainer) -> list[str]:
    out: list[str] = []
    i = 0
    while i < len(events):
        event = events[i]
        i += 1
        if event.kind == "preface" and "preface" in explainer.explained:
            out += ["**→ the connection preface**, as in section 1.", ""]
            continue
        if event.kind == "preface":
            explainer.explained.add("preface")
            out += [
                "**→ the connection preface** (24 bytes, not a frame)",
                "",
                "`PRI * HTTP/2.0\\r\\n\\r\\nSM\\r\\n\\r\\n`: every HTTP/2 client starts with these "
                "bytes. No HTTP/1.1 server would accept them, so a cleartext gRPC client, "
                "which talks HTTP/2 with prior knowledge (no Upgrade dance), makes it plain "
                "at once what it speaks.",
                "",
                f"bytes `{_hex(event['bytes'])}`",
                "",
            ]
            continue
        if event.kind != "frame":
            continue
        block = None
        messages = []
        while i < len(events) and events[i].kind in ("headers", "message"):
            if events[i].kind == "headers":
                block = events[i]
            else:
                messages.append(events[i])
            i += 1
        d = event.detail
        flags = f", {'|'.join(d['flags'])}" if d["flags"] else ""
        varies = f" {VARIES}" if _volatile(event) else ""
        out += [
            f"**{_ARROW[event.direction]} {d['type']}**, stream {event.stream_id}{flags}, "
            f"{_plural(d['length'], 'byte')} ({_WHO[event.direction]}){varies}",
            "",
            explainer.frame(key, event, block, messages),
            "",
            f"- {_frame_header(event)}{varies}",
        ]
        if block is None and not messages:
            out.append(f"- {_body(event)}")
        for message in messages:
            out += _message_lines(message)
        out.append("")
        if block is not None:
            out += _field_table(block)
            out.append("")
    return out
