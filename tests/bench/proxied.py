"""The benchmark runner's proxy section: servers behind HAProxy, driven by h2load.

``rpc.serve(workers=2)`` behind HAProxy against one server process behind it and against the
same process reached directly, beside grpcio's synchronous server both ways: unary calls, h2load
with several connections (``-c 4 -m 64``), nothing pinned (HAProxy, h2load and the servers share
the machine). HAProxy runs the README's config (tests/proxies/configs/haproxy-grpc.cfg) with
both ``server`` lines pointing at the one address the server (all its workers) listens on: two
backend connection pools, whose connections the kernel spreads over the workers
(``SO_REUSEPORT``). Reported: calls/s, the CPU time per call of the servers and of HAProxy, and
for workers how the server CPU was shared among them (what shows whether both served). Numbers
are printed, never checked.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any, Optional

from tests.proxies.proxy_processes import HAProxy, find_program

from . import run as bench

#: (label, implementation, worker processes, behind HAProxy)
CASES = (
    ("h2rpc async (uvloop), 1 process, direct", "h2rpc-async-uvloop", 1, False),
    ("h2rpc async (uvloop), 1 process, behind HAProxy", "h2rpc-async-uvloop", 1, True),
    ("h2rpc `rpc.serve(workers=2)`, behind HAProxy", "h2rpc-async", 2, True),
    ("grpcio sync, 1 process, direct", "grpcio-sync", 1, False),
    ("grpcio sync, 1 process, behind HAProxy", "grpcio-sync", 1, True),
)
CONNECTIONS = 4


def pid_cpu_seconds(pid: int) -> float:
    """utime + stime of one process (all its threads), in seconds; 0 once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return 0.0
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / bench.CLK_TCK


@contextlib.contextmanager
def haproxy_in_front(address: str) -> Iterator[HAProxy]:
    proxy = HAProxy([address, address])
    with proxy:
        yield proxy


def h2load_once(setup: bench.Setup, port: int, limit: list[str]) -> dict[str, Any]:
    argv = bench.h2load_argv(setup, port, CONNECTIONS, limit)
    child = bench.Child("h2load", argv, dict(setup.env), None)
    try:
        status = child.wait(setup.args.seconds + 60)
        output = []
        while True:
            line = child._lines.get(timeout=5)
            if line is None:
                break
            output.append(line)
    finally:
        child.stop(2)
    if status != 0:
        raise bench.BenchError(f"h2load exited with status {status}\n" + "\n".join(output[-20:]))
    result = bench.parse_h2load("\n".join(output))
    if result["failed"] or not result["ops"]:
        raise bench.BenchError(
            f"h2load: {result['failed']} requests failed of {result['ops']}\n"
            + "\n".join(line for line in output if line.startswith(("requests:", "status")))
        )
    return result


def measure(
    setup: bench.Setup, server: bench.Child, port: int, proxy_pid: Optional[int]
) -> dict[str, Any]:
    """A warm-up run, then a timed one; CPU of every server process and of HAProxy.

    The timed run is a number of calls (what the warm-up's rate makes last about
    ``--seconds``), not h2load's ``-D``: that stops with 256 calls in flight, which HAProxy
    must then abort on the server side, and the next run through it was erratic for it (with
    grpcio's server as with ours), where whole runs are repeatable.
    """
    warm = h2load_once(setup, port, ["-n", str(max(200, int(setup.args.warmup * 4000)))])
    calls = max(500, int(warm["ops"] / warm["elapsed"] * setup.args.seconds))
    pids = bench.process_tree(server)
    workers = pids[1:] or pids  # rpc.serve's supervisor mostly sleeps: the workers serve
    before = {pid: pid_cpu_seconds(pid) for pid in pids}
    proxy_before = pid_cpu_seconds(proxy_pid) if proxy_pid else 0.0
    result = h2load_once(setup, port, ["-n", str(calls)])
    used = {pid: pid_cpu_seconds(pid) - before[pid] for pid in pids}
    ops = result["ops"]
    server_cpu = sum(used.values())
    shares = sorted((used[pid] / server_cpu if server_cpu else 0.0 for pid in workers), reverse=1)
    return {
        "calls_per_s": ops / result["elapsed"],
        "server_us_per_call": server_cpu / ops * 1e6,
        "proxy_us_per_call": (pid_cpu_seconds(proxy_pid) - proxy_before) / ops * 1e6
        if proxy_pid
        else None,
        "worker_shares": shares if len(workers) > 1 else None,
    }


