"""The greeter client: ``python -m examples.helloworld.client [--target localhost:50051]``."""

from __future__ import annotations

import argparse
import asyncio

import rpc
from examples.helloworld import helloworld_pb2

GREETER = helloworld_pb2.DESCRIPTOR.services_by_name["Greeter"]


async def greet(target: str, name: str) -> str:
    async with rpc.Channel(target) as channel:
        stub = rpc.Stub(channel, GREETER)
        reply = await stub.SayHello(helloworld_pb2.HelloRequest(name=name), timeout=10)
        return reply.message


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--target", default="localhost:50051")
    parser.add_argument("--name", default="world")
    args = parser.parse_args()
    print(asyncio.run(greet(args.target, args.name)))


if __name__ == "__main__":
    main()
