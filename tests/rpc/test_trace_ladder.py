"""Ladder diagrams (rpc._trace.ladder, python -m rpc.trace render): what is drawn from real traces.

Every trace here is recorded from real calls on loopback (tests/rpc/ladder_traces.py); the
expectations are counted from the trace itself, independently of the renderer: one arrow per
frame on the wire, both ends of a connection matched, windows and HPACK sizes as recorded.
"""

from __future__ import annotations

import importlib
import io
import json
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

import rpc
from rpc._trace.ladder import build_ladder, load_events, render_html, render_svg, write_diagram
from rpc._trace.ladder.write import TraceFileError
from tests.interop.peers import REPO_ROOT, peer_environment
from tests.rpc.ladder_traces import BIG, traced_calls

SVG = "{http://www.w3.org/2000/svg}"


def _wire_items(events: list[rpc.TraceEvent], side: str) -> list[rpc.TraceEvent]:
    """Every frame (and the preface) one side sent or received: all that crossed the wire."""
    return [e for e in events if e.side == side and e.kind in ("frame", "preface")]


@pytest.fixture(scope="module")
def both() -> list[rpc.TraceEvent]:
    return traced_calls(("client", "server"))


@pytest.fixture(scope="module")
def client_only() -> list[rpc.TraceEvent]:
    return traced_calls(("client",), dynamic_table=True)


def test_both_ends_of_a_connection_are_one_arrow_per_frame_from_send_down_to_receive(both):
    ladder = build_ladder(both)
    crossed = _wire_items(both, "client")
    assert len(crossed) == len(_wire_items(both, "server"))
    assert len(ladder.transfers) == len(crossed)
    assert ladder.links == 1 and ladder.traced == {"client", "server"}
    for transfer in ladder.transfers:
        assert set(transfer.records) == {"client", "server"}
        assert transfer.send_row is not None and transfer.recv_row is not None
        assert transfer.recv_row > transfer.send_row  # time flows down
        sent, got = transfer.records[transfer.sender], transfer.records[transfer.receiver]
        assert (sent["dir"], got["dir"]) == ("out", "in")
        assert sent.get("header") == got.get("header") and sent.get("body") == got.get("body")
    # Rows are the events in the order they were recorded: each side's own order is kept.
    for side in ("client", "server"):
        rows = [i.row for i in ladder.instants if i.side == side and i.transfer is not None]
        assert rows == sorted(rows) and len(rows) == len(_wire_items(both, side))


def test_one_traced_side_draws_the_peer_as_the_other_column(client_only):
    ladder = build_ladder(client_only)
    assert ladder.traced == {"client"}
    assert len(ladder.transfers) == len(_wire_items(client_only, "client"))
    assert {t.sender for t in ladder.transfers} == {"client", "server"}
    svg = render_svg(ladder)
    assert "server (not traced)" in svg
    server_only = traced_calls(("server",))
    drawn = build_ladder(server_only)
    assert drawn.traced == {"server"}
    assert len(drawn.transfers) == len(_wire_items(server_only, "server"))
    assert "client (not traced)" in render_svg(drawn)


def _arrows(svg_text: str) -> list[ET.Element]:
    root = ET.fromstring(svg_text)
    return [g for g in root.iter(f"{SVG}g") if g.get("class") == "frame"]


