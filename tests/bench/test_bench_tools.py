"""The benchmark's own pieces that can be checked without running a benchmark: h2load's output
is read right, the floor's in-memory call loop works, the report renders. (The runner itself is
smoke-run by CI: ``python -m tests.bench.run --quick``.)"""

from __future__ import annotations

from tests.bench import floor, run

H2LOAD_OUTPUT = """\
finished in 1.50s, 9600.00 req/s, 1.18MB/s
requests: 14400 total, 14464 started, 14400 done, 14398 succeeded, 2 failed, 0 errored, 0 timeout
status codes: 14400 2xx, 0 3xx, 0 4xx, 0 5xx
"""


def test_h2load_output_gives_elapsed_successes_and_failures():
    assert run.parse_h2load(H2LOAD_OUTPUT) == {"elapsed": 1.5, "ops": 14398, "failed": 2}


def test_floor_measures_server_cpu_per_call_at_h2_and_core_levels():
    for level in ("h2", "h2-novalidate", "core"):
        result = floor.measure(level, calls=50)
        assert 0 < result["server_us_per_call"] < result["both_sides_us_per_call"]


def _run(impl: str, ops: int, server_cpu: float) -> dict[str, object]:
    return {
        "impl": impl,
        "scenario": "unary1",
        "repeat": 0,
        "ops": ops,
        "bytes": 0,
        "elapsed": 1.0,
        "server_cpu": server_cpu,
        "client_cpu": 0.5,
    }


def test_report_gives_medians_spread_ratio_and_cpu_per_10k_calls():
    runs = [
        _run("grpcio-sync", 1000, 0.5),
        _run("grpcio-sync", 3000, 0.5),
        _run("h2rpc-async", 500, 0.25),
        {"impl": "h2rpc-async", "scenario": "unary1", "repeat": 1, "error": "boom"},
    ]
    impls = [run.IMPL_BY_NAME["grpcio-sync"], run.IMPL_BY_NAME["h2rpc-async"]]
    text = "\n".join(run.markdown_tables(run.summarize(runs), impls, ["unary1"]))
    assert "| grpcio sync | 2,000 | 1,000-3,000 | 2 | 1.00x | 3.33 | 3.33 |" in text
    assert "| h2rpc async | 500 | 500-500 | 1 (+1 failed) | 0.25x | 5.00 | 10.00 |" in text


def test_the_proxy_section_reports_rates_cpu_and_the_share_of_each_worker():
    from tests.bench import proxied

    run_ = {
        "calls_per_s": 5000.0,
        "server_us_per_call": 120.0,
        "proxy_us_per_call": 15.5,
        "worker_shares": [0.6, 0.4],
    }
    section = {
        "h2rpc `rpc.serve(workers=2)`, behind HAProxy": {"runs": [run_]},
        "grpcio sync, 1 process, direct": {"error": "h2load exited\nmore"},
    }
    text = "\n".join(proxied.proxy_markdown(section))
    assert (
        "| h2rpc `rpc.serve(workers=2)`, behind HAProxy | 5,000 | 120.0 | 15.5 | 60% / 40% |"
        in text
    )
    assert "| grpcio sync, 1 process, direct | failed: h2load exited | | | |" in text
    assert proxied.proxy_failed(section)


def test_the_balancing_section_reports_counts_and_the_largest_deviation():
    from tests.bench import balanced

    section = {
        "h2rpc `rpc.Channel`": {"counts": [1000, 1000, 1000]},
        "grpcio": {"counts": [900, 1000, 1100]},
        "h2rpc `rpc.sync.Channel`": {"counts": [1200, 900, 900]},
    }
    text = "\n".join(balanced.balancing_markdown(section))
    assert "| h2rpc `rpc.Channel` | 1000 / 1000 / 1000 | 0.0% | yes |" in text
    assert "| grpcio | 900 / 1000 / 1100 | 10.0% | yes |" in text
    assert "| h2rpc `rpc.sync.Channel` | 1200 / 900 / 900 | 20.0% | no |" in text
    assert not balanced.balancing_failed(section)


def test_strict_counts_a_run_without_a_number_as_failed():
    good = _run("h2rpc-async", 500, 0.25)
    assert not run.no_number(good)
    assert run.no_number(_run("h2rpc-async", 0, 0.25))  # no operation completed
    assert run.no_number({**good, "error": "boom"})
    assert run.no_number({**good, "scenario": "stream1m", "bytes": 0})  # no byte moved
    assert run.no_number({"impl": "h2rpc-async", "scenario": "unary1", "repeat": 0})


def test_percall_counts_a_few_calls_per_side():
    import argparse

    import pytest

    pytest.importorskip("grpc_tools")  # bench.proto is compiled for the processes
    from tests.bench import percall

    selection = argparse.Namespace(
        apis=["asyncio"],
        scenarios=["unary"],
        modes=["cpu", "opcodes"],
        calls=20,
        profile_calls=5,
        strace_calls=5,
        top=3,
        cprofile=None,
    )
    results = percall.run_all(selection)
    cell = results["asyncio unary"]
    for side in ("client", "server"):
        assert cell[side]["cpu"]["cpu_us"] > 0
        assert cell[side]["cpu"]["loop_iterations"] >= 1
        assert cell[side]["opcodes"]["opcodes"] > 100
    assert "asyncio unary | client" in percall.render(results, 3)


def test_settling_waits_for_a_steady_rate_or_the_limit():
    from tests.bench.driver import Settler, _Counter

    now = [0.0]
    counter = _Counter()
    settler = Settler([counter], limit=10, clock=lambda: now[0])

    def second_at(rate: int) -> object:
        now[0] += 1
        counter.ops += rate
        return settler.next_wait()

    assert settler.next_wait() == 1.0  # no rate yet
    # A JIT warming up: the rate climbs, then holds within 5 %.
    assert [second_at(r) for r in (400, 2300, 5100, 5200)] == [1.0, 1.0, 1.0, None]
    assert settler.steady and settler.spent == 4
    # One that never settles stops at the limit, and says so.
    now[0], counter.ops = 0.0, 0
    settler = Settler([counter], limit=3, clock=lambda: now[0])
    assert [second_at(r) for r in (100, 200, 400)] == [1.0, 1.0, None]
    assert not settler.steady and settler.spent == 3
    assert Settler([counter], limit=0).next_wait() is None  # --settle 0: no settling
