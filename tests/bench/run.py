"""The benchmark runner: h2rpc beside grpcio, grpclib and purerpc, as processes on loopback.

``python -m tests.bench.run [--quick] [--scenarios ...] [--impls ...] [--repeats N] [--seconds S]``

Every implementation's server runs as its own process (pinned to one CPU) and is driven by the
same implementation's client (pinned to another), one scenario at a time: a warm-up, then a timed
window in which the client counts completed operations and the runner reads the server's CPU
time (utime + stime, all threads and worker processes) from ``/proc``. Repeats are interleaved
(every implementation once per round, the order rotated between rounds); the report gives
medians, spread (min-max), ratios to grpcio's synchronous API and CPU-seconds per 10k
operations. ``h2load`` (Debian's nghttp2-client), when present, drives each server alone. Then a
memory section (a slow reader of a fast stream, idle connections, 1,000 connections on one
server), the h2 floor (``tests/bench/floor.py``), with ``rpc.serve(workers=N)``, 1 vs
2 worker processes, servers behind HAProxy (``tests/bench/proxied.py``) and round_robin's
spread of 3,000 calls over 3 backends (``tests/bench/balanced.py``). It prints a
markdown report and writes the raw results as JSON (path printed; ``--report FILE.json``
renders a saved one again). Missing peers (grpcio, grpclib, uvloop, PyPy, h2load) are skipped
with the reason. PyPy and purerpc (which requires h2<4) run
from virtualenvs the runner builds and keeps: ``.bench-pypy-venv``, ``.bench-purerpc-venv``.
"""

from __future__ import annotations

import argparse
import atexit
import configparser
import contextlib
import hashlib
import json
import os
import platform
import queue
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from .driver import SCENARIOS
from .service import CPU_ENV, DESCRIPTOR_ENV, SMALL_BODY, UNARY_PATH, compile_descriptor

REPO = Path(__file__).resolve().parents[2]
PYPY_VENV = REPO / ".bench-pypy-venv"
PURERPC_VENV = REPO / ".bench-purerpc-venv"
BASELINE = "grpcio-sync"
H2LOAD_STREAMS = 64
CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


class BenchError(RuntimeError):
    """A process of the benchmark failed; the message carries its stderr."""


# ------------------------------------------------------------------------ implementations


@dataclass(frozen=True)
class Impl:
    name: str
    label: str
    server: str  # module under tests.bench
    client: str
    args: tuple[str, ...] = ()  # given to both server and client
    python: str = "cpython"  # or "pypy", or "purerpc" (CPython, its own venv)
    needs: tuple[str, ...] = ()  # modules the interpreter must import
    family: str = "h2rpc"
    default: bool = True


IMPLS = [
    Impl(
        "grpcio-sync",
        "grpcio sync",
        "grpcio_sync_server",
        "grpcio_sync_client",
        needs=("grpc",),
        family="grpcio",
    ),
    Impl(
        "grpcio-aio",
        "grpcio aio",
        "grpcio_aio_server",
        "grpcio_aio_client",
        needs=("grpc",),
        family="grpcio",
    ),
    Impl(
        "grpclib",
        "grpclib",
        "grpclib_server",
        "grpclib_client",
        needs=("grpclib",),
        family="grpclib",
    ),
    Impl(
        "grpclib-uvloop",
        "grpclib + uvloop",
        "grpclib_server",
        "grpclib_client",
        ("--uvloop",),
        needs=("grpclib", "uvloop"),
        family="grpclib",
    ),
    Impl("h2rpc-async", "h2rpc async", "h2rpc_async_server", "h2rpc_async_client"),
    Impl(
        "h2rpc-async-uvloop",
        "h2rpc async + uvloop",
        "h2rpc_async_server",
        "h2rpc_async_client",
        ("--uvloop",),
        needs=("uvloop",),
    ),
    Impl("h2rpc-sync", "h2rpc blocking", "h2rpc_sync_server", "h2rpc_sync_client"),
    # One no-op interceptor on each side (grpcio's shapes): what interceptors cost.
    Impl(
        "h2rpc-async-intercepted",
        "h2rpc async, 1 no-op interceptor per side",
        "h2rpc_async_server",
        "h2rpc_async_client",
        ("--intercepted",),
    ),
    Impl(
        "h2rpc-sync-intercepted",
        "h2rpc blocking, 1 no-op interceptor per side",
        "h2rpc_sync_server",
        "h2rpc_sync_client",
        ("--intercepted",),
    ),
    Impl(
        "h2rpc-async-pypy",
        "h2rpc async (PyPy)",
        "h2rpc_async_server",
        "h2rpc_async_client",
        python="pypy",
    ),
    Impl(
        "h2rpc-sync-pypy",
        "h2rpc blocking (PyPy)",
        "h2rpc_sync_server",
        "h2rpc_sync_client",
        python="pypy",
        default=False,
    ),
]
IMPLS.append(
    # purerpc 0.8 (the latest) requires h2<4, h2rpc h2>=4.1: it runs from a venv of its own.
    Impl(
        "purerpc",
        "purerpc",
        "purerpc_server",
        "purerpc_client",
        python="purerpc",
        needs=("purerpc",),
        family="purerpc",
    )
)
IMPL_BY_NAME = {impl.name: impl for impl in IMPLS}
H2LOAD_SCENARIOS = {
    "h2load1": f"server alone: h2load -c 1 -m {H2LOAD_STREAMS}, unary",
    "h2load4": f"server alone: h2load -c 4 -m {H2LOAD_STREAMS}, unary",
}
ALL_SCENARIOS = [*SCENARIOS, *H2LOAD_SCENARIOS]
#: h2load with 4 connections runs for the h2rpc servers only (the issue's peer table has -c 1).
H2LOAD4_FAMILIES = ("h2rpc",)


# ------------------------------------------------------------------------------ processes

_live: set[Child] = set()


