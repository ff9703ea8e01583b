"""What a diagram says about each frame: the one-line label on its arrow, and the details shown
on hover (the same lines ``rpc.Tracer`` prints, from ``rpc._trace.format``) and on click."""

from __future__ import annotations

from typing import Any, Optional

from transport.trace import TraceEvent

from ..format import format_text, representation
from .model import Ladder, Transfer

__all__ = ["details", "label", "title_lines"]

_COMMON = ("kind", "side", "conn", "dir", "t", "stream")
_HEAD = 26  # the "  1234.567ms client#1  -> " columns of format_text's first line
_INDENT = 30


def _event(record: dict[str, Any]) -> TraceEvent:
    detail = {k: v for k, v in record.items() if k not in _COMMON}
    return TraceEvent(
        str(record["kind"]),
        str(record["side"]),
        int(record["conn"]),
        str(record.get("dir", "")),
        float(record.get("t", 0.0)),
        int(record.get("stream", 0)),
        detail,
    )


def _text_lines(record: dict[str, Any]) -> list[str]:
    """The tracer's text form of one event, without its time and connection columns."""
    try:
        text = format_text(_event(record))
    except (KeyError, TypeError, ValueError) as exc:  # a hand-edited trace: say so, go on
        return [f"({record.get('kind')} event not shown: {type(exc).__name__}: {exc})"]
    lines = text.splitlines()
    out = [lines[0][_HEAD:].strip()]
    out += ["  " + line[_INDENT:] if line.startswith(" " * _INDENT) else line for line in lines[1:]]
    return out


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _field(block: Optional[dict[str, Any]], name: str) -> Optional[str]:
    if block is None:
        return None
    for entry in block.get("fields", []):
        if entry.get("name") == name:
            return str(entry.get("value"))
    return None


def _gist(transfer: Transfer) -> str:
    """A few words on what the frame carries."""
    kind = transfer.type
    frame = transfer.frame
    if kind == "PREFACE":
        return "PRI * HTTP/2.0 (connection preface)"
    if kind == "SETTINGS":
        if frame.get("ack"):
            return ""
        settings = frame.get("settings") or {}
        return f"{len(settings)} settings" if settings else "(all defaults)"
    if kind == "WINDOW_UPDATE":
        return f"+{int(frame.get('increment', 0)):,}"
    if kind in ("HEADERS", "CONTINUATION", "PUSH_PROMISE"):
        block = transfer.headers
        if block is None:
            return f"{frame.get('length', 0)} B of HPACK"
        size = f"{block.get('length', 0)} B HPACK"
        role = block.get("block")
        if role == "request":
            return f"{_field(block, ':method') or ''} {_field(block, ':path') or ''} · {size}"
        status = _field(block, "grpc-status")
        words = []
        if _field(block, ":status") is not None:
            words.append(f":status {_field(block, ':status')}")
        if status is not None:
            words.append(f"grpc-status {status}")
            message = _field(block, "grpc-message")
            if message:
                words.append(repr(message))
        return f"{' '.join(words) or role} · {size}"
    if kind == "DATA":
        messages = transfer.messages
        if not messages:
            return "(empty)" if not frame.get("length") else f"{frame.get('length')} B"
        first = messages[0]
        text = first.get("text")
        shown = f"{text}" if text is not None else f"{first.get('length')} B message"
        if first.get("compressed"):
            shown = f"{first.get('encoding')}: {shown}"
        more = f" (+{len(messages) - 1} more)" if len(messages) > 1 else ""
        return f"{shown or '(empty message)'}{more}"
    if kind == "RST_STREAM":
        return str(frame.get("error", ""))
    if kind == "GOAWAY":
        return f"last_stream_id={frame.get('last_stream_id')} {frame.get('error')}"
    if kind == "PING":
        return str(frame.get("payload", ""))
    return ""


def label(transfer: Transfer, ladder: Ladder, limit: int) -> str:
    """The arrow's label: type, stream, flags, and a gist of the content."""
    head = f"c{transfer.link} " if ladder.links > 1 else ""
    head += transfer.type
    if transfer.kind == "frame":
        head += f" s={transfer.stream}"
    if transfer.flags:
        head += " [" + ",".join(transfer.flags) + "]"
    gist = _gist(transfer)
    return _clip(f"{head}  {gist}" if gist else head, limit)


def title_lines(transfer: Transfer, ladder: Ladder, times: bool) -> list[str]:
    """The hover text: who sent what, when, and the tracer's decoded lines."""
    frame = transfer.frame
    what = (
        "the connection preface (24 bytes)"
        if transfer.kind == "preface"
        else (f"{transfer.type}, stream {transfer.stream}, {frame.get('length', 0)} bytes")
    )
    where = f" (connection {transfer.link})" if ladder.links > 1 else ""
    lines = [f"#{transfer.index + 1} {transfer.sender} → {transfer.receiver}{where}: {what}"]
    if times:
        seen = [
            f"{float(record.get('t', 0.0)) * 1000:.3f} ms on the {side}"
            for side, record in sorted(transfer.records.items())
        ]
        lines.append("t = " + ", ".join(seen) + " (from that side's connection start)")
    if transfer.kind == "frame":
        lines += _text_lines(frame)
    if transfer.headers is not None:
        lines += _text_lines(transfer.headers)
    for message in transfer.messages:
        lines += _text_lines(message)
    return lines


def details(transfer: Transfer, ladder: Ladder, times: bool) -> dict[str, Any]:
    """What a click shows: the title lines, the frame's bytes, each header field's bytes."""
    frame = transfer.frame
    out: dict[str, Any] = {
        "stream": f"{transfer.link}-{transfer.stream}",
        "title": title_lines(transfer, ladder, times),
    }
    if transfer.kind == "preface":
        out["bytes"] = [["preface", frame.get("bytes", "")]]
    else:
        body = str(frame.get("body", ""))
        more = "…" if frame.get("body_truncated") else ""
        out["bytes"] = [["frame header", frame.get("header", "")], ["payload", body + more]]
    if transfer.headers is not None:
        out["fields"] = [
            [str(f.get("name")), str(f.get("value")), _rep(f), str(f.get("bytes", ""))]
            for f in transfer.headers.get("fields", [])
        ]
        table = transfer.headers.get("table") or {}
        out["table"] = (
            f"dynamic table after it: {table.get('entries', 0)} entries, "
            f"{table.get('size', 0)}/{table.get('max_size', 0)} bytes"
        )
    if transfer.messages:
        out["messages"] = [
            {
                "prefix": str(m.get("prefix", "")),
                "bytes": str(m.get("bytes", "")) + ("…" if m.get("bytes_truncated") else ""),
                "text": m.get("text"),
                "type": m.get("type"),
                "role": m.get("role"),
                "index": m.get("index"),
            }
            for m in transfer.messages
        ]
    return out


def _rep(field: dict[str, Any]) -> str:
    try:
        return representation(field)
    except KeyError:
        return str(field.get("rep", "?"))
