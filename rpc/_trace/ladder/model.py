"""From trace events to a ladder: one transfer per frame on the wire, in rows, plus plot series.

A trace may hold one end of a connection or both (``H2RPC_TRACE=all,json`` with one
``H2RPC_TRACE_FILE`` for a client and a server appends both ends to one file). Both ends of one
connection see the same bytes in the same order, so the client's n-th frame out *is* the server's
n-th frame in: the two ends are matched by those bytes, never by clocks (each side's ``t`` counts
from its own connection's start, and two processes share no clock). Rows follow the order of the
events in the trace, which is the order they happened in: a sender records a frame before writing
it and a receiver after reading it, and each event is written out at once (one process, or
several appending to one file). A receive is never drawn above its send.

Everything here works on the JSON form of events (``TraceEvent.to_dict()``), so a trace file and
a live ``Tracer`` give the same picture.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Optional, Union

from transport.trace import TraceEvent

__all__ = ["Instant", "Ladder", "Point", "Series", "Transfer", "build_ladder", "event_dicts"]

SIDES = ("client", "server")
#: How many frames must agree, byte for byte, to take a client and a server connection for the
#: two ends of one connection (SETTINGS, WINDOW_UPDATE, the first request's HEADERS...).
_MATCH_FRAMES = 4


def _peer(side: str) -> str:
    return "server" if side == "client" else "client"


def event_dicts(events: Iterable[Union[TraceEvent, Mapping[str, Any]]]) -> list[dict[str, Any]]:
    """Trace events as their JSON form, whichever form they come in."""
    out = []
    for event in events:
        out.append(event.to_dict() if isinstance(event, TraceEvent) else dict(event))
    return out


@dataclass
class Transfer:
    """One frame (or the connection preface) going from ``sender`` to the other side.

    ``records`` holds what each side that traced it recorded (``client``/``server`` -> the frame
    event); ``headers`` the decoded header block it completed, ``messages`` the gRPC messages it
    completed (from whichever side recorded them; the sender's first).
    """

    index: int
    sender: str
    link: int
    stream: int
    kind: str  # "frame" or "preface"
    records: dict[str, dict[str, Any]] = field(default_factory=dict)
    headers: Optional[dict[str, Any]] = None
    messages: list[dict[str, Any]] = field(default_factory=list)
    send_row: Optional[int] = None
    recv_row: Optional[int] = None

    @property
    def receiver(self) -> str:
        return _peer(self.sender)

    @property
    def frame(self) -> dict[str, Any]:
        """The frame as recorded (the sender's record if it has one)."""
        return self.records.get(self.sender) or self.records[self.receiver]

    @property
    def type(self) -> str:
        return "PREFACE" if self.kind == "preface" else str(self.frame["type"])

    @property
    def flags(self) -> list[str]:
        return [] if self.kind == "preface" else list(self.frame["flags"])


@dataclass
class Instant:
    """One row of the ladder: a side sending or receiving a transfer (or a note: an error)."""

    row: int
    side: str
    t: float
    transfer: Optional[Transfer] = None
    note: Optional[dict[str, Any]] = None


@dataclass
class Point:
    row: int
    value: int


@dataclass
class Series:
    """A value over the rows: a send window, or an HPACK table's size."""

    name: str
    side: str  # whose window (the sender of the data it limits), or whose encoder's table
    link: int
    stream: int  # 0: the connection's
    points: list[Point] = field(default_factory=list)
    end_row: Optional[int] = None  # the stream closed here

    def add(self, row: int, value: int) -> None:
        if self.points and self.points[-1].row == row:
            self.points[-1] = Point(row, value)
        else:
            self.points.append(Point(row, value))


@dataclass
class Ladder:
    transfers: list[Transfer]
    instants: list[Instant]
    traced: set[str]  # the sides whose events the trace holds
    links: int  # connections drawn
    windows: list[Series]
    hpack: list[Series]
    hpack_max: list[Series]
    paths: dict[tuple[int, int], str]  # (link, stream) -> :path

    @property
    def rows(self) -> int:
        return len(self.instants)

    def stream_keys(self) -> list[tuple[int, int]]:
        """(link, stream) of every stream drawn, in order of first appearance (stream 0 too)."""
        seen: dict[tuple[int, int], None] = {}
        for transfer in self.transfers:
            seen.setdefault((transfer.link, transfer.stream), None)
        return list(seen)


# ====================================================================== connections


@dataclass
class _Item:
    """A wire item as one side recorded it: a frame or the preface, and what it completed."""

    position: int  # index of the event in the trace
    record: dict[str, Any]
    headers: Optional[dict[str, Any]] = None
    messages: list[dict[str, Any]] = field(default_factory=list)

    def signature(self) -> str:
        r = self.record
        if r["kind"] == "preface":
            return "preface"
        return f"{r['header']}:{r['body']}"


@dataclass
class _Conn:
    side: str
    conn: int
    first: int
    items: dict[str, list[_Item]] = field(default_factory=lambda: {"in": [], "out": []})
    notes: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    opened: Optional[int] = None  # position of its "connection" event


def _connections(events: list[dict[str, Any]]) -> list[_Conn]:
    conns: dict[tuple[str, int], _Conn] = {}
    for position, event in enumerate(events):
        key = (str(event["side"]), int(event["conn"]))
        conn = conns.get(key)
        if conn is None:
            conn = conns[key] = _Conn(key[0], key[1], position)
        kind = event["kind"]
        direction = event.get("dir", "")
        if kind in ("frame", "preface") and direction in ("in", "out"):
            conn.items[direction].append(_Item(position, event))
        elif kind in ("headers", "message") and direction in ("in", "out"):
            _attach(conn.items[direction], event)
        elif kind == "connection":
            conn.opened = position
        elif kind == "error":
            conn.notes.append((position, event))
    return sorted(conns.values(), key=lambda c: c.first)


def _attach(items: list[_Item], event: dict[str, Any]) -> None:
    """A header block or message belongs to the last frame of its stream that completed it."""
    message = event["kind"] == "message"
    wanted = ("DATA",) if message else ("HEADERS", "CONTINUATION", "PUSH_PROMISE")
    for item in reversed(items[-64:]):
        record = item.record
        if record["kind"] == "frame" and record["stream"] == event["stream"]:
            if record["type"] in wanted:
                if event["kind"] == "message":
                    item.messages.append(event)
                else:
                    item.headers = event
            return


def _matches(sent: list[_Item], received: list[_Item]) -> bool:
    n = min(len(sent), len(received), _MATCH_FRAMES)
    return all(sent[i].signature() == received[i].signature() for i in range(n))


def _pair(conns: list[_Conn]) -> list[dict[str, _Conn]]:
    """Group the traced connections into links: a client and a server end with the same bytes,
    in order of appearance; an end whose peer was not traced is a link of its own."""
    links: list[dict[str, _Conn]] = []
    servers = [c for c in conns if c.side == "server"]
    taken: set[int] = set()
    for conn in conns:
        if conn.side != "client":
            continue
        link: dict[str, _Conn] = {"client": conn}
        for server in servers:
            if id(server) in taken or not (conn.items["out"] or server.items["in"]):
                continue
            if _matches(conn.items["out"], server.items["in"]) and _matches(
                server.items["out"], conn.items["in"]
            ):
                link["server"] = server
                taken.add(id(server))
                break
        links.append(link)
    links += [{"server": s} for s in servers if id(s) not in taken]
    # Keep the order of first appearance (a lone server end found later stays later).
    links.sort(key=lambda ends: min(c.first for c in ends.values()))
    return links


# ====================================================================== the ladder

#: Something a side recorded: (position in the trace, side, t, transfer, note, is it the send).
_Happening = tuple[int, str, float, Optional[Transfer], Optional[dict[str, Any]], bool]


def build_ladder(events: Iterable[Union[TraceEvent, Mapping[str, Any]]]) -> Ladder:
    """The ladder of a trace (events in the order they were recorded)."""
    records = event_dicts(events)
    for number, record in enumerate(records, 1):
        for key in ("kind", "side", "conn"):
            if key not in record:
                raise ValueError(f"trace event {number} has no {key!r}: not an h2rpc trace event")
        if record["side"] not in SIDES:
            raise ValueError(f"trace event {number}: side {record['side']!r} is not client/server")
    conns = _connections(records)
    links = _pair(conns)
    transfers: list[Transfer] = []
    happenings: list[_Happening] = []
    traced: set[str] = set()
    for number, ends in enumerate(links, 1):
        traced.update(ends)
        for sender in SIDES:
            receiver = _peer(sender)
            sent = ends[sender].items["out"] if sender in ends else []
            got = ends[receiver].items["in"] if receiver in ends else []
            paired = 0
            if sent and got:
                while (
                    paired < min(len(sent), len(got))
                    and sent[paired].signature() == got[paired].signature()
                ):
                    paired += 1
            pieces: list[tuple[Optional[_Item], Optional[_Item]]] = [
                (sent[i], got[i]) for i in range(paired)
            ]
            pieces += [(item, None) for item in sent[paired:]]
            pieces += [(None, item) for item in got[paired:]]
            for out_item, in_item in pieces:
                first = out_item or in_item
                assert first is not None
                transfer = Transfer(
                    index=0,
                    sender=sender,
                    link=number,
                    stream=int(first.record.get("stream", 0)),
                    kind=str(first.record["kind"]),
                )
                for item, side in ((out_item, sender), (in_item, receiver)):
                    if item is None:
                        continue
                    transfer.records[side] = item.record
                    if transfer.headers is None:
                        transfer.headers = item.headers
                    if not transfer.messages:
                        transfer.messages = list(item.messages)
                    happenings.append(
                        (
                            item.position,
                            side,
                            float(item.record.get("t", 0.0)),
                            transfer,
                            None,
                            side == sender,
                        )
                    )
                transfers.append(transfer)
        for end in ends.values():
            for position, note in end.notes:
                t = float(note.get("t", 0.0))
                happenings.append((position, end.side, t, None, note, False))
    instants = _rows(happenings)
    ordered = sorted(
        transfers,
        key=lambda tr: min(r for r in (tr.send_row, tr.recv_row) if r is not None),
    )
    for index, transfer in enumerate(ordered):
        transfer.index = index
    ladder = Ladder(
        transfers=ordered,
        instants=instants,
        traced=traced,
        links=len(links),
        windows=[],
        hpack=[],
        hpack_max=[],
        paths={},
    )
    _series(ladder, links)
    return ladder


def _rows(happenings: list[_Happening]) -> list[Instant]:
    """Rows in trace order, a receive moved below its send if it came first (never in a trace
    written as it happened, but a file may be edited or concatenated)."""
    happenings.sort(key=lambda h: h[0])
    instants: list[Instant] = []
    waiting: dict[int, list[tuple[str, float, Transfer]]] = {}

    def place(side: str, t: float, transfer: Optional[Transfer], note: Any, send: bool) -> None:
        row = len(instants)
        instants.append(Instant(row, side, t, transfer, note))
        if transfer is None:
            return
        if send:
            transfer.send_row = row
            for later in waiting.pop(id(transfer), []):
                place(later[0], later[1], later[2], None, False)
        else:
            transfer.recv_row = row

    for _, side, t, transfer, note, send in happenings:
        if (
            transfer is not None
            and not send
            and transfer.sender in transfer.records
            and transfer.send_row is None
        ):
            waiting.setdefault(id(transfer), []).append((side, t, transfer))
            continue
        place(side, t, transfer, note, send)
    for rest in waiting.values():
        for side, t, transfer in rest:
            place(side, t, transfer, None, False)
    return instants


# ====================================================================== plot series


def _series(ladder: Ladder, links: list[dict[str, _Conn]]) -> None:
    """The send windows of each side (connection and streams) and each side's HPACK encoder
    table, from what the trace recorded, row by row."""
    windows: dict[tuple[str, int, int], Series] = {}
    tables: dict[tuple[str, int], Series] = {}
    maxima: dict[tuple[str, int], Series] = {}
    ended: dict[tuple[int, int], set[str]] = {}

    def window(side: str, link: int, stream: int) -> Series:
        key = (side, link, stream)
        series = windows.get(key)
        if series is None:
            what = "connection" if stream == 0 else f"stream {stream}"
            where = f" (connection {link})" if ladder.links > 1 else ""
            series = windows[key] = Series(f"{what}{where}", side, link, stream)
        return series

    def table(side: str, link: int) -> tuple[Series, Series]:
        key = (side, link)
        if key not in tables:
            where = f" (connection {link})" if ladder.links > 1 else ""
            tables[key] = Series(f"{side}'s encoder{where}", side, link, 0)
            maxima[key] = Series(f"{side}'s table limit{where}", side, link, 0)
        return tables[key], maxima[key]

    first_rows: dict[int, int] = {}
    for instant in ladder.instants:
        if instant.transfer is not None:
            first_rows.setdefault(instant.transfer.link, instant.row)
    for number, ends in enumerate(links, 1):
        if any(c.opened is not None for c in ends.values()) and number in first_rows:
            # The trace has the connection's start: windows and tables start at their defaults.
            row = first_rows[number]
            for side in SIDES:
                window(side, number, 0).add(row, 65_535)
                size, limit = table(side, number)
                size.add(row, 0)
                limit.add(row, 4096)

    for instant in ladder.instants:
        transfer = instant.transfer
        if transfer is None:
            continue
        record = transfer.records.get(instant.side)
        if record is None or record["kind"] != "frame":
            continue
        row = instant.row
        side = instant.side
        link = transfer.link
        sid = transfer.stream
        recorded = record.get("window")
        if recorded is not None:
            whose = side if recorded["flow"] == "send" else _peer(side)
            if "connection" in recorded:
                window(whose, link, 0).add(row, int(recorded["connection"]))
            if "stream" in recorded and sid:
                window(whose, link, sid).add(row, int(recorded["stream"]))
        opening = record.get("stream_windows")
        if opening is not None and sid:
            window(side, link, sid).add(row, int(opening["send"]))
            window(_peer(side), link, sid).add(row, int(opening["receive"]))
        initial = record.get("initial_window")
        if initial is not None and initial["delta"]:
            whose = side if initial["flow"] == "send" else _peer(side)
            for (owner, owner_link, stream), series in windows.items():
                open_ = series.end_row is None and series.points
                if owner == whose and owner_link == link and stream and open_:
                    series.add(row, series.points[-1].value + int(initial["delta"]))
        block = transfer.headers
        if block is not None and block.get("side") == side and "table" in block:
            encoder = side if block["dir"] == "out" else _peer(side)
            size, limit = table(encoder, link)
            size.add(row, int(block["table"]["size"]))
            limit.add(row, int(block["table"]["max_size"]))
            if block.get("block") == "request":
                for field_ in block.get("fields", []):
                    if field_.get("name") == ":path":
                        ladder.paths.setdefault((link, sid), str(field_["value"]))
        rows = [r for r in (transfer.send_row, transfer.recv_row) if r is not None]
        if sid and instant.row == min(rows):
            done = ended.setdefault((link, sid), set())
            if "END_STREAM" in transfer.flags:
                done.add(transfer.sender)
            if transfer.type == "RST_STREAM":
                done.update(SIDES)
            if len(done) == 2:
                for owner in SIDES:
                    closed = windows.get((owner, link, sid))
                    if closed is not None and closed.end_row is None:
                        closed.end_row = row
    ladder.windows = sorted(windows.values(), key=lambda s: (s.side, s.link, s.stream))
    ladder.hpack = list(tables.values())
    ladder.hpack_max = list(maxima.values())
