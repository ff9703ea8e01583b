"""The benchmark runner's balancing section: how round_robin spreads calls over backends.

3,000 unary calls through one channel whose target names three backends
(``ipv4:127.0.0.1:a,127.0.0.1:b,127.0.0.1:c``) with ``round_robin``: from h2rpc's asyncio and
blocking channels, and from grpcio's for comparison. The backends are three ``rpc.sync.Server``
in one process (``tests/bench/lb_calls.py``'s), each answering with its name, so the count per
backend is exact. Printed as counts and the largest deviation from an even share (the issue's
target: within 10%); a count, never a timing, and never asserted here (the balancer's own tests
check the policy).
"""

from __future__ import annotations

import asyncio
import collections
import subprocess
import sys
from typing import Any

CALLS = 3000
BACKENDS = 3
TOLERANCE = 0.10


def _start_backends() -> tuple[subprocess.Popen[str], list[int]]:
    from .lb_calls import SERVER

    server = subprocess.Popen(
        [sys.executable, "-c", SERVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert server.stdout is not None
    return server, [int(server.stdout.readline()) for _ in range(BACKENDS)]


async def _spread_aio(target: str, calls: int) -> collections.Counter[str]:
    import rpc

    seen: collections.Counter[str] = collections.Counter()
    async with rpc.Channel(target, lb_policy_name="round_robin") as channel:
        who = channel.unary_unary("/lb.Test/Who")
        for _ in range(calls):
            seen[(await who(b"", timeout=10)).decode()] += 1
    return seen


def _spread_sync(target: str, calls: int) -> collections.Counter[str]:
    import rpc

    seen: collections.Counter[str] = collections.Counter()
    with rpc.sync.Channel(target, lb_policy_name="round_robin") as channel:
        who = channel.unary_unary("/lb.Test/Who")
        for _ in range(calls):
            seen[who(b"", timeout=10).decode()] += 1
    return seen


def _spread_grpcio(target: str, calls: int) -> collections.Counter[str]:
    import grpc

    seen: collections.Counter[str] = collections.Counter()
    options = [("grpc.lb_policy_name", "round_robin")]
    with grpc.insecure_channel(target, options=options) as channel:
        who = channel.unary_unary("/lb.Test/Who")
        grpc.channel_ready_future(channel).result(timeout=10)
        for _ in range(calls):
            seen[who(b"", timeout=10).decode()] += 1
    return seen


CLIENTS = {
    "h2rpc `rpc.Channel`": lambda target, n: asyncio.run(_spread_aio(target, n)),
    "h2rpc `rpc.sync.Channel`": _spread_sync,
    "grpcio": _spread_grpcio,
}


def balancing_section(calls: int = CALLS) -> dict[str, Any]:
    """The spread of ``calls`` round_robin calls for each client; an error per client."""
    results: dict[str, Any] = {}
    try:
        server, ports = _start_backends()
    except ImportError as exc:  # a tree without the balancer (rpc.client) and its benchmark
        return {"skipped": f"no round_robin balancer here ({exc})"}
    target = "ipv4:" + ",".join(f"127.0.0.1:{port}" for port in ports)
    try:
        for label, spread in CLIENTS.items():
            print(f"[balancing] {label}, round_robin, {calls} calls ...", flush=True)
            try:
                seen = spread(target, calls)
            except ImportError as exc:
                results[label] = {"skipped": str(exc)}
                continue
            except Exception as exc:  # reported in the table, like a failed run
                results[label] = {"error": f"{type(exc).__name__}: {exc}"}
                continue
            results[label] = {"counts": [seen.get(f"b{i}", 0) for i in range(BACKENDS)]}
    finally:
        assert server.stdin is not None
        server.stdin.close()
        server.wait(10)
    return results


def deviation(counts: list[int]) -> float:
    """The largest distance of a backend's count from an even share, as a fraction of it."""
    even = sum(counts) / len(counts)
    return max(abs(c - even) for c in counts) / even if even else 1.0


def balancing_markdown(section: dict[str, Any]) -> list[str]:
    if not section:
        return []
    out = [
        "",
        f"### round_robin over {BACKENDS} backends: {CALLS:,} unary calls, one channel",
        "",
    ]
    if "skipped" in section:
        return [*out, f"Skipped: {section['skipped']}"]
    out += [
        "| client | calls per backend | largest deviation from an even share | within 10% |",
        "|---|---|---|---|",
    ]
    for label, result in section.items():
        if "skipped" in result or "error" in result:
            why = result.get("skipped") or f"failed: {result['error'].splitlines()[0]}"
            out.append(f"| {label} | {why} | | |")
            continue
        counts = result["counts"]
        worst = deviation(counts)
        ok = "yes" if worst <= TOLERANCE else "no"
        out.append(f"| {label} | {' / '.join(map(str, counts))} | {100 * worst:.1f}% | {ok} |")
    return out


def balancing_failed(section: dict[str, Any]) -> bool:
    return any(isinstance(r, dict) and "error" in r for r in section.values())
