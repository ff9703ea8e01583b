"""What wire tracing costs: unary calls per second with the tracer hooks removed, with tracing
off (the default), with tracing on, and with a pcapng capture (``pcap=``, the client's side) on.

    python tests/bench/trace_overhead.py [--seconds 0.5] [--rounds 7]

A server and a client on one event loop make sequential unary calls. Each variant runs in
``--rounds`` short rounds, interleaved (removed, off, on, on+text, removed, off, ...) so that drift
in the machine's speed hits all of them alike; the median round counts.

"Hooks removed" is ``ConnectionCore`` with the tracer lines cut out of the live source of its
``receive_data`` and ``data_to_send`` (the only places the hooks are), recompiled and patched in:
it is the core exactly as it would be without tracing support, however the core changes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import inspect
import io
import os
import statistics
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Optional

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import rpc
from rpc._trace.tracer import tracer_from_environment
from transport import core as core_module

HOOKED = ("receive_data", "data_to_send")


def _without_hooks(name: str) -> Callable[..., Any]:
    """``ConnectionCore.<name>`` recompiled without its ``if self._tracer is not None:`` block."""
    source = textwrap.dedent(inspect.getsource(getattr(core_module.ConnectionCore, name)))
    lines = source.splitlines()
    kept: list[str] = []
    skip_indent: Optional[int] = None
    removed = 0
    for line in lines:
        indent = len(line) - len(line.lstrip())
        if skip_indent is not None:
            if line.strip() and indent > skip_indent:
                continue
            skip_indent = None
        if line.strip() == "if self._tracer is not None:":
            skip_indent = indent
            removed += 1
            continue
        kept.append(line)
    if removed != 1:
        raise RuntimeError(f"expected one tracer hook in ConnectionCore.{name}, found {removed}")
    namespace: dict[str, Any] = {}
    exec(compile("\n".join(kept), core_module.__file__, "exec"), vars(core_module), namespace)
    function: Callable[..., Any] = namespace[name]
    return function


@contextmanager
def hooks_removed() -> Iterator[None]:
    originals = {name: getattr(core_module.ConnectionCore, name) for name in HOOKED}
    replacements = {name: _without_hooks(name) for name in HOOKED}
    try:
        for name, function in replacements.items():
            setattr(core_module.ConnectionCore, name, function)
        yield
    finally:
        for name, function in originals.items():
            setattr(core_module.ConnectionCore, name, function)


GREETER_PATH = "/bench.Greeter/SayHello"
PAYLOAD = b"\x0a\x05world"


async def _echo(request: bytes, context: rpc.ServicerContext) -> bytes:
    return request


class Pair:
    """A server and a channel to it, with or without a tracer; ``timed(n)``: n unary calls."""

    def __init__(self, trace: Any, pcap: Any = False) -> None:
        self.trace = trace
        self.pcap = pcap

    async def __aenter__(self) -> Pair:
        handler = rpc.unary_unary_rpc_method_handler(_echo)
        self.server = rpc.Server(
            [rpc.method_handlers_generic_handler("bench.Greeter", {"SayHello": handler})],
            trace=self.trace,
            pcap=False,
        )
        port = self.server.add_insecure_port("127.0.0.1:0")
        await self.server.start()
        self.channel = rpc.Channel(f"127.0.0.1:{port}", trace=self.trace, pcap=self.pcap)
        self.call = self.channel.unary_unary(GREETER_PATH)
        for _ in range(100):  # warm up: connection, HPACK tables, code paths
            await self.call(PAYLOAD)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.channel.close()
        await self.server.stop(0)

    async def timed(self, calls: int) -> float:
        """Calls per second over ``calls`` sequential unary calls."""
        call = self.call
        start = time.perf_counter()
        for _ in range(calls):
            await call(PAYLOAD)
        return calls / (time.perf_counter() - start)


async def end_to_end(rounds: int, calls: int) -> dict[str, list[float]]:
    """Interleaved rounds of each variant; calls per second of every round."""
    results: dict[str, list[float]] = {
        "hooks removed": [],
        "tracing off": [],
        "tracing on (events kept)": [],
        "tracing on (text output)": [],
        "pcap on (to a file)": [],
    }
    kept = rpc.Tracer()
    text = rpc.Tracer(output=io.StringIO(), keep=False)
    with tempfile.TemporaryDirectory() as tmp:
        writer = rpc.PcapWriter(os.path.join(tmp, "bench.pcapng"))
        try:
            await _rounds(results, rounds, calls, kept, text, writer)
        finally:
            writer.close()
    return results


async def _rounds(
    results: dict[str, list[float]],
    rounds: int,
    calls: int,
    kept: rpc.Tracer,
    text: rpc.Tracer,
    writer: rpc.PcapWriter,
) -> None:
    async with contextlib.AsyncExitStack() as stack:
        plain = await stack.enter_async_context(Pair(False))
        traced = await stack.enter_async_context(Pair(kept))
        printed = await stack.enter_async_context(Pair(text))
        captured = await stack.enter_async_context(Pair(False, writer))
        for _ in range(rounds):
            with hooks_removed():  # patched on the class: the live connections use it too
                results["hooks removed"].append(await plain.timed(calls))
            results["tracing off"].append(await plain.timed(calls))
            results["tracing on (events kept)"].append(await traced.timed(calls))
            results["tracing on (text output)"].append(await printed.timed(calls))
            results["pcap on (to a file)"].append(await captured.timed(calls))
            kept.clear()


def hook_cost_ns(repeat: int = 200_000) -> dict[str, float]:
    """Nanoseconds per ``data_to_send()`` on an idle core, hooked and hooks removed: the
    whole per-call cost of tracing support when it is off is the difference, per socket read
    or write."""
    core = core_module.ConnectionCore(client_side=True)
    core.initiate()
    core.data_to_send()
    timings: dict[str, float] = {}
    for label in ("hooks removed", "tracing off"):
        best = float("inf")
        with hooks_removed() if label == "hooks removed" else _null():
            method = core.data_to_send
            for _ in range(5):
                start = time.perf_counter_ns()
                for _ in range(repeat):
                    method()
                best = min(best, (time.perf_counter_ns() - start) / repeat)
        timings[label] = best
    return timings


@contextmanager
def _null() -> Iterator[None]:
    yield


def main(argv: Optional[list[str]] = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15, help="rounds per variant")
    parser.add_argument("--calls", type=int, default=300, help="unary calls per round")
    args = parser.parse_args(argv)
    if tracer_from_environment() is not None:
        parser.error("unset H2RPC_TRACE: the 'off' variants would be traced")
    results = asyncio.run(end_to_end(args.rounds, args.calls))
    medians = {name: statistics.median(values) for name, values in results.items()}
    base_rounds = results["hooks removed"]
    print(
        f"unary calls/s, one event loop, {args.rounds} interleaved rounds of {args.calls} "
        "calls per variant; 'vs removed' is the median of the per-round ratios (each round "
        "against the hooks-removed round just before it):"
    )
    for name, values in results.items():
        ratio = statistics.median(v / b for v, b in zip(values, base_rounds))
        print(
            f"  {name:<26} {medians[name]:8.0f} calls/s   {ratio - 1:+7.2%} vs removed"
            f"   (rounds {min(values):.0f} .. {max(values):.0f})"
        )
    cost = hook_cost_ns()
    hooks = hook_calls_per_unary_call()
    per_call_ns = 1e9 / medians["hooks removed"]
    extra = max(0.0, cost["tracing off"] - cost["hooks removed"])
    print(
        f"hook cost when off: data_to_send() on an idle core takes {cost['hooks removed']:.0f} "
        f"ns without hooks, {cost['tracing off']:.0f} ns with them ({extra:.1f} ns more); a "
        f"unary call makes {hooks:.1f} hooked calls (both sides), so tracing support costs "
        f"{hooks * extra:.0f} ns of a ~{per_call_ns / 1000:.0f} us call: "
        f"{hooks * extra / per_call_ns:.3%}"
    )
    return medians


def hook_calls_per_unary_call(calls: int = 200) -> float:
    """How many times a unary call enters receive_data or data_to_send, on both sides."""
    counts = [0]
    originals = {name: getattr(core_module.ConnectionCore, name) for name in HOOKED}

    def counting(function: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            counts[0] += 1
            return function(*args, **kwargs)

        return wrapper

    async def run() -> None:
        async with Pair(False) as pair:
            counts[0] = 0
            for name, function in originals.items():
                setattr(core_module.ConnectionCore, name, counting(function))
            try:
                await pair.timed(calls)
            finally:
                for name, function in originals.items():
                    setattr(core_module.ConnectionCore, name, function)

    asyncio.run(run())
    return counts[0] / calls


if __name__ == "__main__":
    main()
