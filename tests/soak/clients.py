"""One soak call, made with h2rpc's async API or its blocking API, judged by its plan."""

from __future__ import annotations

import asyncio
from typing import Any

import h2rpc_test_pb2 as pb

import rpc

from .plan import WRONG_ANSWER, Plan, Tally, check_responses


async def call_async(stub: Any, plan: Plan, tally: Tally) -> None:
    requests = [pb.EchoRequest(**fields) for fields in plan.requests]
    method = getattr(stub, plan.kind)
    if plan.kind in ("Unary", "ServerStream"):
        call = method(requests[0], timeout=plan.timeout)
    else:
        call = method(iter(requests), timeout=plan.timeout)
    responses: list[Any] = []
    try:
        if plan.kind in ("Unary", "ClientStream"):
            if plan.cancel_after is None:
                responses.append(await call)
            else:
                waiter = asyncio.ensure_future(_await(call))
                done, _ = await asyncio.wait([waiter], timeout=plan.cancel_after)
                if not done:
                    call.cancel()
                responses.append(await waiter)
        else:
            async for response in call:
                responses.append(response)
                if plan.cancel_after is not None and len(responses) >= plan.cancel_after:
                    call.cancel()
            if plan.cancel_after == 0:
                call.cancel()
    except rpc.RpcError as exc:
        tally.add(plan, exc.code().name, exc.details() or "")
        return
    except asyncio.CancelledError:
        # Awaiting a call that was cancelled raises CancelledError, as grpc.aio's does.
        if not call.cancelled():
            raise
        tally.add(plan, "CANCELLED")
        return
    code = (await call.code()).name
    if code == "OK":
        wrong = check_responses(plan, responses)
        if wrong is not None:
            tally.add(plan, WRONG_ANSWER, wrong)
            return
    tally.add(plan, code, await call.details())


async def _await(call: Any) -> Any:
    return await call


def call_blocking(stub: Any, plan: Plan, tally: Tally) -> None:
    requests = [pb.EchoRequest(**fields) for fields in plan.requests]
    method = getattr(stub, plan.kind)
    responses: list[Any] = []
    call: Any = None
    try:
        if plan.kind in ("Unary", "ClientStream"):
            argument = requests[0] if plan.kind == "Unary" else iter(requests)
            if plan.cancel_after is None:
                response, call = method.with_call(argument, timeout=plan.timeout)
                responses.append(response)
            else:
                call = method.future(argument, timeout=plan.timeout)
                try:
                    responses.append(call.result(timeout=plan.cancel_after))
                except rpc.sync.FutureTimeoutError:
                    call.cancel()
                    responses.append(call.result())
        else:
            argument = requests[0] if plan.kind == "ServerStream" else iter(requests)
            call = method(argument, timeout=plan.timeout)
            if plan.cancel_after == 0:
                call.cancel()
            for response in call:
                responses.append(response)
                if plan.cancel_after is not None and len(responses) >= plan.cancel_after:
                    call.cancel()
    except rpc.RpcError as exc:
        tally.add(plan, exc.code().name, exc.details() or "")
        return
    except rpc.sync.FutureCancelledError:
        tally.add(plan, "CANCELLED")
        return
    code = call.code().name
    if code == "OK":
        wrong = check_responses(plan, responses)
        if wrong is not None:
            tally.add(plan, WRONG_ANSWER, wrong)
            return
    tally.add(plan, code, call.details() or "")
