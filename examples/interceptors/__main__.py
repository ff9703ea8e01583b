"""All three examples on one server: ``python -m examples.interceptors [--api async|blocking]``.

A greeter server with ``BearerAuth`` (grpcio's ``intercept_service`` shape), ``AccessLog`` and
``LatencyHistogram`` (``rpc.Interceptor``); a client without the token (UNAUTHENTICATED), then
one with it (``BearerToken``, a client interceptor); the access log and the histogram.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

import rpc
from examples.helloworld import helloworld_pb2
from examples.interceptors.access_log import AccessLog
from examples.interceptors.auth import BearerAuth, BearerToken, BlockingBearerToken
from examples.interceptors.latency import LatencyHistogram

GREETER = helloworld_pb2.DESCRIPTOR.services_by_name["Greeter"]
TOKEN = "s3cret"
CALLS = 5


class Greeter:
    def SayHello(self, request: Any, context: Any) -> Any:  # def: runs on both servers
        return helloworld_pb2.HelloReply(message=f"Hello, {request.name}!")


def interceptors(histogram: LatencyHistogram) -> list[Any]:
    return [BearerAuth(TOKEN), AccessLog(print), histogram]


async def run_async(histogram: LatencyHistogram) -> None:
    server = rpc.Server(interceptors=interceptors(histogram))
    server.add_service(GREETER, Greeter())
    target = f"127.0.0.1:{server.add_insecure_port('127.0.0.1:0')}"
    await server.start()
    try:
        async with rpc.Channel(target) as channel:
            try:
                await rpc.Stub(channel, GREETER).SayHello(
                    helloworld_pb2.HelloRequest(name="anonymous"), timeout=5
                )
            except rpc.RpcError as exc:
                print(f"without a token: {exc.code().name} ({exc.details()})")
        async with rpc.Channel(target, interceptors=[BearerToken(TOKEN)]) as channel:
            stub = rpc.Stub(channel, GREETER)
            for i in range(CALLS):
                reply = await stub.SayHello(helloworld_pb2.HelloRequest(name=f"user{i}"), timeout=5)
            print(f"with the token: {reply.message}")
    finally:
        await server.stop(0.5)


def run_blocking(histogram: LatencyHistogram) -> None:
    server = rpc.sync.Server(interceptors=interceptors(histogram))
    server.add_service(GREETER, Greeter())
    target = f"127.0.0.1:{server.add_insecure_port('127.0.0.1:0')}"
    server.start()
    try:
        with rpc.sync.Channel(target) as channel:
            try:
                rpc.Stub(channel, GREETER).SayHello(
                    helloworld_pb2.HelloRequest(name="anonymous"), timeout=5
                )
            except rpc.RpcError as exc:
                print(f"without a token: {exc.code().name} ({exc.details()})")
        with rpc.sync.Channel(target, interceptors=[BlockingBearerToken(TOKEN)]) as channel:
            stub = rpc.Stub(channel, GREETER)
            for i in range(CALLS):
                reply = stub.SayHello(helloworld_pb2.HelloRequest(name=f"user{i}"), timeout=5)
            print(f"with the token: {reply.message}")
    finally:
        server.stop(0.5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--api", choices=("async", "blocking"), default="async")
    args = parser.parse_args()
    histogram = LatencyHistogram()
    if args.api == "async":
        asyncio.run(run_async(histogram))
    else:
        run_blocking(histogram)
    print(histogram.render())


if __name__ == "__main__":
    main()
