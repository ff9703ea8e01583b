"""rpc.serve(workers=N): several processes share one port (SO_REUSEPORT), supervised."""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time

import pytest
from peers import peer_environment

import rpc


async def whoami(request: bytes, context: rpc.ServicerContext) -> bytes:
    return str(os.getpid()).encode()


def factory() -> rpc.Server:
    handler = rpc.unary_unary_rpc_method_handler(whoami)
    return rpc.Server([rpc.method_handlers_generic_handler("w.W", {"Who": handler})])


@pytest.mark.skipif(sys.platform == "win32", reason="SO_REUSEPORT and fork")
def test_two_workers_share_one_port_and_both_serve() -> None:
    stop = threading.Event()
    seen: set[bytes] = set()

    def on_ready(port: int) -> None:
        try:
            for _ in range(40):  # a new connection each time: the kernel spreads them
                with rpc.sync.Channel(f"127.0.0.1:{port}") as channel:
                    seen.add(channel.unary_unary("/w.W/Who")(b"", timeout=5))
                if len(seen) == 2:
                    break
        finally:
            stop.set()

    rpc.serve(factory, "127.0.0.1:0", workers=2, on_ready=on_ready, stop=stop, grace=1)
    assert len(seen) == 2
    assert str(os.getpid()).encode() not in seen  # served by the workers, not the parent


def pid_of_a_new_connection(port: int) -> int:
    with rpc.sync.Channel(f"127.0.0.1:{port}") as channel:
        return int(channel.unary_unary("/w.W/Who")(b"", timeout=5))


@pytest.mark.skipif(sys.platform == "win32", reason="SO_REUSEPORT, fork and SIGKILL")
def test_a_killed_worker_is_replaced_and_the_replacement_serves_on_the_same_port(
    caplog: pytest.LogCaptureFixture,
) -> None:
    stop = threading.Event()
    seen: dict[str, object] = {}

    def client(port: int) -> None:
        try:
            workers: set[int] = set()
            for _ in range(100):  # a new connection each time: the kernel spreads them
                workers.add(pid_of_a_new_connection(port))
                if len(workers) == 2:
                    break
            assert len(workers) == 2, workers
            victim = min(workers)
            os.kill(victim, signal.SIGKILL)
            seen["victim"] = victim
            end = time.monotonic() + 20
            while time.monotonic() < end:
                try:
                    pid = pid_of_a_new_connection(port)
                except rpc.RpcError:  # a connection the killed worker had not accepted yet
                    continue
                assert pid != victim
                if pid not in workers:
                    seen["replacement"] = pid
                    break
        except BaseException as exc:
            seen["error"] = exc
        finally:
            stop.set()

    threads: list[threading.Thread] = []

    def on_ready(port: int) -> None:
        threads.append(threading.Thread(target=client, args=(port,), daemon=True))
        threads[0].start()  # the supervisor must go on supervising meanwhile

    with caplog.at_level(logging.INFO, logger="rpc._aio.workers"):
        rpc.serve(factory, "127.0.0.1:0", workers=2, on_ready=on_ready, stop=stop, grace=1)
    threads[0].join(5)
    assert "error" not in seen, seen.get("error")
    assert "replacement" in seen, "no call was served by a replacement worker"
    assert f"(pid {seen['victim']}) exited with exit code -9 (SIGKILL)" in caplog.text
    assert not multiprocessing.active_children()


FAILING_FACTORY = """
import multiprocessing
import rpc

def factory():
    raise RuntimeError("this factory always fails")

try:
    rpc.serve(factory, "127.0.0.1:0", workers=2)
finally:
    print("children left:", len(multiprocessing.active_children()), flush=True)
"""


@pytest.mark.skipif(sys.platform == "win32", reason="SO_REUSEPORT and fork")
def test_serve_gives_up_and_exits_non_zero_when_workers_keep_dying_at_start_up() -> None:
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", FAILING_FACTORY],
        capture_output=True,
        text=True,
        timeout=30,
        env=peer_environment(),
    )
    took = time.monotonic() - started
    assert done.returncode == 1, done.stderr
    assert "children left: 0" in done.stdout
    assert "exited with exit code 1" in done.stderr  # each restart is logged
    assert "rpc._aio.workers.WorkerFailed: worker" in done.stderr and "giving up" in done.stderr
    assert took < 15, took


SUPERVISOR = """
import multiprocessing
import rpc

def factory():
    return rpc.Server()

def on_ready(port):
    print(*(child.pid for child in multiprocessing.active_children()), flush=True)

rpc.serve(factory, "127.0.0.1:0", workers=2, on_ready=on_ready)
"""


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.skipif(sys.platform == "win32", reason="SO_REUSEPORT and fork")
def test_workers_stop_when_their_supervisor_is_killed() -> None:
    supervisor = subprocess.Popen(
        [sys.executable, "-c", SUPERVISOR],
        stdout=subprocess.PIPE,
        text=True,
        env=peer_environment(),
    )
    workers: list[int] = []
    try:
        assert supervisor.stdout is not None
        workers = [int(pid) for pid in supervisor.stdout.readline().split()]
        assert len(workers) == 2
        supervisor.kill()  # SIGKILL: it cannot stop its workers itself
        supervisor.wait(5)
        end = time.monotonic() + 10
        while any(alive(pid) for pid in workers):
            assert time.monotonic() < end, "orphaned workers kept running"
            time.sleep(0.05)
    finally:
        supervisor.kill()
        supervisor.wait(5)
        for pid in workers:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
