"""A long run of mixed traffic against h2rpc servers: ``python -m tests.soak --minutes N``.

One process serves the EchoTest service twice, on the async ``rpc.Server`` and on the blocking
``rpc.sync.Server``, and calls both from many churning connections: asyncio tasks with
``rpc.Channel``, threads with ``rpc.sync.Channel``, and a grpcio client in a child process (so
grpcio's own threads and memory do not blur what is measured here). Each connection makes a few
calls of every kind, drawn by tests/soak/plan.py (some ask for an error, some get a deadline the
server cannot meet, some are cancelled part way), then closes, and a new one opens.

Every ``--interval`` seconds (60 by default) and at the end it prints the calls done by status,
the process's RSS, its open fds, threads and asyncio tasks. A warm-up (``--warmup`` seconds of the
same traffic) comes first; then everything is closed and the baseline fds and RSS are taken, so
the end can be compared with it after the same closing. The last line is ``SUMMARY {json}``.
Exit status 1 on any unexpected outcome (a status the plan does not allow, a wrong answer, an error
logged or an asyncio task's exception nobody retrieved), on fds
left above the baseline, or RSS grown past ``--max-rss-growth-mib`` (when given).
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import gc
import json
import logging
import os
import random
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Optional

try:
    import tracemalloc
except ImportError:  # PyPy has no _tracemalloc: --tracemalloc is CPython's
    tracemalloc = None  # type: ignore[assignment]

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(REPO_ROOT / "tests" / "protos"), str(REPO_ROOT / "tests" / "interop")]
from compile import ensure_proto_path  # noqa: E402

ensure_proto_path()
import h2rpc_test_pb2 as pb  # noqa: E402
from echo_servicer import make_server  # noqa: E402
from echo_servicer_sync import make_sync_server  # noqa: E402

import rpc  # noqa: E402

from .clients import call_async, call_blocking  # noqa: E402
from .plan import RELAXED_TIMEOUT, Plan, Tally, draw  # noqa: E402

SERVICE = pb.DESCRIPTOR.services_by_name["EchoTest"]
MAX_MESSAGE = 64 * 1024 * 1024
#: How long the end waits for the servers to close the connections of the last clients.
QUIESCE_SECONDS = 15.0


def rss_bytes() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def fd_count() -> int:
    return len(os.listdir("/proc/self/fd")) - 1  # minus the one listdir opened


def fd_listing() -> list[str]:
    names = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            names.append(f"{fd}->{os.readlink(f'/proc/self/fd/{fd}')}")
        except OSError:
            pass
    return names


class Load:
    """The clients of one phase (warm-up or the run itself) and their tallies."""

    def __init__(self, args: argparse.Namespace, targets: list[str], seed: int) -> None:
        self.args = args
        self.targets = targets
        self.seed = seed
        self.stop = threading.Event()
        self.async_tally = Tally()
        self.blocking_tally = Tally()
        self.tasks: list[asyncio.Task[None]] = []
        self.threads: list[threading.Thread] = []
        self.grpcio: Optional[subprocess.Popen[str]] = None
        self.grpcio_tally: dict[str, Any] = {}
        self.connections_opened = 0

    def start(self) -> None:
        for i in range(self.args.async_connections):
            self.tasks.append(asyncio.ensure_future(self._async_worker(self.seed * 1000 + i)))
        for i in range(self.args.blocking_connections):
            thread = threading.Thread(
                target=self._blocking_worker, args=(self.seed * 1000 + 500 + i,), daemon=True
            )
            thread.start()
            self.threads.append(thread)
        if self.args.grpcio_connections:
            env = dict(
                os.environ,
                PYTHONPATH=os.pathsep.join(
                    [
                        str(REPO_ROOT),
                        *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep)),
                    ]
                ),
            )
            self.grpcio = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "tests.soak.grpcio_client",
                    "--threads",
                    str(self.args.grpcio_connections),
                    "--seed",
                    str(self.seed),
                    *self.targets,
                ],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                cwd=REPO_ROOT,
                env=env,
            )

    async def finish(self) -> None:
        """Stop drawing calls; wait for the calls in flight (each within its deadline)."""
        self.stop.set()
        await asyncio.gather(*self.tasks)
        loop = asyncio.get_running_loop()
        for thread in self.threads:
            await loop.run_in_executor(None, thread.join)
        if self.grpcio is not None:
            out = await loop.run_in_executor(None, self._grpcio_output)
            lines = [line for line in out.splitlines() if line.startswith("{")]
            if self.grpcio.returncode != 0 or not lines:
                self.grpcio_tally = {
                    "by_status": {},
                    "unexpected": {"grpcio client died": 1},
                    "examples": [f"exit status {self.grpcio.returncode}"],
                }
            else:
                self.grpcio_tally = json.loads(lines[-1])

    def _grpcio_output(self) -> str:
        """The grpcio client's output once it has ended (closing its stdin stops it). One that
        does not end within a call's deadline and a margin is killed: a clear failure ("grpcio
        client died", its exit status) instead of a soak that waits forever."""
        assert self.grpcio is not None
        try:
            out, _ = self.grpcio.communicate("", timeout=RELAXED_TIMEOUT + 20)
        except subprocess.TimeoutExpired:
            self.grpcio.kill()
            out, _ = self.grpcio.communicate()
        return out

    def total(self) -> Tally:
        total = Tally()
        total.merge(self.async_tally.as_dict())
        total.merge(self.blocking_tally.as_dict())
        total.merge(self.grpcio_tally)
        return total

    async def _async_worker(self, seed: int) -> None:
        rng = random.Random(seed)
        while not self.stop.is_set():
            self.connections_opened += 1
            async with rpc.Channel(
                rng.choice(self.targets), max_receive_message_length=MAX_MESSAGE
            ) as channel:
                stub = rpc.Stub(channel, SERVICE)
                calls = rng.randint(1, 30)
                parallel = rng.randint(1, 3)  # calls multiplexed on the connection at once
                await asyncio.gather(
                    *(
                        self._async_calls(stub, random.Random(rng.random()), calls)
                        for _ in range(parallel)
                    )
                )

    async def _async_calls(self, stub: Any, rng: random.Random, calls: int) -> None:
        for _ in range(calls):
            if self.stop.is_set():
                return
            await call_async(stub, draw(rng), self.async_tally)

    def _blocking_worker(self, seed: int) -> None:
        rng = random.Random(seed)
        while not self.stop.is_set():
            self.connections_opened += 1
            with rpc.sync.Channel(
                rng.choice(self.targets), max_receive_message_length=MAX_MESSAGE
            ) as channel:
                stub = rpc.Stub(channel, SERVICE)
                for _ in range(rng.randint(1, 30)):
                    if self.stop.is_set():
                        break
                    plan: Plan = draw(rng)
                    call_blocking(stub, plan, self.blocking_tally)