def test_svg_is_well_formed_and_each_arrow_names_type_stream_flags_and_decodes_on_hover(both):
    svg_text = render_svg(build_ladder(both))
    arrows = _arrows(svg_text)
    frames = [e for e in _wire_items(both, "client")]
    assert len(arrows) == len(frames)
    assert "<script" not in svg_text  # the SVG form needs no JavaScript
    for g in arrows:
        label = "".join(g.find(f"{SVG}text").itertext())
        kind = g.get("data-type")
        assert label.split()[0] == kind
        if kind != "PREFACE":
            stream = g.get("data-stream").split("-")[1]
            assert f" s={stream}" in label
    titles = "\n".join(g.find(f"{SVG}title").text for g in arrows)
    # Header fields with their HPACK representation; messages as protobuf text.
    assert ":method: POST" in titles and "indexed (static 3)" in titles
    assert "literal without indexing (name: static 4)" in titles
    assert 'routeguide.Feature { name: "Berkshire Valley"' in titles
    assert "grpc-status: 5" in titles  # the NOT_FOUND call's Trailers-Only
    flagged = [g for g in arrows if "[END_STREAM" in "".join(g.find(f"{SVG}text").itertext())]
    assert flagged
    # Streams coloured: every stream its own colour, the connection's frames grey.
    colours: dict[str, set[str]] = {}
    for g in arrows:
        colours.setdefault(g.get("data-stream"), set()).add(g.find(f"{SVG}line[2]").get("stroke"))
    assert all(len(c) == 1 for c in colours.values())
    streams = [k for k in colours if not k.endswith("-0")]
    assert len({next(iter(colours[k])) for k in streams}) == len(streams) == 4


def test_windows_plot_follows_the_windows_the_trace_recorded(both):
    ladder = build_ladder(both)
    client_connection = next(s for s in ladder.windows if s.side == "client" and s.stream == 0)
    values = [p.value for p in client_connection.points]
    assert values[0] == 65_535  # before the peer's WINDOW_UPDATE
    recorded = [
        e["window"]["connection"]
        for e in both
        if e.side == "client" and e.kind == "frame" and e.direction == "out" and e["type"] == "DATA"
    ]
    assert recorded and set(recorded) <= set(values)
    # The big note took its size (plus the prefix and protobuf tag) out of its stream's window.
    big_stream = next(
        t.stream
        for t in ladder.transfers
        if any(len(m.get("text") or "") > len(BIG) for m in t.messages)
    )
    stream_series = next(s for s in ladder.windows if s.side == "client" and s.stream == big_stream)
    start = stream_series.points[0].value
    assert start == 4_194_304  # h2rpc's INITIAL_WINDOW_SIZE, from the opening HEADERS
    assert start - min(p.value for p in stream_series.points) > len(BIG)
    assert stream_series.end_row is not None  # the stream ended: its line stops there


def test_hpack_plot_shows_the_dynamic_table_growing(client_only):
    ladder = build_ladder(client_only)
    table = next(s for s in ladder.hpack if s.side == "client")
    sizes = [p.value for p in table.points]
    blocks = [
        e["table"]["size"] for e in client_only if e.kind == "headers" and e.direction == "out"
    ]
    assert sizes[0] == 0 and max(sizes) == max(blocks) > 0
    limit = next(s for s in ladder.hpack_max if s.side == "client")
    assert {p.value for p in limit.points} == {4096}


def test_tracer_json_records_what_the_plots_need(both):
    opening = [e for e in both if e.kind == "frame" and "stream_windows" in e.detail]
    assert {e["type"] for e in opening} == {"HEADERS"}
    # One opening HEADERS per call, seen by both sides: send/receive swapped between them.
    assert len(opening) == 2 * 4
    client_view = next(e for e in opening if e.side == "client")
    server_view = next(
        e for e in opening if e.side == "server" and e.stream_id == client_view.stream_id
    )
    assert client_view["stream_windows"]["send"] == server_view["stream_windows"]["receive"]
    changes = [e for e in both if e.kind == "frame" and "initial_window" in e.detail]
    assert changes and all(e["type"] == "SETTINGS" for e in changes)


def test_html_is_self_contained_and_carries_every_frames_details(both):
    page = render_html(build_ladder(both), title="a <title>")
    for fetch in ("src=", "href=", "@import", "url(", "http://", "https://"):
        # The only URL is the SVG namespace, which is never fetched.
        assert fetch not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "<title>a &lt;title&gt;</title>" in page
    data = page.split('<script type="application/json" id="ladder-data">')[1].split("</script>")[0]
    frames = json.loads(data)["frames"]
    assert len(frames) == len(_wire_items(both, "client"))
    fields = [f for d in frames for f in d.get("fields", [])]
    assert [":method", "POST", "indexed (static 3)", "83"] in fields


