"""The load side of every client script: one scenario, a warm-up, a timed window, one JSON line.

Each implementation's client script wraps its API in a small adapter (``unary``,
``server_stream``, ``bidi``; async or blocking) and hands it to :func:`main_async` or
:func:`main_blocking`. The driver runs the scenario's workers, lets them warm up (connection,
caches, JIT), prints ``WINDOW-START`` (the runner samples the server's CPU time then), counts
completed operations for ``--seconds``, prints ``RESULT {json}`` (the runner samples again), stops
the workers and exits. Concurrency is tasks for the async APIs and threads for the blocking ones,
all on one channel (one connection).

Runs on Python 3.9+ and PyPy; imports no grpc.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import queue
import sys
import threading
import time
import traceback
from dataclasses import dataclass
from typing import Any, Callable, Optional

from .service import SMALL_BODY, messages, prepare_process, run_async


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    kind: str  # "unary", "stream" or "bidi"
    concurrency: int = 1
    size: int = 0  # streamed message size
    count: int = 0  # messages per streaming call
    unit: str = "calls/s"


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario("unary1", "unary, 1 in flight", "unary"),
        Scenario("unary64", "unary, 64 concurrent on one connection", "unary", concurrency=64),
        Scenario(
            "stream1k",
            "server streaming, 1 KiB messages",
            "stream",
            size=1024,
            count=1000,
            unit="msgs/s",
        ),
        Scenario(
            "stream1m",
            "server streaming, 1 MiB messages",
            "stream",
            size=1024 * 1024,
            count=16,
            unit="MB/s",
        ),
        Scenario("bidi", "bidi ping-pong, 16 B", "bidi", unit="round trips/s"),
    )
}


def parse_args(description: str, argv: Optional[list[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--target", required=True, help="host:port of the benchmark server")
    parser.add_argument("--scenario", required=True, choices=sorted(SCENARIOS))
    parser.add_argument("--warmup", type=float, default=0.5, help="seconds before the window")
    parser.add_argument("--seconds", type=float, default=2.0, help="length of the timed window")
    parser.add_argument(
        "--settle",
        type=float,
        default=0.0,
        help="after the warm-up, go on warming up until the rate is steady, for at most this "
        "many seconds (0: no; a JIT's rate climbs for tens of seconds)",
    )
    parser.add_argument("--concurrency", type=int, help="override the scenario's concurrency")
    parser.add_argument("--uvloop", action="store_true", help="async clients: run on uvloop")
    parser.add_argument(
        "--intercepted", action="store_true", help="h2rpc clients: with one no-op interceptor"
    )
    args = parser.parse_args(argv)
    scenario = SCENARIOS[args.scenario]
    args.concurrency = args.concurrency or scenario.concurrency
    return args


class _Counter:
    __slots__ = ("bytes", "ops")

    def __init__(self) -> None:
        self.ops = 0
        self.bytes = 0


def _start_watchdog(args: argparse.Namespace) -> None:
    """A client never outlives its run by much: hard exit after warm-up + window + 60 s."""
    limit = args.warmup + args.settle + args.seconds + 60.0

    def expire() -> None:
        print(f"client watchdog: still running after {limit:.0f} s, exiting", file=sys.stderr)
        sys.stderr.flush()
        os._exit(3)

    timer = threading.Timer(limit, expire)
    timer.daemon = True
    timer.start()


def _result(
    args: argparse.Namespace,
    counters: list[_Counter],
    start: tuple[int, int, float, float],
    settler: Settler,
) -> dict[str, Any]:
    ops = sum(c.ops for c in counters) - start[0]
    nbytes = sum(c.bytes for c in counters) - start[1]
    elapsed = time.perf_counter() - start[2]
    cpu = time.process_time() - start[3]
    return {
        "scenario": args.scenario,
        "ops": ops,
        "bytes": nbytes,
        "elapsed": elapsed,
        "client_cpu": cpu,
        "concurrency": args.concurrency,
        "python": sys.implementation.name,
        "settled": round(settler.spent, 1),
        "steady": settler.steady,
    }


class Settler:
    """The warm-up after the fixed one (``--settle``): one-second windows until a window's rate
    is within 5 % of the window's before it, or the limit passes. PyPy's JIT keeps compiling
    for tens of seconds under load (unary1 went from 429 to 2,300 to 5,100 calls/s after 2, 10
    and 25 s on the 2-core VM): a fixed warm-up measured it half-compiled."""

    WINDOW = 1.0
    TOLERANCE = 0.05

    def __init__(
        self,
        counters: list[_Counter],
        limit: float,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self._counters = counters
        self._limit = limit
        self._clock = clock
        self._started = clock()
        self._mark = (self._started, self._ops())
        self._rate: Optional[float] = None
        #: Seconds spent settling, and whether the rate did settle (else the limit stopped it).
        self.spent = 0.0
        self.steady = limit <= 0

    def _ops(self) -> int:
        return sum(c.ops for c in self._counters)

    def next_wait(self) -> Optional[float]:
        """Seconds to run before asking again, or None: warm enough."""
        now, ops = self._clock(), self._ops()
        self.spent = now - self._started
        if now > self._mark[0]:
            rate = (ops - self._mark[1]) / (now - self._mark[0])
            previous, self._rate, self._mark = self._rate, rate, (now, ops)
            if previous and abs(rate - previous) <= self.TOLERANCE * previous:
                self.steady = True
                return None
        if self.spent >= self._limit:
            return None
        return self.WINDOW


def _snapshot(counters: list[_Counter]) -> tuple[int, int, float, float]:
    return (
        sum(c.ops for c in counters),
        sum(c.bytes for c in counters),
        time.perf_counter(),
        time.process_time(),
    )


def _emit(result: dict[str, Any]) -> None:
    print("RESULT " + json.dumps(result), flush=True)


def _window_start() -> None:
    print("WINDOW-START", flush=True)


# ---------------------------------------------------------------------------------- async


async def _drive_async(client: Any, args: argparse.Namespace) -> dict[str, Any]:
    scenario = SCENARIOS[args.scenario]
    m = messages()
    small = m.Payload(body=SMALL_BODY)
    stream_request = m.StreamRequest(size=scenario.size, count=scenario.count)
    stopping = False

    async def unary(counter: _Counter) -> None:
        call = client.unary
        while not stopping:
            await call(small)
            counter.ops += 1

    async def stream(counter: _Counter) -> None:
        while not stopping:
            async for reply in client.server_stream(stream_request):
                counter.ops += 1
                counter.bytes += len(reply.body)

    async def bidi(counter: _Counter) -> None:
        call = await client.bidi()
        while not stopping:
            await call.write(small)
            await call.read()
            counter.ops += 1
        await call.finish()

    worker = {"unary": unary, "stream": stream, "bidi": bidi}[scenario.kind]
    counters = [_Counter() for _ in range(args.concurrency)]
    tasks = [asyncio.ensure_future(worker(c)) for c in counters]

    async def run_for(seconds: float) -> None:
        done, _ = await asyncio.wait(tasks, timeout=seconds, return_when=asyncio.FIRST_EXCEPTION)
        for task in done:
            task.result()  # a worker failed: raise its exception
        if done:
            raise RuntimeError("a worker ended early")

    try:
        await run_for(args.warmup)
        settler = Settler(counters, args.settle)
        wait = settler.next_wait()
        while wait is not None:
            await run_for(wait)
            wait = settler.next_wait()
        start = _snapshot(counters)
        _window_start()
        await run_for(args.seconds)
        result = _result(args, counters, start, settler)
        _emit(result)
        stopping = True
        await asyncio.wait_for(asyncio.gather(*tasks), 30)
    finally:
        for task in tasks:
            task.cancel()
    return result


def main_async(
    description: str, make_client: Callable[[argparse.Namespace], Any], argv: Any = None
) -> int:
    """Run a scenario with an async adapter: ``make_client(args)`` is an async context manager
    whose value has ``unary(msg)``, ``server_stream(msg)`` (async iterator) and ``bidi()``."""
    prepare_process()
    args = parse_args(description, argv)
    _start_watchdog(args)

    async def run() -> None:
        async with make_client(args) as client:
            await _drive_async(client, args)

    try:
        run_async(run, args.uvloop)
    except Exception:
        traceback.print_exc()
        return 1
    return 0


# ------------------------------------------------------------------------------- blocking


class QueueBidi:
    """Ping-pong over a blocking bidi API that takes a request iterator: requests come from a
    queue, so each one is sent only after the previous reply was read."""

    def __init__(self, start: Callable[[Any], Any]) -> None:
        self._queue: queue.Queue[Any] = queue.Queue()
        self._replies = start(iter(self._queue.get, None))

    def write(self, message: Any) -> None:
        self._queue.put(message)

    def read(self) -> Any:
        return next(self._replies)

    def finish(self) -> None:
        self._queue.put(None)
        for _ in self._replies:
            pass


def _drive_blocking(client: Any, args: argparse.Namespace) -> dict[str, Any]:
    scenario = SCENARIOS[args.scenario]
    m = messages()
    small = m.Payload(body=SMALL_BODY)
    stream_request = m.StreamRequest(size=scenario.size, count=scenario.count)
    stopping = threading.Event()
    errors: list[BaseException] = []

    def unary(counter: _Counter) -> None:
        call = client.unary
        while not stopping.is_set():
            call(small)
            counter.ops += 1

    def stream(counter: _Counter) -> None:
        while not stopping.is_set():
            for reply in client.server_stream(stream_request):
                counter.ops += 1
                counter.bytes += len(reply.body)

    def bidi(counter: _Counter) -> None:
        call = client.bidi()
        while not stopping.is_set():
            call.write(small)
            call.read()
            counter.ops += 1
        call.finish()

    body = {"unary": unary, "stream": stream, "bidi": bidi}[scenario.kind]

    def worker(counter: _Counter) -> None:
        try:
            body(counter)
        except BaseException as exc:
            errors.append(exc)
            stopping.set()

    counters = [_Counter() for _ in range(args.concurrency)]
    threads = [
        threading.Thread(target=worker, args=(c,), name=f"bench-{i}", daemon=True)
        for i, c in enumerate(counters)
    ]
    for thread in threads:
        thread.start()

    def run_for(seconds: float) -> None:
        if stopping.wait(seconds) or errors:
            raise RuntimeError("a worker failed") from (errors[0] if errors else None)

    run_for(args.warmup)
    settler = Settler(counters, args.settle)
    wait = settler.next_wait()
    while wait is not None:
        run_for(wait)
        wait = settler.next_wait()
    start = _snapshot(counters)
    _window_start()
    run_for(args.seconds)
    result = _result(args, counters, start, settler)
    _emit(result)
    stopping.set()
    deadline = time.monotonic() + 30
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    return result


def main_blocking(
    description: str, make_client: Callable[[argparse.Namespace], Any], argv: Any = None
) -> int:
    """Run a scenario with a blocking adapter (a context manager): ``unary(msg)``,
    ``server_stream(msg)`` (iterator), ``bidi()`` (with ``write``/``read``/``finish``)."""
    prepare_process()
    args = parse_args(description, argv)
    _start_watchdog(args)
    try:
        with make_client(args) as client:
            _drive_blocking(client, args)
    except Exception:
        traceback.print_exc()
        return 1
    return 0
