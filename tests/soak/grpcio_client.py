"""The grpcio client of the soak, in its own process (grpcio's threads, fds and memory stay out
of the soak's measurements of h2rpc): ``python -m tests.soak.grpcio_client --threads N TARGET...``.

Each thread opens a grpcio channel to one of the targets, makes a few calls drawn from the same
plans as h2rpc's clients, closes it, and starts again, until stdin reaches EOF (the soak closes
it). Then it prints its tally as one JSON line on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import threading
from pathlib import Path
from typing import Any

import grpc

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "protos"))
from compile import ensure_proto_path

ensure_proto_path()
import h2rpc_test_pb2 as pb  # noqa: E402
import h2rpc_test_pb2_grpc as pb_grpc  # noqa: E402

from .plan import WRONG_ANSWER, Plan, Tally, check_responses, draw  # noqa: E402

MAX_MESSAGE = 64 * 1024 * 1024


def call(stub: Any, plan: Plan, tally: Tally) -> None:
    requests = [pb.EchoRequest(**fields) for fields in plan.requests]
    method = getattr(stub, plan.kind)
    responses: list[Any] = []
    try:
        if plan.kind in ("Unary", "ClientStream"):
            argument = requests[0] if plan.kind == "Unary" else iter(requests)
            future = method.future(argument, timeout=plan.timeout)
            if plan.cancel_after is not None:
                try:
                    future.result(timeout=plan.cancel_after)
                except grpc.FutureTimeoutError:
                    future.cancel()
            responses.append(future.result())
            outcome = future
        else:
            argument = requests[0] if plan.kind == "ServerStream" else iter(requests)
            outcome = method(argument, timeout=plan.timeout)
            if plan.cancel_after == 0:
                outcome.cancel()
            for response in outcome:
                responses.append(response)
                if plan.cancel_after is not None and len(responses) >= plan.cancel_after:
                    outcome.cancel()
    except grpc.FutureCancelledError:
        tally.add(plan, "CANCELLED")
        return
    except grpc.RpcError as exc:
        tally.add(plan, exc.code().name, exc.details() or "")
        return
    code = outcome.code().name
    if code == "OK":
        wrong = check_responses(plan, responses)
        if wrong is not None:
            tally.add(plan, WRONG_ANSWER, wrong)
            return
    tally.add(plan, code, outcome.details() or "")


def worker(targets: list[str], seed: int, stop: threading.Event, tally: Tally) -> None:
    rng = random.Random(seed)
    options = [
        ("grpc.max_receive_message_length", MAX_MESSAGE),
        ("grpc.max_send_message_length", MAX_MESSAGE),
    ]
    while not stop.is_set():
        with grpc.insecure_channel(rng.choice(targets), options=options) as channel:
            stub = pb_grpc.EchoTestStub(channel)
            for _ in range(rng.randint(1, 30)):
                if stop.is_set():
                    break
                call(stub, draw(rng), tally)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("targets", nargs="+")
    args = parser.parse_args(argv)
    stop = threading.Event()
    tallies = [Tally() for _ in range(args.threads)]
    threads = [
        threading.Thread(target=worker, args=(args.targets, args.seed * 1000 + i, stop, tally))
        for i, tally in enumerate(tallies)
    ]
    for thread in threads:
        thread.start()
    print("STARTED", flush=True)
    sys.stdin.read()  # until the soak closes our stdin
    stop.set()
    for thread in threads:
        thread.join()
    total = Tally()
    for tally in tallies:
        total.merge(tally.as_dict())
    print(json.dumps(total.as_dict()), flush=True)
    # Leave without the interpreter's finalization: grpcio's objects finalized by the last
    # collection at exit can wait forever on a lock (seen once in CI: this process, its workers
    # gone and its tally printed, stuck in a __del__'s RLock.acquire under gc at shutdown; the
    # soak waited for it until the test's timeout). Everything it owes the soak is printed.
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
