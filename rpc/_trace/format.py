"""The two forms of a trace: aligned human-readable lines, and JSON lines for tools.

Text: one line per event, ``time  connection  arrow  what``, with details on indented lines
below (the settings of a SETTINGS frame, each field of a header block, the protobuf text of a
message). ``->`` is sent, ``<-`` received, by the connection named (``client#1``).

JSON: one object per line, ``TraceEvent.to_dict()``; ``TRACE_JSON_SCHEMA`` is its JSON Schema.
"""

from __future__ import annotations

import json
from typing import Any

from transport.trace import TraceEvent

__all__ = ["TRACE_JSON_SCHEMA", "format_json", "format_text"]

_ARROWS = {"out": "->", "in": "<-", "": "=="}
_INDENT = " " * 30
_FIELD_WIDTH = 52
_MAX_VALUE = 100
_MAX_TEXT = 400


def format_json(event: TraceEvent) -> str:
    """One JSON line (no newline)."""
    return json.dumps(event.to_dict(), separators=(",", ":"))


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def format_text(event: TraceEvent) -> str:
    """The aligned lines of one event (no final newline)."""
    head = f"{event.t * 1000:10.3f}ms {event.label:<9} {_ARROWS.get(event.direction, '??')} "
    kind = event.kind
    d = event.detail
    if kind == "frame":
        return _frame(head, event)
    if kind == "headers":
        return _headers(head, event)
    if kind == "message":
        return _message(head, event)
    if kind == "preface":
        return head + f"{'PREFACE':<13} {bytes.fromhex(d['bytes'])!r} (24 bytes)"
    if kind == "connection":
        return head + f"connection opened ({d['role']} side)"
    return head + f"!! {d.get('error', kind)}"


def _bytes(n: int) -> str:
    return "1 byte" if n == 1 else f"{n} bytes"


def _window(window: dict[str, Any]) -> str:
    parts = []
    if "connection" in window:
        parts.append(f"connection {window['connection']}")
    if "stream" in window:
        parts.append(f"stream {window['stream']}")
    return f"{window['flow']} window: {', '.join(parts) or '(stream closed)'}"


def _frame(head: str, event: TraceEvent) -> str:
    d = event.detail
    ftype = d["type"]
    flags = "|".join(d["flags"])
    line = f"{head}{ftype:<13} s={event.stream_id:<3} len={d['length']:<5} {flags:<22}"
    notes: list[str] = []
    more: list[str] = []
    if ftype == "DATA":
        if "padding" in d:
            notes.append(f"padding {d['padding']}")
        notes.append(_window(d["window"]))
    elif ftype == "WINDOW_UPDATE":
        notes.append(f"+{d['increment']} -> {_window(d['window'])}")
    elif ftype == "SETTINGS":
        if d["settings"]:
            more.append(" ".join(f"{k}={v}" for k, v in d["settings"].items()))
        elif not d["ack"]:
            notes.append("(no settings: all defaults)")
    elif ftype == "PING":
        notes.append(f"payload {d['payload']}")
    elif ftype == "GOAWAY":
        notes.append(f"last_stream_id={d['last_stream_id']} {d['error']} (0x{d['error_code']:x})")
        if d["debug_data"]:
            notes.append(f"debug {d['debug_data']!r}")
    elif ftype == "RST_STREAM":
        notes.append(f"{d['error']} (0x{d['error_code']:x})")
    elif ftype == "PUSH_PROMISE":
        notes.append(f"promised stream {d['promised_stream_id']}")
    if "priority" in d:
        p = d["priority"]
        exclusive = ", exclusive" if p["exclusive"] else ""
        notes.append(f"depends on {p['depends_on']}, weight {p['weight']}{exclusive}")
    if notes:
        line += "  " + "; ".join(notes)
    return "\n".join([line.rstrip(), *(_INDENT + m for m in more)])


