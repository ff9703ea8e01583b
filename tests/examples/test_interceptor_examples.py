"""The interceptor examples (examples/interceptors) run, on both APIs, as real processes."""

from __future__ import annotations

import json

import pytest

from .test_examples import run_module


@pytest.mark.parametrize("api", ["async", "blocking"])
def test_interceptor_examples_auth_access_log_and_histogram(api: str) -> None:
    out = run_module("examples.interceptors", "--api", api)
    lines = out.splitlines()
    assert "without a token: UNAUTHENTICATED (missing or invalid token)" in lines
    assert "with the token: Hello, user4!" in lines
    entries = [json.loads(line) for line in lines if line.startswith("{")]
    # BearerAuth (intercept_service) refuses at the handler lookup, before any rpc.Interceptor
    # runs: the log and the histogram see the 5 calls that got through.
    assert [e["code"] for e in entries] == ["OK"] * 5
    assert all(e["method"] == "/helloworld.Greeter/SayHello" for e in entries)
    assert entries[-1]["requests"] == 1 and entries[-1]["responses"] == 1
    assert "/helloworld.Greeter/SayHello  (5 calls)" in lines  # the refused call never ran
