"""``--pcap FILE`` on the command line (``h2rpc call``), ``rpc.interop`` (client and server) and
the examples, run as real processes: each writes a capture that tshark decodes into the frames
and messages of the JSON trace (``--trace all,json``) of the same run.

Skipped only where Debian's tshark is not installed (.ci/run installs it).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Optional

import pytest
from peers import peer_environment

import rpc
from rpc.services import reflection
from tests.cli import kinds
from tests.interop.peers import REPO_ROOT, start_peer
from tests.rpc.tshark import (
    check_against_trace,
    client_port_of,
    decode,
    needs_tshark,
    tcp_is_consistent,
)

pytestmark = needs_tshark


def _run(*args: str, stdin: Optional[str] = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=peer_environment(),
        cwd=REPO_ROOT,
    )


def _trace_lines(stderr: str) -> list[dict[str, Any]]:
    """The JSON trace lines of a process's standard error (its logging left out)."""
    return [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]


@pytest.fixture(scope="module")
def kinds_server() -> Iterator[int]:
    server = rpc.sync.Server(max_workers=8, trace=False, pcap=False)
    server.add_service(kinds.SERVICE, kinds.Kinds())
    reflection.enable_reflection(server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield port
    finally:
        server.stop(None)


CALLS = {
    "Echo": ['{"name": "one"}'],
    "Repeat": ['{"name": "many", "numbers": [1, 2, 3]}'],
    "Collect": ['{"name": "a"}', '{"name": "b"}'],
    "Chat": ['{"name": "x"}', '{"name": "y"}'],
}


@pytest.mark.parametrize("method", sorted(CALLS))
def test_h2rpc_call_pcap_matches_its_json_trace(method: str, kinds_server: int, tmp_path: Path):
    path = tmp_path / f"{method}.pcapng"
    done = _run(
        "-m",
        "rpc",
        "call",
        f"127.0.0.1:{kinds_server}",
        f"clitest.Kinds/{method}",
        "-d",
        "@-",
        "--pcap",
        str(path),
        "--trace",
        "all,json",
        stdin="\n".join(CALLS[method]) + "\n",
    )
    assert done.returncode == 0, done.stderr
    decoded = decode(path, http2_port=kinds_server)
    client_port = client_port_of(decoded, kinds_server)
    check_against_trace(
        decoded,
        _trace_lines(done.stderr),
        side="client",
        client_port=client_port,
        server_port=kinds_server,
    )
    tcp_is_consistent(decoded)
    assert len({frozenset(s[:2]) for s in decoded.segments}) == 1, "the call's connection only"
    paths = [v for f in decoded.frames for k, v in f.headers if k == ":path"]
    assert paths == [f"/clitest.Kinds/{method}"]
    assert [v for f in decoded.frames for k, v in f.headers if k == "grpc-status"] == ["0"]


def test_h2rpc_call_pcap_into_an_unwritable_file_is_a_usage_error(
    kinds_server: int, tmp_path: Path
):
    path = tmp_path / "missing" / "x.pcapng"
    done = _run(
        "-m", "rpc", "call", f"127.0.0.1:{kinds_server}", "clitest.Kinds/Echo", "--pcap", str(path)
    )
    assert done.returncode == 1
    assert done.stderr.startswith(f"h2rpc: --pcap {path}: No such file or directory")


INTEROP_CASES = ("large_unary", "server_streaming", "client_streaming", "ping_pong")


def test_interop_client_and_server_pcap(tmp_path: Path):
    server_capture = tmp_path / "server.pcapng"
    proc, port = start_peer(
        [
            sys.executable,
            "-m",
            "rpc.interop.server",
            "--port",
            "0",
            "--host",
            "127.0.0.1",
            "--pcap",
            str(server_capture),
        ]
    )
    try:
        traces = []
        for case in INTEROP_CASES:
            client_capture = tmp_path / f"{case}.pcapng"
            done = _run(
                "-m",
                "rpc.interop.client",
                "--server_host",
                "127.0.0.1",
                "--server_port",
                str(port),
                "--test_case",
                case,
                "--pcap",
                str(client_capture),
                "--trace",
                "all,json",
            )
            assert done.returncode == 0, done.stderr
            decoded = decode(client_capture, http2_port=port)
            check_against_trace(
                decoded,
                _trace_lines(done.stderr),
                side="client",
                client_port=client_port_of(decoded, port),
                server_port=port,
            )
            tcp_is_consistent(decoded)
            traces.append(decoded)
    finally:
        proc.stop()
        proc.remove_logs()
    served = decode(server_capture, http2_port=port)
    # the server saw the same four connections, each its own conversation
    assert len({frozenset(s[:2]) for s in served.segments}) == len(INTEROP_CASES)
    paths = [v for f in served.frames for k, v in f.headers if k == ":path"]
    assert paths == [
        f"/grpc.testing.TestService/{m}"
        for m in ("UnaryCall", "StreamingOutputCall", "StreamingInputCall", "FullDuplexCall")
    ]
    assert [v for f in served.frames for k, v in f.headers if k == "grpc-status"] == ["0"] * 4
    sizes = sorted(m.length for d in traces for m in d.messages)
    assert sizes == sorted(m.length for m in served.messages)


@pytest.mark.parametrize(
    "module",
    ["examples.demo", "examples.route_guide.client", "examples.helloworld.client"],
)
def test_examples_pcap(module: str, tmp_path: Path):
    """The demo (its own server process), or a client against an example server, both with
    ``--pcap``: each capture holds the calls."""
    path = tmp_path / "example.pcapng"
    server = None
    args = ["-m", module, "--pcap", str(path)]
    captures = [path]
    if module != "examples.demo":
        server_module = module.rpartition(".")[0] + ".server"
        captures.append(tmp_path / "server.pcapng")
        argv = [sys.executable, "-m", server_module, "--address", "127.0.0.1:0"]
        server, port = start_peer([*argv, "--pcap", str(captures[1])])
        args += ["--target", f"127.0.0.1:{port}"]
    try:
        done = _run(*args)
    finally:
        if server is not None:
            server.stop()
            server.remove_logs()
    assert done.returncode == 0, done.stderr
    paths = []
    for capture in captures:
        decoded = decode(capture, extra=("-d", f"tcp.port=={decoded_port(capture)},http2"))
        tcp_is_consistent(decoded)
        assert decoded.magic == 1
        assert all(v == "0" for f in decoded.frames for k, v in f.headers if k == "grpc-status")
        paths.append([v for f in decoded.frames for k, v in f.headers if k == ":path"])
    assert paths[0] and all(p == paths[0] for p in paths)


def decoded_port(path: Path) -> int:
    """The server port of a capture's first conversation (the destination of its SYN)."""
    return decode(path).segments[0][1]
