"""Study mode in the examples: ``--trace`` prints the wire, and the anatomy walkthrough is fresh."""

from __future__ import annotations

import sys

import pytest

from tests.examples.test_examples import run_module
from tests.interop.peers import REPO_ROOT, start_peer


@pytest.mark.time_limit(120)
def test_anatomy_walkthrough_is_up_to_date():
    """Regenerate examples/anatomy/WALKTHROUGH.md and its ladder diagrams (diagrams/*.svg) from
    a fresh run and compare (what varies from run to run, a grpc-timeout value, is left out of
    the comparison)."""
    from examples.anatomy.__main__ import WALKTHROUGH, generate, stale_diff

    committed = WALKTHROUGH.read_text(encoding="utf-8")
    fresh = generate()
    diff = stale_diff(committed, fresh)
    assert not diff, (
        f"{WALKTHROUGH.relative_to(REPO_ROOT)} is stale: regenerate it with "
        f"'python -m examples.anatomy'\n{diff}"
    )
    for section in (
        "A unary call",
        "Server streaming",
        "Client streaming",
        "Bidirectional streaming",
        "A deadline expires",
        "The client cancels",
        "A compressed call",
        "Trailers-Only",
        "GOAWAY",
    ):
        assert section in fresh.markdown
    # Each call kind's diagram is embedded, and drawn: one arrow per frame the client saw.
    for kind in ("unary", "server-streaming", "client-streaming", "bidi"):
        [name] = [n for n in fresh.diagrams if n.endswith(f"-{kind}.svg")]
        assert f"](diagrams/{name})" in fresh.markdown
        assert fresh.diagrams[name].count('<g class="frame"') > 3


def test_trace_flag_on_helloworld_client_and_server_prints_both_sides_of_the_wire():
    argv = [
        sys.executable,
        "-m",
        "examples.helloworld.server",
        "--address",
        "127.0.0.1:0",
        "--trace",
        "frames,messages,json",
    ]
    server, port = start_peer(argv)
    try:
        out, err = run_module(
            "examples.helloworld.client",
            "--target",
            f"127.0.0.1:{port}",
            "--name",
            "tracer",
            "--trace",
            with_stderr=True,
        )
        assert out.strip() == "Hello, tracer!"
        assert "client#1  -> HEADERS       s=1" in err
        assert 'helloworld.HelloRequest { name: "tracer" }' in err
        assert ":path: /helloworld.Greeter/SayHello" in err  # headers: all kinds by default
    finally:
        server.stop()
        server_err = server.stderr_text()
        server.remove_logs()
    assert '"kind":"frame","side":"server"' in server_err
    assert '"text":"name: \\"tracer\\""' in server_err
    assert '"kind":"headers"' not in server_err  # frames and messages only


def test_trace_flag_on_route_guide_and_blocking_examples():
    argv = [sys.executable, "-m", "examples.helloworld.server_blocking", "--address", "127.0.0.1:0"]
    server, port = start_peer(argv)
    try:
        out, err = run_module(
            "examples.helloworld.client_blocking",
            "--target",
            f"127.0.0.1:{port}",
            "--trace",
            "messages",
            with_stderr=True,
        )
        assert out.strip() == "Hello, world!"
        assert "request message #1 of /helloworld.Greeter/SayHello" in err
        assert " DATA " not in err
    finally:
        server.stop()
        server.remove_logs()
    argv = [sys.executable, "-m", "examples.route_guide.server", "--address", "127.0.0.1:0"]
    server, port = start_peer(argv)
    try:
        out, err = run_module(
            "examples.route_guide.client",
            "--target",
            f"127.0.0.1:{port}",
            "--trace",
            with_stderr=True,
        )
        assert "status OK" in out
        assert "routeguide.RouteNote" in err and "-> DATA" in err
    finally:
        server.stop()
        server.remove_logs()