class Child:
    """A subprocess with a pipe for stdin (its EOF stops our servers), stdout read line by line
    by a thread, stderr kept in a file, killed at exit whatever happens."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], cpu: Optional[int]):
        self.name = name
        if cpu is not None and shutil.which("taskset"):
            argv = ["taskset", "-c", str(cpu), *argv]
        self.argv = argv
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 (closed by stop())
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            env=env,
            cwd=REPO,
            text=True,
            bufsize=1,
        )
        _live.add(self)
        self.pid = self.proc.pid
        if cpu is not None:
            with contextlib.suppress(OSError):
                os.sched_setaffinity(self.pid, {cpu})
        self._lines: queue.Queue[Optional[str]] = queue.Queue()
        self.descendants: set[int] = set()
        thread = threading.Thread(target=self._read, name=f"{name}-stdout", daemon=True)
        thread.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(line.rstrip("\n"))
        self._lines.put(None)

    def expect(self, prefixes: tuple[str, ...], timeout: float) -> str:
        """The next stdout line starting with one of ``prefixes`` (others are skipped)."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise BenchError(
                    f"{self.name}: nothing after {timeout:.0f} s\n{self.stderr_tail()}"
                )
            try:
                line = self._lines.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.proc.wait(2)
                raise BenchError(
                    f"{self.name}: exited (status {self.proc.returncode}) before "
                    f"{'/'.join(prefixes)}\n{self.stderr_tail()}"
                )
            if line.startswith(prefixes):
                return line

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        with contextlib.suppress(OSError):
            self.proc.stdin.write(line + "\n")
            self.proc.stdin.flush()

    def wait(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise BenchError(f"{self.name}: still running after {timeout:.0f} s") from None

    def stderr_tail(self, chars: int = 3000) -> str:
        self._stderr.seek(0)
        text = self._stderr.read().decode("utf-8", "replace")
        return text[-chars:]

    def stop(self, timeout: float = 5.0) -> None:
        """Close stdin, SIGTERM, SIGKILL after ``timeout``; then any worker process left."""
        if self.proc.poll() is None:
            with contextlib.suppress(OSError):
                if self.proc.stdin is not None:
                    self.proc.stdin.close()
            with contextlib.suppress(OSError):
                self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for pid in self.descendants:  # worker processes we saw it start
            if _alive(pid):
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
        _live.discard(self)
        self._stderr.close()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


@atexit.register
def _stop_all() -> None:
    for child in list(_live):
        with contextlib.suppress(Exception):
            child.stop(timeout=2)


def _raise_on_signal(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


# ---------------------------------------------------------------------------- /proc reading


def _children_of(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        if int(stat[stat.rindex(")") + 2 :].split()[1]) == pid:
            found.append(int(entry))
    return found


def process_tree(child: Child) -> list[int]:
    """The process and its descendants (worker processes); remembered for cleanup."""
    pids = [child.pid]
    for pid in pids:
        pids.extend(_children_of(pid))
    child.descendants.update(pids[1:])
    return pids


def cpu_seconds(child: Child) -> float:
    """utime + stime of the process tree, all threads, in seconds."""
    total = 0
    for pid in process_tree(child):
        try:
            with open(f"/proc/{pid}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        total += int(fields[11]) + int(fields[12])
    return total / CLK_TCK


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS, VmHWM (KiB) and Threads of one process."""
    values: dict[str, int] = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                key, _, rest = line.partition(":")
                if key in ("VmRSS", "VmHWM", "Threads"):
                    values[key] = int(rest.split()[0])
    except OSError:
        pass
    return values


def rss_mib(child: Child) -> float:
    return sum(proc_status(pid).get("VmRSS", 0) for pid in process_tree(child)) / 1024


def open_fds(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return -1


# ---------------------------------------------------------------------------------- setup


@dataclass
class Setup:
    args: argparse.Namespace
    tmp: Path
    env: dict[str, str]
    server_cpu: Optional[int]
    client_cpu: Optional[int]
    pypy: Optional[str] = None  # the PyPy venv's python
    purerpc: Optional[str] = None  # the purerpc venv's python
    h2load: Optional[str] = None
    request_file: Optional[Path] = None
    skipped: dict[str, str] = field(default_factory=dict)  # impl or section -> reason

    def python(self, impl: Impl) -> str:
        if impl.python == "pypy":
            assert self.pypy is not None
            return self.pypy
        if impl.python == "purerpc":
            assert self.purerpc is not None
            return self.purerpc
        return sys.executable

    def warmup(self, impl: Impl) -> float:
        return self.args.pypy_warmup if impl.python == "pypy" else self.args.warmup

    def settle(self, impl: Impl) -> float:
        """At most this long after the warm-up until the rate is steady (PyPy's JIT)."""
        return self.args.pypy_settle if impl.python == "pypy" else 0.0

    def env_for(self, impl: Impl) -> dict[str, str]:
        """The environment of an implementation's processes: PyPy's gets its nursery size."""
        env = dict(self.env)
        if impl.python == "pypy" and self.args.pypy_gc_nursery:
            env.setdefault("PYPY_GC_NURSERY", self.args.pypy_gc_nursery)
        return env


def _run_quiet(argv: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, capture_output=True, text=True, timeout=timeout, cwd=REPO, check=False
    )


def _install_requires() -> list[str]:
    parser = configparser.ConfigParser()
    parser.read(REPO / "setup.cfg")
    lines = parser["options"]["install_requires"].splitlines()
    return [line.split("#")[0].strip() for line in lines if line.split("#")[0].strip()]


def _venv(
    setup: Setup, kind: str, interpreter: str, directory: Path, requirements: list[str]
) -> Optional[str]:
    """A venv at ``directory`` made by ``interpreter`` holding ``requirements`` (wheels only),
    rebuilt when the interpreter or the requirements change; its python, or None with the reason
    in ``setup.skipped[kind]``."""
    try:
        version = _run_quiet(
            [interpreter, "-c", "import sys, venv, ensurepip; print(sys.version)"], 60
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        setup.skipped[kind] = f"{interpreter} does not run: {exc}"
        return None
    if version.returncode != 0:
        setup.skipped[kind] = f"{interpreter} has no venv/ensurepip module"
        return None
    stamp = hashlib.sha256(json.dumps([version.stdout, requirements]).encode()).hexdigest()
    python = directory / "bin" / "python"
    stamp_file = directory / "bench-stamp"
    if python.exists() and stamp_file.exists() and stamp_file.read_text() == stamp:
        return str(python)
    print(f"preparing the {kind} venv in {directory} ...", flush=True)
    shutil.rmtree(directory, ignore_errors=True)
    steps = [
        [interpreter, "-m", "venv", str(directory)],
        [str(python), "-m", "pip", "install", "--quiet", "--only-binary=:all:", *requirements],
    ]
    for step in steps:
        try:
            done = _run_quiet(step, 600)
        except subprocess.TimeoutExpired:
            setup.skipped[kind] = f"timed out: {' '.join(step)}"
            return None
        if done.returncode != 0:
            setup.skipped[kind] = f"failed: {' '.join(step)}: {done.stderr[-500:]}"
            shutil.rmtree(directory, ignore_errors=True)
            return None
    stamp_file.write_text(stamp)
    return str(python)


def prepare_pypy(setup: Setup) -> None:
    """A PyPy venv with h2rpc's runtime dependencies (h2rpc itself comes from PYTHONPATH),
    kept in .bench-pypy-venv and rebuilt when PyPy or the requirements change."""
    pypy = shutil.which(setup.args.pypy)
    if pypy is None:
        setup.skipped["pypy"] = f"{setup.args.pypy} is not on PATH (apt-get install pypy3)"
        return
    setup.pypy = _venv(setup, "pypy", pypy, PYPY_VENV, _install_requires())
    if setup.pypy is None and "venv" in setup.skipped["pypy"]:
        setup.skipped["pypy"] += " (apt-get install pypy3-venv)"


def prepare_purerpc(setup: Setup) -> None:
    """A CPython venv with purerpc (which pins h2<4) and protobuf, in .bench-purerpc-venv."""
    setup.purerpc = _venv(
        setup, "purerpc", sys.executable, PURERPC_VENV, ["purerpc", "protobuf>=5.26.1"]
    )


def _importable(python: str, module: str) -> Optional[str]:
    """None if ``python`` imports ``module``, else why not."""
    done = _run_quiet([python, "-c", f"import {module}"], 60)
    if done.returncode == 0:
        return None
    last = (done.stderr.strip().splitlines() or ["?"])[-1]
    return f"{module} is not importable ({last})"


def choose_impls(setup: Setup, names: list[str]) -> list[Impl]:
    chosen = []
    for name in names:
        impl = IMPL_BY_NAME[name]
        if impl.python == "pypy":
            if setup.pypy is None and "pypy" not in setup.skipped:
                prepare_pypy(setup)
            if setup.pypy is None:
                setup.skipped[name] = setup.skipped["pypy"]
                continue
        if impl.python == "purerpc":
            if setup.purerpc is None and "purerpc" not in setup.skipped:
                prepare_purerpc(setup)
            if setup.purerpc is None:
                setup.skipped[name] = setup.skipped["purerpc"]
                continue
        python = setup.python(impl)
        reasons = [r for r in (_importable(python, m) for m in impl.needs) if r]
        if reasons:
            setup.skipped[name] = "; ".join(reasons)
            continue
        chosen.append(impl)
    return chosen


def versions(setup: Setup) -> dict[str, str]:
    """What ran: machine, interpreters, libraries."""
    info: dict[str, str] = {
        "cpus": str(os.cpu_count()),
        "cpu_model": _cpu_model(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "pinning": (
            f"server on CPU {setup.server_cpu}, client on CPU {setup.client_cpu}"
            if setup.server_cpu is not None
            else "none (fewer than 2 CPUs available)"
        ),
    }
    probe = (
        "import importlib.metadata as m\n"
        "for d in ('h2', 'hpack', 'protobuf', 'grpcio', 'grpclib', 'uvloop'):\n"
        "    try: print(d, m.version(d))\n"
        "    except Exception: pass\n"
    )
    done = _run_quiet([sys.executable, "-c", probe], 60)
    for line in done.stdout.splitlines():
        name, _, version = line.partition(" ")
        info[name] = version
    if setup.pypy:
        done = _run_quiet(
            [
                setup.pypy,
                "-c",
                "import platform, sys\n"
                "print('.'.join(map(str, sys.pypy_version_info[:3])), platform.python_version())\n"
                + probe,
            ],
            60,
        )
        lines = done.stdout.splitlines()
        if lines:
            pypy, _, python = lines[0].partition(" ")
            info["pypy"] = f"PyPy {pypy} (Python {python}): " + ", ".join(lines[1:])
    if setup.purerpc:
        done = _run_quiet(
            [
                setup.purerpc,
                "-c",
                "import importlib.metadata as m\n"
                "print(*(m.version(d) for d in ('purerpc', 'h2', 'anyio', 'protobuf')))",
            ],
            60,
        )
        parts = done.stdout.split()
        if len(parts) == 4:
            info["purerpc"] = (
                f"purerpc {parts[0]} (own venv: h2 {parts[1]}, anyio {parts[2]}, "
                f"protobuf {parts[3]})"
            )
    if setup.h2load:
        done = _run_quiet([setup.h2load, "--version"], 30)
        info["h2load"] = done.stdout.strip()
    return info


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


# ------------------------------------------------------------------------------- running


def start_server(
    setup: Setup, impl: Impl, extra: tuple[str, ...] = (), cpu: Optional[int] = -1
) -> Child:
    cpu = setup.server_cpu if cpu == -1 else cpu
    argv = [
        setup.python(impl),
        "-m",
        f"tests.bench.{impl.server}",
        "--port",
        "0",
        *impl.args,
        *extra,
    ]
    env = setup.env_for(impl)
    if cpu is not None:
        env[CPU_ENV] = str(cpu)
    server = Child(f"{impl.name} server", argv, env, cpu)
    try:
        line = server.expect(("PORT ", "UNSUPPORTED"), 60)
    except BaseException:
        server.stop(1)
        raise
    if line.startswith("UNSUPPORTED"):
        server.stop(1)
        raise NotImplementedError(line.partition(" ")[2])
    server.port = int(line.split()[1])  # type: ignore[attr-defined]
    return server


def run_client(setup: Setup, impl: Impl, server: Child, scenario: str) -> dict[str, Any]:
    args = setup.args
    warmup = setup.warmup(impl)
    argv = [
        setup.python(impl),
        "-m",
        f"tests.bench.{impl.client}",
        "--target",
        f"127.0.0.1:{server.port}",  # type: ignore[attr-defined]
        "--scenario",
        scenario,
        "--warmup",
        str(warmup),
        "--settle",
        str(setup.settle(impl)),
        "--seconds",
        str(args.seconds),
        *impl.args,
    ]
    env = setup.env_for(impl)
    if setup.client_cpu is not None:
        env[CPU_ENV] = str(setup.client_cpu)
    client = Child(f"{impl.name} client {scenario}", argv, env, setup.client_cpu)
    try:
        limit = warmup + setup.settle(impl) + args.seconds + 60
        client.expect(("WINDOW-START",), limit)
        cpu0 = cpu_seconds(server)
        line = client.expect(("RESULT ",), args.seconds + 60)
        cpu1 = cpu_seconds(server)
        result = json.loads(line.partition(" ")[2])
        status = client.wait(60)
        if status != 0:
            raise BenchError(f"{client.name}: exit status {status}\n{client.stderr_tail()}")
    finally:
        client.stop(2)
    result["server_cpu"] = cpu1 - cpu0
    if server.proc.poll() is not None:
        raise BenchError(f"{server.name} died\n{server.stderr_tail()}")
    return result


_H2LOAD_FINISHED = re.compile(r"finished in ([\d.]+)(m?s)")
_H2LOAD_REQUESTS = re.compile(
    r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, "
    r"(\d+) errored, (\d+) timeout"
)


def parse_h2load(output: str) -> dict[str, Any]:
    """The numbers of an h2load run: elapsed seconds, requests succeeded, failed."""
    finished = _H2LOAD_FINISHED.search(output)
    requests = _H2LOAD_REQUESTS.search(output)
    if not finished or not requests:
        raise BenchError(f"cannot read h2load's output:\n{output[-2000:]}")
    elapsed = float(finished.group(1)) / (1000 if finished.group(2) == "ms" else 1)
    done = [int(n) for n in requests.groups()]
    return {"elapsed": elapsed, "ops": done[3], "failed": done[4] + done[5] + done[6]}


def h2load_argv(setup: Setup, port: int, connections: int, limit: list[str]) -> list[str]:
    assert setup.h2load is not None and setup.request_file is not None
    return [
        setup.h2load,
        *limit,
        "-c",
        str(connections),
        "-m",
        str(H2LOAD_STREAMS),
        "-d",
        str(setup.request_file),
        "-H",
        "content-type: application/grpc",
        "-H",
        "te: trailers",
        f"http://127.0.0.1:{port}{UNARY_PATH}",
    ]


def run_h2load(
    setup: Setup, server: Child, connections: int, *, cpu: Optional[int] = -1
) -> dict[str, Any]:
    """Warm the server with a short run, then measure a timed run (-D) and its server CPU."""
    cpu = setup.client_cpu if cpu == -1 else cpu
    port = server.port  # type: ignore[attr-defined]
    warm_requests = str(max(200, int(setup.args.warmup * 4000)))
    for phase, limit in (
        ("warm-up", ["-n", warm_requests]),
        ("timed", ["-D", f"{max(100, int(setup.args.seconds * 1000))}ms"]),
    ):
        child = Child(
            f"h2load {phase}", h2load_argv(setup, port, connections, limit), dict(setup.env), cpu
        )
        try:
            cpu0 = cpu_seconds(server)
            status = child.wait(setup.args.seconds + 60)
            cpu1 = cpu_seconds(server)
            output = []
            while True:
                try:
                    line = child._lines.get(timeout=5)
                except queue.Empty:
                    break
                if line is None:
                    break
                output.append(line)
        finally:
            child.stop(2)
        if status != 0:
            raise BenchError(
                f"h2load exited with status {status}: {' '.join(child.argv)}\n"
                + "\n".join(output[-20:])
            )
    result = parse_h2load("\n".join(output))
    if result["failed"] or not result["ops"]:
        raise BenchError(f"h2load: {result['failed']} requests failed of {result['ops']}")
    result["server_cpu"] = cpu1 - cpu0
    result["bytes"] = 0
    result["client_cpu"] = None
    if server.proc.poll() is not None:
        raise BenchError(f"{server.name} died\n{server.stderr_tail()}")
    return result


def scenarios_for(setup: Setup, impl: Impl) -> list[str]:
    chosen = []
    for scenario in setup.args.scenarios:
        if scenario in H2LOAD_SCENARIOS:
            if setup.h2load is None:
                continue
            if scenario == "h2load4" and impl.family not in H2LOAD4_FAMILIES:
                continue
        chosen.append(scenario)
    return chosen


def measure_round(setup: Setup, impls: list[Impl], repeat: int, runs: list[dict[str, Any]]) -> None:
    shift = repeat % len(impls)
    for impl in impls[shift:] + impls[:shift]:
        print(f"[round {repeat + 1}] {impl.label}:", end="", flush=True)
        try:
            server = start_server(setup, impl)
        except (BenchError, NotImplementedError) as exc:
            print(f" server failed: {str(exc).splitlines()[0]}")
            runs.append({"impl": impl.name, "repeat": repeat, "scenario": "*", "error": str(exc)})
            continue
        try:
            scenarios = scenarios_for(setup, impl)
            for i, scenario in enumerate(scenarios):
                record: dict[str, Any] = {"impl": impl.name, "repeat": repeat, "scenario": scenario}
                try:
                    if scenario in H2LOAD_SCENARIOS:
                        record.update(run_h2load(setup, server, int(scenario[-1])))
                    else:
                        record.update(run_client(setup, impl, server, scenario))
                    value = metric(scenario, record)
                    print(f" {scenario} {value:,.0f}", end="", flush=True)
                except BenchError as exc:
                    record["error"] = str(exc)
                    print(f" {scenario} FAILED", end="", flush=True)
                runs.append(record)
                if server.proc.poll() is not None:
                    # The scenarios left give no number either: say so, for --strict.
                    error = f"server exited (status {server.proc.returncode}) before this run"
                    for rest in scenarios[i + 1 :]:
                        runs.append(
                            {"impl": impl.name, "repeat": repeat, "scenario": rest, "error": error}
                        )
                        print(f" {rest} FAILED", end="", flush=True)
                    break
        finally:
            server.stop()
            print(flush=True)


# ------------------------------------------------------------------------------- analysis


def no_number(run: dict[str, Any]) -> bool:
    """A run that gave no number: it failed, or completed no operation (or moved no byte)."""
    if "error" in run:
        return True
    try:
        return not run["ops"] or not metric(run["scenario"], run) > 0
    except (KeyError, TypeError, ZeroDivisionError):
        return True


def metric(scenario: str, run: dict[str, Any]) -> float:
    if scenario == "stream1m":
        return run["bytes"] / run["elapsed"] / 1e6
    return run["ops"] / run["elapsed"]


def unit(scenario: str) -> str:
    if scenario in H2LOAD_SCENARIOS:
        return "calls/s"
    return SCENARIOS[scenario].unit


def title(scenario: str) -> str:
    if scenario in H2LOAD_SCENARIOS:
        return H2LOAD_SCENARIOS[scenario]
    return SCENARIOS[scenario].title


@dataclass
class Cell:
    values: list[float]
    server_cpu_10k: list[float]
    client_cpu_10k: list[float]
    errors: list[str]
    server_busy: list[float] = field(default_factory=list)  # CPU-seconds per second, percent
    client_busy: list[float] = field(default_factory=list)

    @property
    def median(self) -> Optional[float]:
        return statistics.median(self.values) if self.values else None


def summarize(runs: list[dict[str, Any]]) -> dict[tuple[str, str], Cell]:
    cells: dict[tuple[str, str], Cell] = {}
    for run in runs:
        key = (run["impl"], run["scenario"])
        cell = cells.setdefault(key, Cell([], [], [], []))
        if "error" in run:
            cell.errors.append(run["error"])
            continue
        if not run["ops"]:
            cell.errors.append("no operation completed")
            continue
        cell.values.append(metric(run["scenario"], run))
        cell.server_cpu_10k.append(run["server_cpu"] / run["ops"] * 1e4)
        cell.server_busy.append(run["server_cpu"] / run["elapsed"] * 100)
        if run.get("client_cpu") is not None:
            cell.client_cpu_10k.append(run["client_cpu"] / run["ops"] * 1e4)
            cell.client_busy.append(run["client_cpu"] / run["elapsed"] * 100)
    return cells


def _fmt(value: Optional[float], digits: int = 0) -> str:
    if value is None:
        return "-"
    if digits == 0 and abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 100:
        return f"{value:,.{digits}f}"
    return f"{value:.{max(digits, 1) if abs(value) < 10 else digits or 1}f}"


def _median(values: list[float]) -> Optional[float]:
    return statistics.median(values) if values else None


def markdown_tables(
    cells: dict[tuple[str, str], Cell], impls: list[Impl], scenarios: list[str]
) -> list[str]:
    out: list[str] = []
    present = [s for s in scenarios if any((i.name, s) in cells for i in impls)]
    # The overview: one row per implementation, the scenarios as columns.
    header = ["implementation"]
    for s in present:
        header.append(f"{s} ({unit(s)})")
    if "h2load1" in present:
        header.append("server µs/call (h2load -c 1)")
    out.append("| " + " | ".join(header) + " |")
    out.append("|" + "---|" * len(header))
    for impl in impls:
        row = [impl.label]
        for s in present:
            cell = cells.get((impl.name, s))
            if cell is None:
                row.append("n/a")
                continue
            if cell.median is None:
                row.append("failed" if cell.errors else "-")
                continue
            base = cells.get((BASELINE, s))
            ratio = ""
            if base and base.median and impl.name != BASELINE:
                ratio = f" ({cell.median / base.median:.2f}x)"
            row.append(_fmt(cell.median) + ratio)
        if "h2load1" in present:
            cell = cells.get((impl.name, "h2load1"))
            cpu = _median(cell.server_cpu_10k) if cell else None
            row.append(_fmt(cpu * 100, 1) if cpu is not None else "n/a")
        out.append("| " + " | ".join(row) + " |")
    out.append("")
    out.append(
        f"Medians; (x) is the ratio to {IMPL_BY_NAME[BASELINE].label} (higher is faster). "
        "Per-scenario spread and CPU below."
    )
    # Details per scenario.
    for s in present:
        out.append("")
        out.append(f"#### {title(s)} ({unit(s)})")
        out.append("")
        out.append(
            "| implementation | median | spread (min-max) | runs | vs grpcio sync | "
            "server CPU-s / 10k ops | client CPU-s / 10k ops | server CPU % | client CPU % |"
        )
        out.append("|---|---|---|---|---|---|---|---|---|")
        for impl in impls:
            cell = cells.get((impl.name, s))
            if cell is None:
                continue
            if not cell.values:
                reason = cell.errors[0].splitlines()[0] if cell.errors else "no result"
                out.append(f"| {impl.label} | failed: {reason[:120]} | | | | | | | |")
                continue
            base = cells.get((BASELINE, s))
            ratio = f"{cell.median / base.median:.2f}x" if base and base.median else "-"
            runs = f"{len(cell.values)}" + (f" (+{len(cell.errors)} failed)" if cell.errors else "")
            out.append(
                f"| {impl.label} | {_fmt(cell.median)} | {_fmt(min(cell.values))}-"
                f"{_fmt(max(cell.values))} | {runs} | {ratio} | "
                f"{_fmt(_median(cell.server_cpu_10k), 2)} | "
                f"{_fmt(_median(cell.client_cpu_10k), 2)} | "
                f"{_percent(cell.server_busy)} | {_percent(cell.client_busy)} |"
            )
    return out


def _percent(values: list[float]) -> str:
    value = _median(values)
    return "-" if value is None else f"{value:.0f}"


def targets(cells: dict[tuple[str, str], Cell]) -> list[str]:
    """The issue's targets that the throughput runs answer."""
    out = []
    pairs = [
        ("h2rpc-sync", "h2rpc-async", "CPython"),
        ("h2rpc-sync-pypy", "h2rpc-async-pypy", "PyPy"),
    ]
    for blocking, asynchronous, where in pairs:
        rows = []
        for s in ("unary1", "unary64", "stream1k", "stream1m", "bidi", "h2load1"):
            b, a = cells.get((blocking, s)), cells.get((asynchronous, s))
            if not (b and a and b.median and a.median):
                continue
            ratio = b.median / a.median
            verdict = "yes" if ratio >= 0.9 else "**no**"  # issue #16: within 10 %
            rows.append(f"| {s} | {_fmt(a.median)} | {_fmt(b.median)} | {ratio:.2f} | {verdict} |")
        if rows:
            out += [
                "",
                f"Blocking API vs async API ({where}; target: within 10 %):",
                "",
                "| scenario | async | blocking | blocking / async | within 10 % |",
                "|---|---|---|---|---|",
                *rows,
            ]
    return out


# -------------------------------------------------------------------------------- memory


def memory_section(setup: Setup) -> dict[str, Any]:
    """Slow reader of a fast stream, and idle connections up to 1,000, on h2rpc's servers."""
    results: dict[str, Any] = {}
    quick = setup.args.quick
    h2rpc_async, h2rpc_sync = IMPL_BY_NAME["h2rpc-async"], IMPL_BY_NAME["h2rpc-sync"]
    for label, impl, sync in (("async", h2rpc_async, False), ("blocking", h2rpc_sync, True)):
        print(f"[memory] slow reader, {label} ...", flush=True)
        try:
            results[f"slow_reader_{label}"] = slow_reader(setup, impl, sync, 3.0 if quick else 6.0)
        except BenchError as exc:
            results[f"slow_reader_{label}"] = {"error": str(exc)}
    milestones = (1, 50, 200) if quick else (1, 100, 1000)
    for label, impl in (("async", h2rpc_async), ("blocking", h2rpc_sync)):
        print(f"[memory] {milestones[-1]} idle connections, {label} server ...", flush=True)
        try:
            results[f"idle_{label}"] = idle_connections(setup, impl, milestones)
        except BenchError as exc:
            results[f"idle_{label}"] = {"error": str(exc)}
    return results


def slow_reader(setup: Setup, impl: Impl, sync: bool, seconds: float) -> dict[str, Any]:
    server = start_server(setup, impl)
    try:
        argv = [
            sys.executable,
            "-m",
            "tests.bench.memory_client",
            "slow-reader",
            "--target",
            f"127.0.0.1:{server.port}",  # type: ignore[attr-defined]
            "--seconds",
            str(seconds),
            *(["--sync"] if sync else []),
        ]
        env = dict(setup.env)
        if setup.client_cpu is not None:
            env[CPU_ENV] = str(setup.client_cpu)
        server_before = rss_mib(server)
        client = Child("slow reader", argv, env, setup.client_cpu)
        try:
            client.expect(("STARTED",), 60)
            samples: list[tuple[float, float, float]] = []
            start = time.monotonic()
            done: list[str] = []
            reader = threading.Thread(
                target=lambda: done.append(client.expect(("RESULT ",), seconds + 60)),
                daemon=True,
            )
            reader.start()
            while reader.is_alive():
                samples.append((time.monotonic() - start, rss_mib(server), rss_mib(client)))
                reader.join(0.25)
            if not done:
                raise BenchError(f"slow reader failed\n{client.stderr_tail()}")
            result = json.loads(done[0].partition(" ")[2])
            client.wait(30)
        finally:
            client.stop(2)
    finally:
        server.stop()
    samples = [s for s in samples if s[1] and s[2]]
    if len(samples) < 4:
        raise BenchError("too few memory samples")
    half = samples[len(samples) // 2]
    last = samples[-1]
    return {
        "seconds": seconds,
        "messages_read": result["messages_read"],
        "server_rss_before_mib": server_before,
        "server_rss_first_mib": samples[0][1],
        "server_rss_peak_mib": max(s[1] for s in samples),
        "server_rss_mid_mib": half[1],
        "server_rss_end_mib": last[1],
        "client_rss_first_mib": samples[0][2],
        "client_rss_peak_mib": max(s[2] for s in samples),
        "client_rss_mid_mib": half[2],
        "client_rss_end_mib": last[2],
        "samples": samples,
    }


def idle_connections(setup: Setup, impl: Impl, milestones: tuple[int, ...]) -> dict[str, Any]:
    server = start_server(setup, impl)
    try:
        argv = [
            sys.executable,
            "-m",
            "tests.bench.memory_client",
            "idle",
            "--target",
            f"127.0.0.1:{server.port}",  # type: ignore[attr-defined]
            "--milestones",
            ",".join(map(str, milestones)),
        ]
        env = dict(setup.env)
        if setup.client_cpu is not None:
            env[CPU_ENV] = str(setup.client_cpu)
        client = Child("idle client", argv, env, setup.client_cpu)
        points: list[dict[str, Any]] = []
        try:
            for milestone in milestones:
                client.expect((f"CONNECTED {milestone}",), 180)
                time.sleep(0.5)  # let the server settle (handshakes done, buffers released)
                status = proc_status(server.pid)
                points.append(
                    {
                        "connections": milestone,
                        "server_rss_kib": status.get("VmRSS", 0),
                        "server_threads": status.get("Threads", 0),
                        "server_fds": open_fds(server.pid),
                    }
                )
                client.send("next")
            called = json.loads(client.expect(("CALLED ",), 180).partition(" ")[2])
            status = proc_status(server.pid)
            after_calls = {
                "server_rss_kib": status.get("VmRSS", 0),
                "server_threads": status.get("Threads", 0),
            }
            client.send("quit")
            client.wait(60)
        finally:
            client.stop(2)
        alive = server.proc.poll() is None
    finally:
        server.stop()
    low, high = points[-2], points[-1]
    per_connection = (high["server_rss_kib"] - low["server_rss_kib"]) / (
        high["connections"] - low["connections"]
    )
    return {
        "points": points,
        "per_connection_kib": per_connection,
        "calls_on_all": called,
        "after_calls": after_calls,
        "server_survived": alive,
    }


def memory_markdown(memory: dict[str, Any]) -> list[str]:
    out = ["", "### Memory (h2rpc servers)", ""]
    rows = []
    for label in ("async", "blocking"):
        r = memory.get(f"slow_reader_{label}")
        if r is None:
            continue
        if "error" in r:
            rows.append(f"| {label} | failed: {r['error'].splitlines()[0][:100]} | | | |")
            continue
        server_growth = r["server_rss_end_mib"] - r["server_rss_mid_mib"]
        client_growth = r["client_rss_end_mib"] - r["client_rss_mid_mib"]
        flat = "yes" if max(server_growth, client_growth) < 2.0 else "**no**"
        rows.append(
            f"| {label} | {r['messages_read']} MiB in {r['seconds']:.0f} s | "
            f"{r['server_rss_first_mib']:.1f} → peak {r['server_rss_peak_mib']:.1f} → "
            f"{r['server_rss_end_mib']:.1f} ({server_growth:+.1f} in the 2nd half) | "
            f"{r['client_rss_first_mib']:.1f} → peak {r['client_rss_peak_mib']:.1f} → "
            f"{r['client_rss_end_mib']:.1f} ({client_growth:+.1f} in the 2nd half) | {flat} |"
        )
    if rows:
        out += [
            "Slow reader of a fast stream: the server streams 1 MiB messages as fast as it may; "
            "the client reads one every 0.1 s. RSS in MiB (windows: 4 MiB per stream, 16 MiB "
            "per connection; 256 KiB send buffer per stream).",
            "",
            "| API (server and client) | read | server RSS | client RSS | flat |",
            "|---|---|---|---|---|",
            *rows,
            "",
        ]
    rows = []
    for label in ("async", "blocking"):
        r = memory.get(f"idle_{label}")
        if r is None:
            continue
        if "error" in r:
            rows.append(f"| {label} | failed: {r['error'].splitlines()[0][:100]} | | | | |")
            continue
        points = " · ".join(
            f"{p['connections']}: {p['server_rss_kib'] / 1024:.1f} MiB" for p in r["points"]
        )
        last = r["points"][-1]
        calls = r["calls_on_all"]
        ok = calls["calls"] - calls["failed"]
        verdict = "yes" if r["per_connection_kib"] <= 64 else "**no**"
        rows.append(
            f"| {label} | {points} | {r['per_connection_kib']:.1f} KiB ({verdict}) | "
            f"{ok}/{calls['calls']} OK in {calls['seconds']:.1f} s | "
            f"threads: {last['server_threads']}, open files: {last['server_fds']} | "
            f"{'yes' if r['server_survived'] and not calls['failed'] else '**no**'} |"
        )
    if rows:
        out += [
            "Idle connections: one client process opens connections (each makes one unary call, "
            "then idles); server RSS at each count; the cost per connection is the slope between "
            "the last two counts (target ≤ 64 KiB); then one call on every connection at once.",
            "",
            "| server | server RSS by connections | per idle connection | one call on each | "
            "server at the top count | held |",
            "|---|---|---|---|---|---|",
            *rows,
        ]
    return out


# --------------------------------------------------------------------------------- floor


def floor_section(setup: Setup) -> dict[str, Any]:
    results: dict[str, Any] = {}
    calls = "2000" if setup.args.quick else "10000"
    interpreters = [("CPython", sys.executable)]
    if setup.pypy:
        interpreters.append(("PyPy", setup.pypy))
    env = dict(setup.env)
    if setup.server_cpu is not None:
        env[CPU_ENV] = str(setup.server_cpu)
    for name, python in interpreters:
        print(f"[floor] {name} ...", flush=True)
        child = Child(
            f"floor {name}",
            [python, "-m", "tests.bench.floor", "--json", "--calls", calls],
            env,
            setup.server_cpu,
        )
        try:
            line = child.expect(("{",), 600)
            child.wait(30)
            results[name] = json.loads(line)
        except BenchError as exc:
            results[name] = {"error": str(exc)}
        finally:
            child.stop(2)
    return results


def floor_markdown(floor: dict[str, Any], cells: dict[tuple[str, str], Cell]) -> list[str]:
    out = ["", "### The h2 floor (one unary call, in-memory connections, no sockets)", ""]
    full = {
        "CPython": [("h2rpc-async", "h2rpc async"), ("h2rpc-sync", "h2rpc blocking")],
        "PyPy": [("h2rpc-async-pypy", "h2rpc async"), ("h2rpc-sync-pypy", "h2rpc blocking")],
    }
    for interpreter, data in floor.items():
        if "error" in data:
            out.append(f"{interpreter}: failed: {data['error'].splitlines()[0]}")
            continue
        env = data["environment"]
        levels = data["levels"]
        base = levels.get("h2", {}).get("server_us_per_call")
        out += [
            f"{env['python']}, h2 {env['h2']}: server-side CPU per call",
            "",
            "| level | server µs / call | above the h2 floor | both sides µs / call |",
            "|---|---|---|---|",
        ]
        names = {
            "h2": "h2 alone (header validation on)",
            "h2-novalidate": "h2, validation and normalisation off",
            "core": "h2rpc `ConnectionCore` pair",
            "codec": "h2rpc core + codec (head, framing, protobuf, trailers)",
        }
        for level, result in levels.items():
            if "error" in result:
                out.append(f"| {names.get(level, level)} | failed: {result['error']} | | |")
                continue
            us = result["server_us_per_call"]
            above = f"{us - base:+.1f}" if base is not None and level != "h2" else ""
            out.append(
                f"| {names.get(level, level)} | {us:.1f} | {above} | "
                f"{result['both_sides_us_per_call']:.1f} |"
            )
        for impl, label in full.get(interpreter, []):
            for scenario, how in (
                ("h2load1", f"under h2load -c 1 -m {H2LOAD_STREAMS}"),
                ("unary1", "unary, 1 in flight"),
            ):
                cell = cells.get((impl, scenario))
                cpu = _median(cell.server_cpu_10k) if cell else None
                if cpu is None:
                    continue
                us = cpu * 100
                above = f"{us - base:+.1f}" if base is not None else ""
                out.append(f"| {label} server process, {how} | {us:.1f} | {above} | |")
        out.append("")
    return out


# -------------------------------------------------------------------------------- workers


def workers_section(setup: Setup) -> dict[str, Any]:
    """1 vs 2 worker processes (rpc.serve(workers=N)) under h2load -c 4, unpinned."""
    if setup.h2load is None:
        return {"skipped": "h2load is not installed (apt-get install nghttp2-client)"}
    impl = IMPL_BY_NAME["h2rpc-async"]
    results: dict[str, Any] = {}
    for workers in (1, 2):
        print(f"[workers] rpc.serve(workers={workers}) under h2load -c 4 ...", flush=True)
        extra = ("--workers", str(workers)) if workers > 1 else ()
        try:
            server = start_server(setup, impl, extra, cpu=None)
        except NotImplementedError as exc:
            return {"skipped": f"TODO: {exc} (the multi-process option is not in rpc.Server yet)"}
        except BenchError as exc:
            results[str(workers)] = {"error": str(exc)}
            continue
        try:
            time.sleep(0.5)  # let every worker come up
            runs = []
            for _ in range(setup.args.repeats):
                runs.append(run_h2load(setup, server, 4, cpu=None))
            results[str(workers)] = {
                "calls_per_s": [r["ops"] / r["elapsed"] for r in runs],
                "server_us_per_call": [r["server_cpu"] / r["ops"] * 1e6 for r in runs],
                "processes": len(process_tree(server)),
            }
        except BenchError as exc:
            results[str(workers)] = {"error": str(exc)}
        finally:
            server.stop()
    return results


def workers_markdown(workers: dict[str, Any]) -> list[str]:
    out = ["", "### Multi-process server: `rpc.serve(workers=N)`, h2load -c 4 -m 64, unpinned", ""]
    if "skipped" in workers:
        return [*out, f"Skipped: {workers['skipped']}"]
    out += [
        "| workers | processes | calls/s (median) | server µs / call | scaling |",
        "|---|---|---|---|---|",
    ]
    one = workers.get("1", {})
    base = _median(one.get("calls_per_s", []))
    for n, r in sorted(workers.items()):
        if "error" in r:
            out.append(f"| {n} | failed: {r['error'].splitlines()[0]} | | | |")
            continue
        rate = _median(r["calls_per_s"])
        scaling = f"{rate / base:.2f}x" if base and rate else "-"
        out.append(
            f"| {n} | {r['processes']} | {_fmt(rate)} | "
            f"{_fmt(_median(r['server_us_per_call']), 1)} | {scaling} |"
        )
    return out


# ----------------------------------------------------------------------------------- main


def parse_args(argv: Optional[list[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="implementations: "
        + ", ".join(f"{i.name}{'' if i.default else ' (not by default)'}" for i in IMPLS)
        + "\nscenarios: "
        + ", ".join(ALL_SCENARIOS),
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a smoke run: 1 repeat of 1 s, short memory and floor sections",
    )
    parser.add_argument("--scenarios", nargs="+", choices=ALL_SCENARIOS, metavar="SCENARIO")
    parser.add_argument("--impls", nargs="+", choices=list(IMPL_BY_NAME), metavar="IMPL")
    parser.add_argument("--repeats", type=int, help="rounds (default 3, quick 1)")
    parser.add_argument("--seconds", type=float, help="timed window (default 1.5, quick 1)")
    parser.add_argument("--warmup", type=float, help="warm-up (default 0.5, quick 0.3)")
    parser.add_argument("--pypy-warmup", type=float, help="warm-up on PyPy (default 2, quick 1)")
    parser.add_argument(
        "--pypy-settle",
        type=float,
        help="on PyPy, after the warm-up, at most this many seconds more until the rate is "
        "steady (within 5 %% over two 1 s windows; default 30, quick 0)",
    )
    parser.add_argument("--pypy", default="pypy3", help="the PyPy interpreter (default pypy3)")
    parser.add_argument(
        "--pypy-gc-nursery",
        default="32MB",
        help="PYPY_GC_NURSERY for h2rpc's PyPy processes unless set already (default 32MB; PyPy "
        "sizes it from the L2 cache, 1 MB here, and then allocates every message above a "
        "fraction of it outside the nursery: 1 MiB messages spent 2/3 of the CPU in the GC); "
        "'' keeps PyPy's own",
    )
    parser.add_argument("--no-memory", action="store_true", help="skip the memory section")
    parser.add_argument("--no-floor", action="store_true", help="skip the h2 floor")
    parser.add_argument("--no-workers", action="store_true", help="skip the workers section")
    parser.add_argument(
        "--no-proxy", action="store_true", help="skip the section behind HAProxy (proxied.py)"
    )
    parser.add_argument(
        "--no-balancing", action="store_true", help="skip the round_robin spread (balanced.py)"
    )
    parser.add_argument("--json", type=Path, help="raw results (default: a file in /tmp)")
    parser.add_argument(
        "--report",
        type=Path,
        metavar="JSON",
        help="print the report of a saved JSON file, run nothing",
    )
    parser.add_argument(
        "--strict",
        action="store_true",
        help="exit with status 1 if any run failed or gave no number (CI's smoke; the numbers "
        "themselves are never checked)",
    )
    args = parser.parse_args(argv)
    args.repeats = args.repeats or (1 if args.quick else 3)
    args.seconds = args.seconds or (1.0 if args.quick else 1.5)
    args.warmup = args.warmup if args.warmup is not None else (0.3 if args.quick else 0.5)
    if args.pypy_warmup is None:
        args.pypy_warmup = 1.0 if args.quick else 2.0
    if args.pypy_settle is None:
        args.pypy_settle = 0.0 if args.quick else 30.0
    args.scenarios = args.scenarios or list(ALL_SCENARIOS)
    args.impls = args.impls or [i.name for i in IMPLS if i.default]
    return args


def make_setup(args: argparse.Namespace, tmp: Path) -> Setup:
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONPATH"] = os.pathsep.join(
        [str(REPO), *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
    )
    env[DESCRIPTOR_ENV] = str(compile_descriptor(tmp / "bench.desc"))
    env.pop(CPU_ENV, None)
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    server_cpu, client_cpu = (cpus[0], cpus[1]) if len(cpus) >= 2 else (None, None)
    setup = Setup(args, tmp, env, server_cpu, client_cpu)
    if client_cpu is not None:
        # The runner mostly sleeps; it stays off the server's CPU.
        os.sched_setaffinity(0, {client_cpu})
    setup.h2load = shutil.which("h2load")
    if setup.h2load is None:
        setup.skipped["h2load"] = "h2load is not installed (apt-get install nghttp2-client)"
    else:
        # The request body: a 5-byte gRPC prefix and a Payload with a 16-byte body.
        message = b"\x0a" + bytes([len(SMALL_BODY)]) + SMALL_BODY
        setup.request_file = tmp / "unary.request"
        setup.request_file.write_bytes(b"\x00" + len(message).to_bytes(4, "big") + message)
    return setup


def main(argv: Optional[list[str]] = None) -> int:
    args = parse_args(argv)
    if args.report:
        print(render(json.loads(args.report.read_text())))
        return 0
    for signum in (signal.SIGINT, signal.SIGTERM):  # SIGINT too: a background job ignores it
        signal.signal(signum, _raise_on_signal)
    started = time.monotonic()
    tmp = Path(tempfile.mkdtemp(prefix="h2rpc-bench-"))
    try:
        return _main(args, tmp, started)
    except KeyboardInterrupt:
        print("\ninterrupted: stopping every process", file=sys.stderr)
        return 130
    finally:
        _stop_all()
        shutil.rmtree(tmp, ignore_errors=True)


def _main(args: argparse.Namespace, tmp: Path, started: float) -> int:
    setup = make_setup(args, tmp)
    impls = choose_impls(setup, args.impls)
    info = versions(setup)
    skipped = {k: v for k, v in setup.skipped.items() if k not in ("pypy", "purerpc")}
    for name, reason in skipped.items():
        print(f"skipped {name}: {reason}", flush=True)
    if not impls:
        print("no implementation can run", file=sys.stderr)
        return 1
    runs: list[dict[str, Any]] = []
    for repeat in range(args.repeats):
        measure_round(setup, impls, repeat, runs)
    memory = {} if args.no_memory else memory_section(setup)
    workers = {"skipped": "--no-workers"} if args.no_workers else workers_section(setup)
    from .proxied import proxy_section  # (it imports this module)

    proxy = {} if args.no_proxy else proxy_section(setup)
    from .balanced import balancing_section

    balancing = {} if args.no_balancing else balancing_section()
    floor = {} if args.no_floor else floor_section(setup)
    elapsed = time.monotonic() - started

    data = {
        "date": time.strftime("%Y-%m-%d"),
        "environment": info,
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "skipped": skipped,
        "runs": runs,
        "memory": memory,
        "workers": workers,
        "proxy": proxy,
        "balancing": balancing,
        "floor": floor,
        "elapsed": elapsed,
    }
    report = render(data)
    print(report)

    json_path = args.json or Path(tempfile.gettempdir()) / time.strftime(
        "h2rpc-bench-%Y%m%d-%H%M%S.json"
    )
    json_path.write_text(json.dumps(data, indent=1))
    json_path.with_suffix(".md").write_text(report + "\n")
    print(f"\nraw results: {json_path} (report: {json_path.with_suffix('.md')})")
    failures = [r for r in runs if no_number(r)]
    from .balanced import balancing_failed
    from .proxied import proxy_failed

    failed_sections = (
        memory_failed(memory)
        or floor_failed(floor)
        or proxy_failed(proxy)
        or balancing_failed(balancing)
    )
    if args.strict and (failures or failed_sections):
        for run in failures:
            why = run.get("error", "no operation completed").splitlines()[0]
            print(f"--strict: {run['impl']} {run['scenario']}: no number: {why}", file=sys.stderr)
        print("--strict: some runs failed (see above and the JSON file)", file=sys.stderr)
        return 1
    return 0


def render(data: dict[str, Any]) -> str:
    """The markdown report of one run's raw results (as written to, or read from, the JSON)."""
    config, info, runs = data["config"], data["environment"], data["runs"]
    memory, workers, floor = data["memory"], data["workers"], data["floor"]
    skipped, elapsed = data["skipped"], data["elapsed"]
    measured = {run["impl"] for run in runs}
    impls = [IMPL_BY_NAME[name] for name in config["impls"] if name in measured]
    cells = summarize(runs)
    lines = [
        "",
        f"## h2rpc benchmarks ({data.get('date', 'date unknown')})",
        "",
        f"Machine: {info['cpus']} CPUs ({info['cpu_model']}); {info['python']}"
        + (f"; {info['pypy']}" if "pypy" in info else "")
        + f". Pinning: {info['pinning']}. Libraries: "
        + ", ".join(
            f"{k} {info[k]}"
            for k in ("h2", "hpack", "protobuf", "grpcio", "grpclib", "uvloop")
            if k in info
        )
        + (f"; {info['purerpc']}" if "purerpc" in info else "")
        + (f"; {info['h2load']}" if "h2load" in info else "")
        + ".",
        "",
        f"{config['repeats']} interleaved round(s); each run: {config['warmup']:g} s warm-up "
        + (
            f"({config['pypy_warmup']:g} s on PyPy, then until its rate is steady, at most "
            f"{config['pypy_settle']:g} s more), "
            if config.get("pypy_settle")
            else f"({config['pypy_warmup']:g} s on PyPy), "
        )
        + f"{config['seconds']:g} s timed; 16-byte payloads; "
        + (
            f"PyPy processes with PYPY_GC_NURSERY={config['pypy_gc_nursery']}; "
            if config.get("pypy_gc_nursery")
            else ""
        )
        + "server and client of the same implementation, one connection. MB = 10^6 bytes.",
        "",
        *markdown_tables(cells, impls, config["scenarios"]),
        *targets(cells),
    ]
    if memory:
        lines += memory_markdown(memory)
    lines += workers_markdown(workers)
    from .proxied import proxy_markdown

    lines += proxy_markdown(data.get("proxy", {}))
    from .balanced import balancing_markdown

    lines += balancing_markdown(data.get("balancing", {}))
    if floor:
        lines += floor_markdown(floor, cells)
    if skipped:
        lines += ["", "Skipped: " + "; ".join(f"{k}: {v}" for k, v in skipped.items()) + "."]
    unsettled = sorted({f"{r['impl']} {r['scenario']}" for r in runs if r.get("steady") is False})
    if unsettled:
        lines += [
            "",
            "Rate still changing by more than 5 % per second at the end of the PyPy settling "
            f"limit ({config.get('pypy_settle', 0):g} s): " + ", ".join(unsettled) + ".",
        ]
    failures = [r for r in runs if "error" in r]
    if failures:
        lines += ["", f"{len(failures)} run(s) failed; their errors are in the JSON file."]
    lines.append(f"\nTotal time: {elapsed:.0f} s.")
    return "\n".join(lines)


def memory_failed(memory: dict[str, Any]) -> bool:
    return any(
        "error" in result
        or result.get("calls_on_all", {}).get("failed")
        or result.get("server_survived") is False
        for result in memory.values()
    )


def floor_failed(floor: dict[str, Any]) -> bool:
    return any(
        "error" in data or any("error" in r for r in data.get("levels", {}).values())
        for data in floor.values()
    )


if __name__ == "__main__":
    sys.exit(main())