def _malloc_trim() -> Callable[[], Any]:
    """glibc's ``malloc_trim(0)``, or nothing elsewhere.

    Freed memory often stays in the process (glibc keeps it in per-thread arenas for reuse),
    so RSS right after a burst of 1 MiB messages on 150 threads says more about the allocator
    than about what is still alive. Trimming before each measurement returns the free pages,
    which makes growth that remains a sign of memory still held.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return lambda: None
    return lambda: trim(0)


malloc_trim = _malloc_trim()


def snapshot() -> dict[str, Any]:
    gc.collect()
    malloc_trim()
    return {
        "rss_mib": round(rss_bytes() / 2**20, 2),
        "objects": len(gc.get_objects()),
        "fds": fd_count(),
        "threads": threading.active_count(),
        "tasks": len(asyncio.all_tasks()),
    }


def object_types() -> dict[str, int]:
    counts: dict[str, int] = {}
    for obj in gc.get_objects():
        name = type(obj).__qualname__
        counts[name] = counts.get(name, 0) + 1
    return counts


def format_tally(tally: Tally) -> str:
    statuses = " ".join(f"{k}={v}" for k, v in sorted(tally.by_status.items()))
    unexpected = sum(tally.unexpected.values())
    return f"calls={tally.total} [{statuses}] unexpected={unexpected}"


async def quiesce(baseline_fds: Optional[int]) -> dict[str, Any]:
    """Let closed connections finish closing on both sides, then measure."""
    deadline = time.monotonic() + QUIESCE_SECONDS
    while True:
        gc.collect()
        await asyncio.sleep(0.2)
        if baseline_fds is None or fd_count() <= baseline_fds or time.monotonic() > deadline:
            break
    if baseline_fds is None:
        await asyncio.sleep(1.0)
        gc.collect()
    return snapshot()


class ErrorLog(logging.Handler):
    """Errors logged anywhere in the process, and what asyncio reports on its own (a task's
    exception nobody retrieved, a callback that raised): each one is an unexpected outcome."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(f"{record.name}: {record.getMessage()}"[:300])

    def loop_exception(self, loop: Any, context: dict[str, Any]) -> None:
        self.messages.append(f"asyncio: {context.get('message')}: {context.get('exception')!r}")
        loop.default_exception_handler(context)