def representation(field: dict[str, Any]) -> str:
    """How an HPACK field was sent, in words: ``indexed (static 3)``, ``literal ...``."""
    rep = field["rep"]
    if rep == "indexed":
        return f"indexed ({field['table']} {field['index']})"
    words = {
        "literal-incremental": "literal with indexing",
        "literal-without-indexing": "literal without indexing",
        "literal-never-indexed": "literal never indexed",
    }[rep]
    if "name_index" in field:
        words += f" (name: {field['table']} {field['name_index']})"
    else:
        words += " (new name)"
    if field.get("huffman"):
        words += ", huffman"
    if rep == "literal-incremental":
        words += " -> added as 62" if field.get("inserted") else " -> too big for the table"
    return words


def _headers(head: str, event: TraceEvent) -> str:
    d = event.detail
    table = d["table"]
    title = "trailers" if d["block"] == "trailers" else f"{d['block']} headers"
    if d["block"] == "response" and d["end_stream"]:
        title += ", Trailers-Only"  # gRPC's name for a response that is only a header block
    if d["end_stream"]:
        title += " (ends the stream)"
    frames = f" in {d['frames']} frames" if d["frames"] > 1 else ""
    lines = [
        f"{head}  {title}: {_bytes(d['length'])} of HPACK{frames}; dynamic table "
        f"{table['entries']} entries, {table['size']}/{table['max_size']} bytes"
    ]
    for size in d["size_updates"]:
        lines.append(f"{_INDENT}(dynamic table size update: {size})")
    for field in d["fields"]:
        text = _clip(f"{field['name']}: {field['value']}", _MAX_VALUE)
        lines.append(f"{_INDENT}{text:<{_FIELD_WIDTH}} {representation(field)}")
    for gone in d["evicted"]:
        lines.append(f"{_INDENT}(evicted {_clip(gone['name'] + ': ' + gone['value'], _MAX_VALUE)})")
    return "\n".join(lines)


def _message(head: str, event: TraceEvent) -> str:
    d = event.detail
    if d["compressed"]:
        how = f"compressed ({d['encoding'] or 'no grpc-encoding!'})"
    else:
        how = "not compressed" if d["flag"] == 0 else f"invalid flag {d['flag']}"
    title = f"{d['role']} message #{d['index']}"
    if d["path"]:
        title += f" of {d['path']}"
    line = f"{head}  {title}: flag {d['flag']} {how}, length {d['length']}"
    if "decompressed_length" in d:
        line += f" ({d['decompressed_length']} decompressed)"
    lines = [line]
    if d.get("text") is not None:
        lines.append(_INDENT + _clip(f"{d['type']} {{ {d['text']} }}", _MAX_TEXT))
    elif "bytes" in d:
        shown = d["bytes"] + ("..." if d.get("bytes_truncated") else "")
        lines.append(f"{_INDENT}{d['type'] or '(message type unknown)'}: {shown or '(empty)'}")
    if "error" in d:
        lines.append(f"{_INDENT}!! {d['error']}")
    return "\n".join(lines)


# ====================================================================== JSON Schema

_INT = {"type": "integer", "minimum": 0}
_STR = {"type": "string"}
_BOOL = {"type": "boolean"}
_HEX = {"type": "string", "pattern": "^([0-9a-f]{2})*$"}
_WINDOW = {
    "type": "object",
    "required": ["flow"],
    "properties": {
        "flow": {"enum": ["send", "receive"]},
        "connection": {"type": "integer"},
        "stream": {"type": "integer"},
    },
    "additionalProperties": False,
}
_PRIORITY = {
    "type": "object",
    "required": ["depends_on", "weight", "exclusive"],
    "properties": {"depends_on": _INT, "weight": _INT, "exclusive": _BOOL},
}
_FIELD = {
    "type": "object",
    "required": ["name", "value", "rep", "bytes"],
    "properties": {
        "name": _STR,
        "value": _STR,
        "rep": {
            "enum": [
                "indexed",
                "literal-incremental",
                "literal-without-indexing",
                "literal-never-indexed",
            ]
        },
        "index": _INT,
        "name_index": _INT,
        "table": {"enum": ["static", "dynamic"]},
        "huffman": _BOOL,
        "inserted": _BOOL,
        "bytes": _HEX,
    },
    "additionalProperties": False,
}


