"""``--trace-html FILE`` on the examples: the wire of their calls drawn as a ladder diagram."""

from __future__ import annotations

import re
import sys
from pathlib import Path

from rpc._trace.ladder import build_ladder, load_events
from tests.examples.test_examples import run_module
from tests.interop.peers import start_peer


def _frame_types(text: str) -> list[str]:
    return re.findall(r'data-type="([A-Z_]+)"', text)


def test_route_guide_client_and_server_draw_their_side_of_the_wire(tmp_path: Path) -> None:
    server_svg = tmp_path / "server.svg"
    argv = [sys.executable, "-m", "examples.route_guide.server", "--address", "127.0.0.1:0"]
    server, port = start_peer([*argv, "--trace-html", str(server_svg)])
    client_html = tmp_path / "client.html"
    try:
        out, err = run_module(
            "examples.route_guide.client",
            "--target",
            f"127.0.0.1:{port}",
            "--trace",
            "messages",
            "--trace-html",
            str(client_html),
            with_stderr=True,
        )
        assert "status OK" in out
        assert "request message #1 of /routeguide.RouteGuide/GetFeature" in err
        assert "-> HEADERS" not in err  # --trace messages prints messages only
    finally:
        assert server.stop(), "the route guide server stops on SIGTERM (and writes its diagram)"
        server.remove_logs()
    page = client_html.read_text(encoding="utf-8")
    for method in ("GetFeature", "ListFeatures", "RecordRoute", "RouteChat"):
        assert f"POST /routeguide.RouteGuide/{method}" in page
    assert "server (not traced)" in page
    svg = server_svg.read_text(encoding="utf-8")
    assert svg.startswith("<?xml") and "client (not traced)" in svg
    # The same four calls from the other end: the same frames on streams 1, 3, 5 and 7.
    assert _frame_types(svg).count("HEADERS") == _frame_types(page).count("HEADERS") == 12


def test_blocking_helloworld_client_draws_its_call(tmp_path: Path) -> None:
    argv = [sys.executable, "-m", "examples.helloworld.server_blocking", "--address", "127.0.0.1:0"]
    server, port = start_peer(argv)
    drawing = tmp_path / "hello.svg"
    try:
        out = run_module(
            "examples.helloworld.client_blocking",
            "--target",
            f"127.0.0.1:{port}",
            "--trace-html",
            str(drawing),
        )
        assert out.strip() == "Hello, world!"
    finally:
        server.stop()
        server.remove_logs()
    svg = drawing.read_text(encoding="utf-8")
    assert "POST /helloworld.Greeter/SayHello" in svg
    assert "helloworld.HelloReply { message: &quot;Hello, world!&quot; }" in svg


def test_demo_draws_both_ends_of_its_connection(tmp_path: Path) -> None:
    page = tmp_path / "demo.html"
    out = run_module("examples.demo", "--trace-html", str(page), timeout=120)
    assert "all four call kinds succeeded" in out
    trace = tmp_path / "demo.jsonl"
    assert f"wrote {page}" in out and str(trace) in out
    ladder = build_ladder(load_events(trace))
    assert ladder.traced == {"client", "server"} and ladder.links == 1
    # Every frame was seen leaving one process and arriving at the other.
    assert ladder.transfers and all(len(t.records) == 2 for t in ladder.transfers)
    assert all(t.recv_row > t.send_row for t in ladder.transfers)  # type: ignore[operator]
    assert _frame_types(page.read_text(encoding="utf-8")).count("HEADERS") == 12
