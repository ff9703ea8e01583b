"""What retries cost a unary call that never fails: client CPU and Python calls per call.

Runs one blocking h2rpc echo server, then client processes in turn (interleaved rounds, medians)
for each variant: no service config, a retry policy, a hedging policy (whose delay never
passes). ``--base PATH`` adds a run of another source tree without a service config (an A/B
against a checkout from before retries, say). The client measures ``time.process_time()`` over
N sequential calls and counts Python function calls (``sys.setprofile``) for one call, on the
blocking and the asyncio channel; calls are the stable number on a busy machine.

    python tests/bench/retry_overhead.py --rounds 5 --calls 3000 [--base /tmp/base]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SERVER = """
import sys, rpc
echo = rpc.unary_unary_rpc_method_handler(lambda request, context: request)
server = rpc.sync.Server([rpc.method_handlers_generic_handler("t.B", {"Echo": echo})])
print(server.add_insecure_port("127.0.0.1:0"), flush=True)
server.start()
sys.stdin.read()
server.stop(0)
"""

CLIENT = """
import asyncio, json, sys, time
import rpc
target, n, options = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3])
out = {}

def profiled(counter):
    def profile(frame, event, arg):
        if event == "call":
            counter[0] += 1
    return profile

with rpc.sync.Channel(target, **options) as channel:
    method = channel.unary_unary("/t.B/Echo")
    for _ in range(200):
        method(b"x")
    start = time.process_time()
    for _ in range(n):
        method(b"x")
    out["sync_us"] = (time.process_time() - start) / n * 1e6
    calls = [0]
    sys.setprofile(profiled(calls)); method(b"x"); sys.setprofile(None)
    out["sync_calls"] = calls[0]

async def main():
    async with rpc.Channel(target, **options) as channel:
        method = channel.unary_unary("/t.B/Echo")
        for _ in range(200):
            await method(b"x")
        start = time.process_time()
        for _ in range(n):
            await method(b"x")
        out["async_us"] = (time.process_time() - start) / n * 1e6
        calls = [0]
        sys.setprofile(profiled(calls)); await method(b"x"); sys.setprofile(None)
        out["async_calls"] = calls[0]

asyncio.run(main())
print(json.dumps(out))
"""

RETRY = {
    "maxAttempts": 3,
    "initialBackoff": "0.1s",
    "maxBackoff": "1s",
    "backoffMultiplier": 2,
    "retryableStatusCodes": ["UNAVAILABLE"],
}


def _config(policy: dict[str, object]) -> dict[str, str]:
    return {"service_config": json.dumps({"methodConfig": [{"name": [{}], **policy}]})}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--base", help="another source tree to run without a service config")
    args = parser.parse_args()
    variants: dict[str, tuple[str, dict[str, str]]] = {}
    if args.base:
        variants["base, no config"] = (args.base, {})
    variants["no config"] = (str(ROOT), {})
    variants["retryPolicy"] = (str(ROOT), _config({"retryPolicy": RETRY}))
    variants["hedgingPolicy"] = (
        str(ROOT),
        _config({"hedgingPolicy": {"maxAttempts": 2, "hedgingDelay": "5s"}}),
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    server = subprocess.Popen(
        [sys.executable, "-c", SERVER],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=env,
        text=True,
    )
    assert server.stdout is not None and server.stdin is not None
    port = server.stdout.readline().strip()
    results: dict[str, list[dict[str, float]]] = {name: [] for name in variants}
    try:
        for _ in range(args.rounds):
            for name, (tree, options) in variants.items():
                run = subprocess.run(
                    [
                        sys.executable,
                        "-c",
                        CLIENT,
                        f"127.0.0.1:{port}",
                        str(args.calls),
                        json.dumps(options),
                    ],
                    env=dict(os.environ, PYTHONPATH=tree),
                    capture_output=True,
                    text=True,
                    check=True,
                    timeout=600,
                )
                results[name].append(json.loads(run.stdout))
    finally:
        server.stdin.close()
        server.wait(10)
    print(f"{'variant':<18} {'sync us':>8} {'sync calls':>10} {'async us':>9} {'async calls':>11}")
    for name, rows in results.items():
        med = {key: statistics.median(row[key] for row in rows) for key in rows[0]}
        print(
            f"{name:<18} {med['sync_us']:>8.1f} {med['sync_calls']:>10.0f}"
            f" {med['async_us']:>9.1f} {med['async_calls']:>11.0f}"
        )


if __name__ == "__main__":
    main()
