"""The blocking server's handler threads: a bounded pool on one queue."""

from __future__ import annotations

import threading

import pytest

from rpc.sync.handler_threads import HandlerThreads
from tests.rpc.helpers import wait_until

pytestmark = pytest.mark.time_limit(20)


def test_tasks_run_and_threads_start_only_as_needed() -> None:
    pool = HandlerThreads(4, "t")
    done = threading.Event()
    seen: list[int] = []
    for i in range(10):  # one at a time: a single thread serves them all
        pool.submit(seen.append, i)
        wait_until(lambda: len(seen) > i)  # noqa: B023 (used before the next iteration)
    pool.submit(lambda _: done.set(), None)
    assert done.wait(5)
    assert seen == list(range(10))
    assert pool._threads == 1
    pool.shutdown()


def test_never_more_threads_than_the_limit_and_queued_tasks_wait_for_one() -> None:
    pool = HandlerThreads(3, "t")
    release = threading.Event()
    running = 0
    peak = 0
    lock = threading.Lock()
    finished = threading.Semaphore(0)

    def task(_: object) -> None:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        release.wait(5)
        with lock:
            running -= 1
        finished.release()

    for _ in range(8):
        pool.submit(task, None)
    assert pool._threads == 3  # threads start in submit(): never a fourth
    wait_until(lambda: peak == 3)
    assert peak == 3 and pool._threads == 3  # five tasks queued behind three busy threads
    release.set()
    for _ in range(8):
        assert finished.acquire(timeout=5)
    pool.shutdown()


def test_a_failing_task_does_not_take_its_thread_down() -> None:
    pool = HandlerThreads(1, "t")
    ok = threading.Event()

    def boom(_: object) -> None:
        raise ValueError("handler bug")

    pool.submit(boom, None)
    pool.submit(lambda _: ok.set(), None)
    assert ok.wait(5)
    pool.shutdown()


def test_shutdown_runs_what_is_queued_and_refuses_more() -> None:
    pool = HandlerThreads(1, "t")
    gate = threading.Event()
    ran: list[int] = []
    pool.submit(lambda _: gate.wait(5), None)
    pool.submit(ran.append, 1)
    pool.shutdown()
    with pytest.raises(RuntimeError):
        pool.submit(ran.append, 2)
    gate.set()
    wait_until(lambda: bool(ran))
    assert ran == [1]
