"""What a unary call costs the client per load balancing policy, and how round_robin spreads.

    PYTHONPATH=. python -m tests.bench.lb_calls [--calls 3000]

Starts three ``rpc.sync.Server`` backends in a subprocess, then for each client API prints the
function calls per unary call (``sys.setprofile`` call events on the calling thread: exact, not
disturbed by other load) and the client CPU per call (``time.process_time``), for pick_first on
one address and round_robin over the three, and the spread of round_robin's calls. Run it with
``PYTHONPATH`` on two trees, alternating, for an A/B.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import subprocess
import sys
import time
from typing import Any

import rpc

SERVER = """
import sys, rpc
servers = []
for i in range(3):
    handler = rpc.unary_unary_rpc_method_handler(lambda r, c, name=f"b{i}": name.encode())
    s = rpc.sync.Server([rpc.method_handlers_generic_handler("lb.Test", {"Who": handler})])
    print(s.add_insecure_port("127.0.0.1:0"), flush=True)
    s.start()
    servers.append(s)
sys.stdin.read()
for s in servers:
    s.stop(0)
"""

_count = [0]


def _policy(policy: str) -> dict[str, str]:
    """No option for the default (so that a tree without load balancing runs it too)."""
    return {} if policy == "pick_first" else {"lb_policy_name": policy}


def _profile(frame: Any, event: str, arg: Any) -> None:
    if event == "call":
        _count[0] += 1


async def _aio(target: str, policy: str, n: int) -> tuple[float, float, collections.Counter[bytes]]:
    async with rpc.Channel(target, **_policy(policy)) as channel:
        who = channel.unary_unary("/lb.Test/Who")
        for _ in range(300):
            await who(b"")
        _count[0] = 0
        sys.setprofile(_profile)
        for _ in range(200):
            await who(b"")
        sys.setprofile(None)
        calls = _count[0] / 200
        seen: collections.Counter[bytes] = collections.Counter()
        start = time.process_time()
        for _ in range(n):
            seen[await who(b"")] += 1
        return calls, (time.process_time() - start) / n * 1e6, seen


def _sync(target: str, policy: str, n: int) -> tuple[float, float, collections.Counter[bytes]]:
    with rpc.sync.Channel(target, **_policy(policy)) as channel:
        who = channel.unary_unary("/lb.Test/Who")
        for _ in range(300):
            who(b"")
        _count[0] = 0
        sys.setprofile(_profile)
        for _ in range(200):
            who(b"")
        sys.setprofile(None)
        calls = _count[0] / 200
        seen: collections.Counter[bytes] = collections.Counter()
        start = time.process_time()
        for _ in range(n):
            seen[who(b"")] += 1
        return calls, (time.process_time() - start) / n * 1e6, seen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=3000)
    args = parser.parse_args()
    server = subprocess.Popen(
        [sys.executable, "-c", SERVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert server.stdout is not None
        ports = [int(server.stdout.readline()) for _ in range(3)]
        one = f"127.0.0.1:{ports[0]}"
        three = "ipv4:" + ",".join(f"127.0.0.1:{port}" for port in ports)
        for api in ("rpc.Channel", "rpc.sync.Channel"):
            for policy, target in (("pick_first", one), ("round_robin", three)):
                try:
                    if api == "rpc.Channel":
                        calls, cpu, seen = asyncio.run(_aio(target, policy, args.calls))
                    else:
                        calls, cpu, seen = _sync(target, policy, args.calls)
                except (TypeError, ValueError) as exc:
                    print(f"{api:17} {policy:12} not supported here ({exc})")
                    continue
                spread = " ".join(f"{k.decode()}={v}" for k, v in sorted(seen.items()))
                print(
                    f"{api:17} {policy:12} {calls:6.1f} calls/unary  {cpu:6.1f} us CPU/unary"
                    f"  {spread}"
                )
    finally:
        assert server.stdin is not None
        server.stdin.close()
        server.wait(10)


if __name__ == "__main__":
    main()