def _kind(kind: str, required: list[str], properties: dict[str, Any]) -> dict[str, Any]:
    return {
        "properties": {"kind": {"const": kind}, **properties},
        "required": required,
    }


#: JSON Schema (draft 2020-12) of one line of ``format="json"`` output.
TRACE_JSON_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "h2rpc wire trace event",
    "type": "object",
    "required": ["kind", "side", "conn", "dir", "t", "stream"],
    "properties": {
        "kind": {"enum": ["connection", "preface", "frame", "headers", "message", "error"]},
        "side": {"enum": ["client", "server"]},
        "conn": {"type": "integer", "minimum": 1},
        "dir": {"enum": ["in", "out", ""]},
        "t": {"type": "number", "minimum": 0},
        "stream": _INT,
    },
    "oneOf": [
        _kind("connection", ["role"], {"role": {"enum": ["client", "server"]}}),
        _kind("preface", ["bytes"], {"bytes": _HEX}),
        _kind("error", ["error"], {"error": _STR}),
        _kind(
            "frame",
            ["type", "flags", "length", "header", "body"],
            {
                "type": _STR,
                "flags": {"type": "array", "items": _STR},
                "length": _INT,
                "header": _HEX,
                "body": _HEX,
                "body_truncated": _BOOL,
                "data_length": _INT,
                "padding": _INT,
                "window": _WINDOW,
                "stream_windows": {
                    "type": "object",
                    "required": ["send", "receive"],
                    "properties": {"send": {"type": "integer"}, "receive": {"type": "integer"}},
                    "additionalProperties": False,
                },
                "initial_window": {
                    "type": "object",
                    "required": ["flow", "delta"],
                    "properties": {
                        "flow": {"enum": ["send", "receive"]},
                        "delta": {"type": "integer"},
                    },
                    "additionalProperties": False,
                },
                "priority": _PRIORITY,
                "promised_stream_id": _INT,
                "ack": _BOOL,
                "settings": {"type": "object", "additionalProperties": _INT},
                "increment": _INT,
                "payload": _HEX,
                "last_stream_id": _INT,
                "error_code": _INT,
                "error": _STR,
                "debug_data": _STR,
            },
        ),
        _kind(
            "headers",
            [
                "block",
                "end_stream",
                "length",
                "frames",
                "fields",
                "size_updates",
                "evicted",
                "table",
            ],
            {
                "block": {"enum": ["request", "response", "trailers", "push-promise"]},
                "end_stream": _BOOL,
                "length": _INT,
                "frames": {"type": "integer", "minimum": 1},
                "fields": {"type": "array", "items": _FIELD},
                "size_updates": {"type": "array", "items": _INT},
                "evicted": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["name", "value"],
                        "properties": {"name": _STR, "value": _STR},
                    },
                },
                "table": {
                    "type": "object",
                    "required": ["entries", "size", "max_size"],
                    "properties": {"entries": _INT, "size": _INT, "max_size": _INT},
                },
            },
        ),
        _kind(
            "message",
            [
                "role",
                "path",
                "index",
                "flag",
                "compressed",
                "length",
                "prefix",
                "encoding",
                "type",
                "text",
            ],
            {
                "role": {"enum": ["request", "response"]},
                "path": {"type": ["string", "null"]},
                "index": {"type": "integer", "minimum": 1},
                "flag": _INT,
                "compressed": _BOOL,
                "length": _INT,
                "prefix": {"type": "string", "pattern": "^[0-9a-f]{10}$"},
                "encoding": {"type": ["string", "null"]},
                "type": {"type": ["string", "null"]},
                "text": {"type": ["string", "null"]},
                "bytes": _HEX,
                "bytes_truncated": _BOOL,
                "decompressed_length": _INT,
                "error": _STR,
            },
        ),
    ],
}
