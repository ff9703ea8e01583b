"""The examples run from the command line, as real processes, and the README demo works."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest

from tests.interop.peers import REPO_ROOT, peer_environment, start_peer


def run_module(*argv: str, timeout: float = 60, with_stderr: bool = False) -> Any:
    """Run ``python -m argv...``; its stdout (and stderr, if asked: a pair)."""
    result = subprocess.run(
        [sys.executable, "-m", *argv],
        cwd=REPO_ROOT,
        env=peer_environment(),
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stderr
    return (result.stdout, result.stderr) if with_stderr else result.stdout


def test_readme_demo_runs_all_four_call_kinds_over_loopback():
    out = run_module("examples.demo")
    for method in ("GetFeature", "ListFeatures", "RecordRoute", "RouteChat"):
        assert method in out
    assert "all four call kinds succeeded" in out


def test_helloworld_server_and_client_processes_talk():
    argv = [sys.executable, "-m", "examples.helloworld.server", "--address", "127.0.0.1:0"]
    server, port = start_peer(argv)
    try:
        out = run_module(
            "examples.helloworld.client", "--target", f"127.0.0.1:{port}", "--name", "tester"
        )
        assert out.strip() == "Hello, tester!"
    finally:
        server.stop()
        server.remove_logs()


def test_route_guide_client_against_its_server_process():
    argv = [sys.executable, "-m", "examples.route_guide.server", "--address", "127.0.0.1:0"]
    server, port = start_peer(argv)
    try:
        out = run_module("examples.route_guide.client", "--target", f"127.0.0.1:{port}")
        assert "status OK" in out
    finally:
        server.stop()
        server.remove_logs()


@pytest.mark.parametrize(
    ("server", "client"),
    [
        ("server_blocking", "client_blocking"),
        ("server_blocking", "client"),
        ("server", "client_blocking"),
    ],
)
def test_helloworld_blocking_variants_interoperate(server: str, client: str):
    argv = [sys.executable, "-m", f"examples.helloworld.{server}", "--address", "127.0.0.1:0"]
    proc, port = start_peer(argv)
    try:
        out = run_module(
            f"examples.helloworld.{client}", "--target", f"127.0.0.1:{port}", "--name", "sync"
        )
        assert out.strip() == "Hello, sync!"
    finally:
        proc.stop()
        proc.remove_logs()
