"""The tracing benchmark still runs (no timing is asserted: numbers belong in reports)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

_PATH = Path(__file__).resolve().parent / "trace_overhead.py"


def _bench():  # loaded by path: tests/bench holds scripts, not a package
    spec = importlib.util.spec_from_file_location("trace_overhead", _PATH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_hooks_can_still_be_cut_out_of_the_core():
    bench = _bench()
    from transport.core import ConnectionCore

    with bench.hooks_removed():
        core = ConnectionCore(client_side=True)
        core.initiate()
        assert core.data_to_send().startswith(b"PRI * HTTP/2.0")
        assert "_tracer" not in ConnectionCore.data_to_send.__code__.co_names
        assert "_tracer" not in ConnectionCore.receive_data.__code__.co_names
    assert "_tracer" in ConnectionCore.data_to_send.__code__.co_names


@pytest.mark.time_limit(120)
def test_benchmark_runs(capsys: pytest.CaptureFixture[str]):
    medians = _bench().main(["--rounds", "1", "--calls", "5"])
    assert set(medians) == {
        "hooks removed",
        "tracing off",
        "tracing on (events kept)",
        "tracing on (text output)",
        "pcap on (to a file)",
    }
    assert "hook cost when off" in capsys.readouterr().out
