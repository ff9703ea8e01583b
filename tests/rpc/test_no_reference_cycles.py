"""Failed calls leave no reference cycle through h2rpc's frames.

An error kept in a local after it was thrown into a program (or raised) holds its traceback, the
traceback the frames it passed, and a frame its locals: if one of those locals is the error, the
lot is a cycle that only the cycle collector frees, seconds later on an idle process. Whatever
the frames held waits with it: the call, its messages, a handler's response generator (whose
``finally`` ran late: the fault tests saw a cancelled blocking handler "still running").

Each case runs one failing call with the collector off and then asks the collector what it would
free (``DEBUG_SAVEALL`` keeps it in ``gc.garbage``): no frame of rpc/ or transport/ may be there.
"""

from __future__ import annotations

import gc
import sys
import time
import types
from collections.abc import Iterator
from typing import Any, Callable

import pytest

import rpc
from tests.rpc.helpers import run, serving_blocking

pb = pytest.importorskip("examples.route_guide.route_guide_pb2")
SERVICE = pb.DESCRIPTOR.services_by_name["RouteGuide"]

pytestmark = [
    pytest.mark.time_limit(60),
    pytest.mark.skipif(
        sys.implementation.name != "cpython",
        reason="a CPython matter: without reference counting every object waits for the collector",
    ),
]

SLOW = 5  # latitudes the servicer treats specially
RAISES = 6


class Guide:
    def GetFeature(self, request: Any, context: Any) -> Any:
        if request.latitude == SLOW:
            time.sleep(0.5)
        if request.latitude == RAISES:
            raise ValueError("a handler's bug")
        return pb.Feature(name="here", location=request)

    def ListFeatures(self, request: Any, context: Any) -> Iterator[Any]:
        while True:  # until the call ends: a client that reads slowly holds it at its window
            yield pb.Feature(name="x" * 65536)


def our_frames_in_garbage(run_failing_call: Callable[[], None]) -> list[str]:
    """The rpc/transport frames the collector finds unreachable after ``run_failing_call``."""
    gc.collect()
    gc.garbage.clear()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        run_failing_call()
        time.sleep(0.3)  # the server's side of the call ends too
        gc.collect()
        found = {
            f"{frame.f_code.co_filename.rsplit('/', 2)[-2]}/{frame.f_code.co_name}"
            for frame in gc.garbage
            if isinstance(frame, types.FrameType)
            and any(f"/{package}/" in frame.f_code.co_filename for package in ("rpc", "transport"))
        }
        return sorted(found)
    finally:
        gc.set_debug(0)
        gc.garbage.clear()


@pytest.fixture(params=["blocking", "asyncio"])
def target(request: pytest.FixtureRequest) -> Iterator[str]:
    server: Any = rpc.sync.Server(max_workers=4) if request.param == "blocking" else rpc.Server()
    server.add_service(SERVICE, Guide())
    with serving_blocking(server) as target:
        yield target


@pytest.fixture
def collector_off() -> Iterator[None]:
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def code_of(call: Callable[[], Any]) -> Any:
    """The status code ``call`` fails with. (Not ``pytest.raises``: its ExceptionInfo, a local of
    a frame the traceback passed, would make the very cycle looked for here.)"""
    try:
        call()
    except rpc.RpcError as error:
        return error.code()
    return rpc.StatusCode.OK


async def acode_of(call: Any) -> Any:
    try:
        await call
    except rpc.RpcError as error:
        return error.code()
    return rpc.StatusCode.OK


def blocking_failures(stub: Any) -> dict[str, Callable[[], None]]:
    def deadline() -> None:
        code = code_of(lambda: stub.GetFeature(pb.Point(latitude=SLOW), timeout=0.1))
        assert code == rpc.StatusCode.DEADLINE_EXCEEDED

    def handler_raises() -> None:
        code = code_of(lambda: stub.GetFeature(pb.Point(latitude=RAISES), timeout=5))
        assert code == rpc.StatusCode.UNKNOWN

    def stream_deadline() -> None:
        # The client reads slowly: the server's handler waits for window when the deadline
        # passes (its send times out, or the reset wakes it), the client's read times out.
        def read_slowly() -> None:
            for _ in stub.ListFeatures(pb.Rectangle(), timeout=0.5):
                time.sleep(0.2)

        assert code_of(read_slowly) == rpc.StatusCode.DEADLINE_EXCEEDED

    def stream_cancelled() -> None:
        responses = stub.ListFeatures(pb.Rectangle())
        next(responses)
        time.sleep(0.3)  # the handler waits for window
        responses.cancel()

    return {
        "deadline": deadline,
        "handler_raises": handler_raises,
        "stream_deadline": stream_deadline,
        "stream_cancelled": stream_cancelled,
    }


@pytest.mark.parametrize("failure", list(blocking_failures(None)))
@pytest.mark.usefixtures("collector_off")
def test_a_failed_blocking_call_leaves_no_cycle(target: str, failure: str) -> None:
    with rpc.sync.Channel(target) as channel:
        stub = rpc.Stub(channel, SERVICE)
        assert stub.GetFeature(pb.Point(latitude=1), timeout=5).name == "here"  # connected
        assert our_frames_in_garbage(blocking_failures(stub)[failure]) == []


@pytest.mark.usefixtures("collector_off")
def test_failed_asyncio_calls_leave_no_cycle(target: str) -> None:
    async def calls() -> None:
        async with rpc.Channel(target) as channel:
            stub = rpc.Stub(channel, SERVICE)
            code = await acode_of(stub.GetFeature(pb.Point(latitude=SLOW), timeout=0.1))
            assert code == rpc.StatusCode.DEADLINE_EXCEEDED
            code = await acode_of(stub.GetFeature(pb.Point(latitude=RAISES), timeout=5))
            assert code == rpc.StatusCode.UNKNOWN

    assert our_frames_in_garbage(lambda: run(calls())) == []