async def soak(args: argparse.Namespace) -> int:
    duration = args.seconds if args.seconds is not None else args.minutes * 60
    if args.tracemalloc:
        if tracemalloc is None:
            print("--tracemalloc needs CPython (this interpreter has no tracemalloc)")
            return 2
        tracemalloc.start()
    errors = ErrorLog()
    logging.getLogger().addHandler(errors)
    asyncio.get_running_loop().set_exception_handler(errors.loop_exception)
    options = {"max_receive_message_length": MAX_MESSAGE, "max_send_message_length": MAX_MESSAGE}
    aio_server = make_server(**options)
    aio_port = aio_server.add_insecure_port("127.0.0.1:0")
    await aio_server.start()
    sync_server = make_sync_server(max_workers=64, **options)
    sync_port = sync_server.add_insecure_port("127.0.0.1:0")
    sync_server.start()
    targets = [f"127.0.0.1:{aio_port}", f"127.0.0.1:{sync_port}"]
    started = time.monotonic()
    print(
        f"soak: {duration:g} s after a {args.warmup:g} s warm-up; async server :{aio_port}, "
        f"blocking server :{sync_port}; connections: {args.async_connections} async, "
        f"{args.blocking_connections} blocking, {args.grpcio_connections} grpcio; "
        f"{sys.implementation.name} {sys.version.split()[0]}",
        flush=True,
    )
    try:
        warmup = Load(args, targets, args.seed)
        warmup.start()
        await asyncio.sleep(args.warmup)
        await warmup.finish()
        baseline = await quiesce(None)
        traced = tracemalloc.take_snapshot() if args.tracemalloc else None
        traced_bytes = tracemalloc.get_traced_memory()[0] if args.tracemalloc else 0
        baseline_types = object_types() if args.object_types else {}
        print(
            f"[{time.monotonic() - started:7.1f} s] baseline after warm-up "
            f"({format_tally(warmup.total())}): {baseline}",
            flush=True,
        )

        load = Load(args, targets, args.seed + 1)
        load.start()
        run_started = time.monotonic()
        end = run_started + duration
        while True:
            now = time.monotonic()
            if now >= end:
                break
            await asyncio.sleep(min(args.interval, end - now))
            print(
                f"[{time.monotonic() - started:7.1f} s] {format_tally(load.total())} "
                f"(grpcio at the end) connections={load.connections_opened} {snapshot()}",
                flush=True,
            )
        await load.finish()
        run_seconds = time.monotonic() - run_started
        final = await quiesce(baseline["fds"])
    finally:
        await aio_server.stop(grace=1)
        sync_server.stop(grace=1)

    if traced is not None:
        now_bytes = tracemalloc.get_traced_memory()[0]
        print(
            f"  traced by Python's allocator: {traced_bytes / 2**20:.2f} MiB at the baseline, "
            f"{now_bytes / 2**20:.2f} MiB at the end",
            flush=True,
        )
        grown = tracemalloc.take_snapshot().compare_to(traced, "lineno")
        for stat in grown[:12]:
            print(f"  traced: {stat}", flush=True)
    if args.object_types:
        types = object_types()
        growth = sorted(((types[k] - baseline_types.get(k, 0), k) for k in types), reverse=True)
        print("  object types grown: " + ", ".join(f"{k} +{n}" for n, k in growth[:15]), flush=True)
        names: dict[str, int] = {}
        for thread in threading.enumerate():
            name = thread.name.split("-")[0] + "-" + "".join(thread.name.split("-")[1:2])
            names[name] = names.get(name, 0) + 1
        print(f"  threads: {names}", flush=True)
    total = load.total()
    rss_growth = final["rss_mib"] - baseline["rss_mib"]
    fd_growth = final["fds"] - baseline["fds"]
    print(f"[{time.monotonic() - started:7.1f} s] end: {format_tally(total)}", flush=True)
    for name, part in (
        ("async", load.async_tally.as_dict()),
        ("blocking", load.blocking_tally.as_dict()),
        ("grpcio", load.grpcio_tally),
    ):
        if part:
            print(f"  {name:8s} {part.get('by_status')}", flush=True)
    print(
        f"  after closing: {final}; baseline {baseline}; RSS growth {rss_growth:+.2f} MiB, "
        f"fds {fd_growth:+d}; {load.connections_opened} h2rpc connections opened, "
        f"{total.total / run_seconds:.0f} calls/s",
        flush=True,
    )
    for example in total.examples:
        print(f"  unexpected: {example}", flush=True)
    for message in errors.messages[:20]:
        print(f"  logged: {message}", flush=True)
    failed = bool(total.unexpected) or fd_growth > 0 or bool(errors.messages)
    if fd_growth > 0:
        print("  fds left open:\n    " + "\n    ".join(sorted(fd_listing())), flush=True)
    if args.max_rss_growth_mib is not None and rss_growth > args.max_rss_growth_mib:
        print(f"  RSS grew by more than {args.max_rss_growth_mib} MiB", flush=True)
        failed = True
    summary = {
        "seconds": round(run_seconds, 1),
        "calls": total.total,
        "by_status": total.by_status,
        "unexpected": total.unexpected,
        "baseline": baseline,
        "final": final,
        "rss_growth_mib": round(rss_growth, 2),
        "fd_growth": fd_growth,
        "connections": load.connections_opened,
        "errors_logged": len(errors.messages),
        "failed": failed,
    }
    print("SUMMARY " + json.dumps(summary), flush=True)
    return 1 if failed else 0


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.soak", description=__doc__.split("\n")[0]
    )
    length = parser.add_mutually_exclusive_group()
    length.add_argument("--minutes", type=float, default=1.0)
    length.add_argument("--seconds", type=float)
    parser.add_argument("--interval", type=float, default=60.0, help="seconds between reports")
    parser.add_argument("--warmup", type=float, default=10.0, help="seconds of warm-up traffic")
    parser.add_argument("--async-connections", type=int, default=30)
    parser.add_argument("--blocking-connections", type=int, default=12)
    parser.add_argument("--grpcio-connections", type=int, default=8, help="0: no grpcio client")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--max-rss-growth-mib", type=float)
    parser.add_argument(
        "--tracemalloc",
        action="store_true",
        help="at the end, the source lines whose traced allocations grew most (slow)",
    )
    parser.add_argument(
        "--object-types", action="store_true", help="at the end, the types whose count grew most"
    )
    args = parser.parse_args(argv)
    return asyncio.run(soak(args))