def proxy_section(setup: bench.Setup) -> dict[str, Any]:
    if setup.h2load is None:
        return {"skipped": "h2load is not installed (apt-get install nghttp2-client)"}
    if find_program("haproxy") is None:
        return {"skipped": "haproxy is not installed (apt-get install haproxy)"}
    results: dict[str, Any] = {}
    for label, impl_name, workers, proxied in CASES:
        impl = bench.IMPL_BY_NAME[impl_name]
        missing = [bench._importable(setup.python(impl), m) for m in impl.needs]
        if any(missing):
            results[label] = {"skipped": "; ".join(filter(None, missing))}
            continue
        print(f"[proxy] {label} under h2load -c {CONNECTIONS} ...", flush=True)
        extra = ("--workers", str(workers)) if workers > 1 else ()
        runs: list[dict[str, Any]] = []
        try:
            server = bench.start_server(setup, impl, extra, cpu=None)
        except (bench.BenchError, NotImplementedError) as exc:
            results[label] = {"error": str(exc)}
            continue
        try:
            time.sleep(0.5)  # every worker up
            address = f"127.0.0.1:{server.port}"  # type: ignore[attr-defined]
            with contextlib.ExitStack() as stack:
                port, proxy_pid = server.port, None  # type: ignore[attr-defined]
                if proxied:
                    proxy = stack.enter_context(haproxy_in_front(address))
                    assert proxy.process is not None
                    port, proxy_pid = proxy.port, proxy.process.pid
                for _ in range(setup.args.repeats):
                    runs.append(measure(setup, server, port, proxy_pid))
            results[label] = {"runs": runs}
        except (bench.BenchError, RuntimeError) as exc:
            results[label] = {"error": str(exc), "runs": runs}
        finally:
            server.stop()
    return results


def proxy_markdown(section: dict[str, Any]) -> list[str]:
    out = [
        "",
        f"### Behind HAProxy: h2load -c {CONNECTIONS} -m {bench.H2LOAD_STREAMS}, unary, unpinned",
        "",
    ]
    if not section:
        return []
    if "skipped" in section:
        return [*out, f"Skipped: {section['skipped']}"]
    out += [
        "| server | calls/s (median) | server µs / call | HAProxy µs / call | "
        "server CPU per worker |",
        "|---|---|---|---|---|",
    ]
    for label, result in section.items():
        if "skipped" in result:
            out.append(f"| {label} | skipped: {result['skipped']} | | | |")
            continue
        if "error" in result:
            out.append(f"| {label} | failed: {result['error'].splitlines()[0]} | | | |")
            continue
        runs = result["runs"]
        rate = bench._median([r["calls_per_s"] for r in runs])
        server_us = bench._median([r["server_us_per_call"] for r in runs])
        proxy_values = [r["proxy_us_per_call"] for r in runs if r["proxy_us_per_call"]]
        proxy_us = bench._median(proxy_values) if proxy_values else None
        shares = [r["worker_shares"] for r in runs if r["worker_shares"]]
        spread = " / ".join(f"{100 * s:.0f}%" for s in shares[len(shares) // 2]) if shares else "-"
        out.append(
            f"| {label} | {bench._fmt(rate)} | {bench._fmt(server_us, 1)} | "
            f"{bench._fmt(proxy_us, 1) if proxy_us is not None else '-'} | {spread} |"
        )
    return out


def proxy_failed(section: dict[str, Any]) -> bool:
    return any(isinstance(r, dict) and "error" in r for r in section.values())
