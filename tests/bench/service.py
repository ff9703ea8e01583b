"""The benchmark service (bench.proto), shared by every server and client script of tests/bench.

No generated ``_pb2`` module: the runner compiles ``bench.proto`` once into a serialized
``FileDescriptorSet`` (plain protobuf data, readable by any protobuf runtime, so the same file
serves CPython with protobuf 7 and PyPy with protobuf 6) and publishes its path in
``$H2RPC_BENCH_DESCRIPTOR``; each process builds the message classes from it, exactly as a
generated module would. Run alone, a script compiles its own copy (this needs grpcio-tools).

Also here: what every benchmark process does first (``prepare_process``: pin to the CPU the runner
chose, raise the open-file limit) and the stop protocol of servers (``PORT <n>`` on stdout, serve
until SIGTERM, SIGINT or EOF on stdin).

Runs on Python 3.9+ and PyPy (the h2rpc side of the benchmark runs there too); imports no grpc.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import os
import select
import shutil
import signal
import stat
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any, Callable, Optional

DESCRIPTOR_ENV = "H2RPC_BENCH_DESCRIPTOR"
CPU_ENV = "H2RPC_BENCH_CPU"
BENCH_DIR = Path(__file__).resolve().parent
PROTO_FILE = BENCH_DIR / "bench.proto"

SERVICE_NAME = "bench.Bench"
UNARY_PATH = f"/{SERVICE_NAME}/Unary"
SERVER_STREAM_PATH = f"/{SERVICE_NAME}/ServerStream"
BIDI_PATH = f"/{SERVICE_NAME}/Bidi"

#: The payload of unary calls and ping-pong round trips, as in the issue: 16 bytes.
SMALL_BODY = b"0123456789abcdef"
#: Every server accepts and sends messages up to this size (1 MiB messages plus room).
MAX_MESSAGE = 8 * 1024 * 1024


def prepare_process() -> None:
    """Pin this process to ``$H2RPC_BENCH_CPU`` (before any thread starts, so all inherit it)
    and raise the soft open-file limit to the hard one (1,000-connection tests)."""
    cpu = os.environ.get(CPU_ENV)
    if cpu and hasattr(os, "sched_setaffinity"):
        try:
            os.sched_setaffinity(0, {int(c) for c in cpu.split(",")})
        except (OSError, ValueError) as exc:
            print(f"cannot pin to CPU {cpu}: {exc}", file=sys.stderr)
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if hard == resource.RLIM_INFINITY or soft < hard:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ImportError, OSError, ValueError):
        pass


def compile_descriptor(out_path: Path) -> Path:
    """Compile bench.proto into a FileDescriptorSet at ``out_path`` (needs grpcio-tools)."""
    try:
        from grpc_tools import protoc
    except ImportError as exc:
        raise RuntimeError(
            f"cannot compile {PROTO_FILE.name}: {exc}; "
            f"install grpcio-tools or set ${DESCRIPTOR_ENV}"
        ) from exc
    status = protoc.main(
        [
            "grpc_tools.protoc",
            f"--proto_path={BENCH_DIR}",
            f"--descriptor_set_out={out_path}",
            str(PROTO_FILE),
        ]
    )
    if status != 0:
        raise RuntimeError(f"protoc failed with status {status} on {PROTO_FILE}")
    return out_path


def descriptor_path() -> Path:
    """``$H2RPC_BENCH_DESCRIPTOR``, or a fresh compilation removed at exit."""
    path = os.environ.get(DESCRIPTOR_ENV)
    if path:
        return Path(path)
    tmp = Path(tempfile.mkdtemp(prefix="h2rpc-bench-proto-"))
    atexit.register(shutil.rmtree, tmp, ignore_errors=True)
    return compile_descriptor(tmp / "bench.desc")


class _Messages:
    """The message classes and the service descriptor of bench.proto."""

    def __init__(self) -> None:
        from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

        files = descriptor_pb2.FileDescriptorSet.FromString(descriptor_path().read_bytes())
        pool = descriptor_pool.DescriptorPool()
        for file in files.file:
            pool.Add(file)
        self.pool = pool
        self.Payload: Any = message_factory.GetMessageClass(
            pool.FindMessageTypeByName("bench.Payload")
        )
        self.StreamRequest: Any = message_factory.GetMessageClass(
            pool.FindMessageTypeByName("bench.StreamRequest")
        )
        self.service: Any = pool.FindServiceByName(SERVICE_NAME)


_messages: Optional[_Messages] = None


def messages() -> _Messages:
    global _messages
    if _messages is None:
        _messages = _Messages()
    return _messages


class StreamBodies:
    """The server's streamed messages: one prebuilt message per size, sent ``count`` times."""

    def __init__(self) -> None:
        self._cache: dict[int, Any] = {}

    def get(self, size: int) -> Any:
        message = self._cache.get(size)
        if message is None:
            message = self._cache[size] = messages().Payload(body=b"x" * size)
        return message


# ---------------------------------------------------------------------------- server processes


def server_arguments(description: str, *, uvloop: bool = False) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument(
        "--intercepted", action="store_true", help="h2rpc servers: with one no-op interceptor"
    )
    if uvloop:
        parser.add_argument("--uvloop", action="store_true", help="run on uvloop's event loop")
    return parser


def announce(port: int) -> None:
    """The line the runner waits for: the server accepts connections on ``port``."""
    print(f"PORT {port}", flush=True)


def _stdin_is_pipe() -> bool:
    """Whether stdin is a pipe (the runner's): its EOF means the runner went away. Run by hand
    with stdin on a terminal, a file or /dev/null, only signals stop a server."""
    try:
        return stat.S_ISFIFO(os.fstat(sys.stdin.fileno()).st_mode)
    except (OSError, ValueError, AttributeError):
        return False


def wait_for_stop_blocking() -> None:
    """Block until SIGTERM, SIGINT or EOF on stdin (the runner went away)."""
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    if not _stdin_is_pipe():
        while not stop.wait(0.5):
            pass
        return
    stdin = sys.stdin.fileno()
    while not stop.is_set():
        try:
            readable = select.select([stdin], [], [], 0.2)[0]
        except InterruptedError:
            continue
        if readable and not os.read(stdin, 4096):
            return


async def wait_for_stop_async() -> None:
    """Await SIGTERM, SIGINT or EOF on stdin, watched by the event loop itself."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    stdin = sys.stdin.fileno()

    def on_stdin() -> None:
        try:
            data = os.read(stdin, 4096)
        except OSError:
            data = b""
        if not data:
            loop.remove_reader(stdin)
            stop.set()

    if _stdin_is_pipe():
        loop.add_reader(stdin, on_stdin)
    await stop.wait()


def run_async(main: Callable[[], Any], use_uvloop: bool) -> Any:
    """``asyncio.run(main())``, on uvloop's loop when asked."""
    if use_uvloop:
        import uvloop

        if hasattr(uvloop, "run"):
            return uvloop.run(main())
        uvloop.install()
    return asyncio.run(main())