def test_times_can_be_left_out_for_a_reproducible_file(client_only):
    with_times = render_svg(build_ladder(client_only))
    without = render_svg(build_ladder(client_only), times=False)
    assert " ms on the client" in with_times and " ms on the " not in without
    assert render_svg(build_ladder(client_only), times=False) == without


def _render(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rpc.trace", "render", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO_ROOT,
        env=peer_environment(),
    )


def test_render_command_writes_html_and_svg_from_a_json_lines_trace(tmp_path, both):
    trace = tmp_path / "call.jsonl"
    trace.write_text(rpc.Tracer().json_lines(both), encoding="utf-8")
    done = _render(str(trace))
    assert done.returncode == 0, done.stderr
    page = (tmp_path / "call.html").read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and 'id="ladder-data"' in page
    done = _render(str(trace), "-o", str(tmp_path / "out.svg"))
    assert done.returncode == 0, done.stderr
    svg_text = (tmp_path / "out.svg").read_text(encoding="utf-8")
    assert len(_arrows(svg_text)) == len(_wire_items(both, "client"))
    done = _render(str(trace), "--svg", "-o", str(tmp_path / "named.xml"), "--no-times")
    assert done.returncode == 0 and (tmp_path / "named.xml").read_text().startswith("<?xml")


def test_render_command_skips_lines_that_are_not_events_and_says_so(tmp_path, both):
    lines = rpc.Tracer().json_lines(both).splitlines()
    mixed = ["WARNING some log line", *lines[:20], "{not json", *lines[20:]]
    trace = tmp_path / "mixed.jsonl"
    trace.write_text("\n".join(mixed) + "\n", encoding="utf-8")
    done = _render(str(trace), "-o", str(tmp_path / "mixed.svg"))
    assert done.returncode == 0, done.stderr
    assert "skipped 2 line(s) that are not trace events: 1, 22" in done.stderr
    assert len(_arrows((tmp_path / "mixed.svg").read_text())) == len(_wire_items(both, "client"))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "no trace events found"),
        ("hello\nworld\n", "no trace events found"),
        (
            '{"kind": "connection", "side": "client", "conn": 1, "dir": "", "t": 0, "stream": 0, '
            '"role": "client"}\n',
            "no frames to draw",
        ),
        ('{"kind": "frame", "side": "moon", "conn": 1}\n', "not a trace this renderer can read"),
    ],
)
def test_render_command_fails_clearly_on_a_file_that_is_not_a_trace(tmp_path, content, message):
    trace = tmp_path / "bad.jsonl"
    trace.write_text(content, encoding="utf-8")
    done = _render(str(trace))
    assert done.returncode == 1
    assert message in done.stderr
    assert not (tmp_path / "bad.html").exists()
    missing = _render(str(tmp_path / "absent.jsonl"))
    assert missing.returncode == 1 and "absent.jsonl" in missing.stderr


def test_render_command_reads_standard_input(tmp_path, both):
    done = _render("-", "-o", str(tmp_path / "stdin.html"), stdin=rpc.Tracer().json_lines(both))
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "stdin.html").exists()


def test_rpc_trace_the_command_does_not_replace_rpc_trace_the_function():
    with pytest.raises(ImportError, match=r"python -m rpc\.trace"):
        importlib.import_module("rpc.trace")
    assert callable(rpc.trace)
    with rpc.trace() as tracer:
        assert isinstance(tracer, rpc.Tracer)


def test_write_diagram_and_load_events_round_trip(tmp_path, client_only):
    trace = tmp_path / "t.jsonl"
    trace.write_text(rpc.Tracer().json_lines(client_only), encoding="utf-8")
    events = load_events(trace)
    assert events == [e.to_dict() for e in client_only]
    assert load_events(io.StringIO(trace.read_text())) == events
    write_diagram(events, tmp_path / "d.svg", times=False)
    write_diagram(client_only, tmp_path / "e.svg", times=False)
    assert (tmp_path / "d.svg").read_text() == (tmp_path / "e.svg").read_text()
    with pytest.raises(TraceFileError):
        write_diagram([e for e in client_only if e.kind == "message"], tmp_path / "f.html")
