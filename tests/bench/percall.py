"""What one call costs, counted: per unary call and per ping-pong message, client and server apart.

``python -m tests.bench.percall [--apis asyncio uvloop sync] [--scenarios unary bidi] [--modes ...]
[--calls N] [--profile-calls N] [--strace-calls N] [--top N] [--json FILE]``

Wall-clock rates on a shared machine are noise; these are not. For each API (h2rpc's asyncio API
on asyncio's own loop, the same on uvloop, the blocking API) and each scenario (``unary``: one
unary call at a time; ``bidi``: one ping-pong round trip on an open bidi stream), a server process
and a client process (pinned to different CPUs, like the runner's) are started once per kind of
measurement, so that no instrument disturbs another:

- **cpu**: ``time.process_time()`` over ``--calls`` operations (all threads of the process), and
  on asyncio's loop the event-loop iterations (``_run_once`` of a subclassed loop);
- **profile**: ``sys.setprofile`` (``threading.setprofile`` for threads) over ``--profile-calls``
  operations: Python function calls (``call`` events), calls of C functions (``c_call``),
  futures (``loop.create_future``, ``concurrent.futures.Future``), tasks (``loop.create_task``)
  and, for threads, ``Condition.wait`` calls (hand-offs between threads);
- **strace**: ``strace -c -f -p PID`` attached to each process over ``--strace-calls``
  operations: every system call, by name (``epoll_wait`` counts the iterations of either loop);
- **opcodes**: ``sys.settrace`` with ``f_trace_opcodes`` over ``--profile-calls`` operations:
  the bytecodes the interpreter executed, a deterministic stand-in for CPU time (which a shared
  machine makes noisy), and with ``--top`` the functions that execute the most of them.

Everything is divided by the number of operations. Warm-up first (connection, caches); the
window starts and ends on commands over stdin, so process start-up is never counted. ``--top N``
also prints the N Python functions called most per operation, per process.

Runs on CPython 3.9+ (strace when installed; the strace pass is skipped otherwise).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable, Optional

from .service import CPU_ENV, DESCRIPTOR_ENV, SMALL_BODY, compile_descriptor

REPO = Path(__file__).resolve().parents[2]
APIS = ("asyncio", "uvloop", "sync")
SCENARIOS = ("unary", "bidi")
MODES = ("cpu", "profile", "strace", "opcodes", "cprofile")
WARMUP_OPS = 300
_WEAKSET_ADD = __import__("_weakrefset").WeakSet.add.__code__

# ------------------------------------------------------------------------ instruments (child)


class Instruments:
    """The counters of one process; ``begin``/``end`` bracket the measured window."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.on = False
        self.calls: collections.Counter[Any] = collections.Counter()
        self.c_calls: collections.Counter[str] = collections.Counter()
        self.loop_iterations = 0
        self.futures = 0
        self.tasks = 0
        self.registered_tasks = 0
        self._cpu = 0.0
        self._times = os.times()
        self.cpu = 0.0
        self.gc_seconds = 0.0
        self.gc_collections = [0, 0, 0]
        self._gc_started = 0.0
        if mode == "cpu":
            import gc

            gc.callbacks.append(self._on_gc)
        self._cprofile: Any = None
        if mode == "cprofile":
            import cProfile

            self._cprofile = cProfile.Profile()
        self.opcodes = 0
        self.opcodes_by_code: collections.Counter[Any] = collections.Counter()
        if mode == "profile":
            profile = self._profile
            threading.setprofile(profile)
            sys.setprofile(profile)
        if mode == "opcodes":
            threading.settrace(self._trace)
            sys.settrace(self._trace)

    def _on_gc(self, phase: str, info: dict[str, Any]) -> None:
        if not self.on:
            return
        if phase == "start":
            self._gc_started = time.perf_counter()
        else:
            self.gc_seconds += time.perf_counter() - self._gc_started
            self.gc_collections[info["generation"]] += 1

    def _trace(self, frame: Any, event: str, arg: Any) -> Any:
        if event == "call":
            frame.f_trace_opcodes = True
            frame.f_trace_lines = False
            return self._trace
        if event == "opcode" and self.on:
            self.opcodes += 1
            self.opcodes_by_code[frame.f_code] += 1
        return self._trace

    def _profile(self, frame: Any, event: str, arg: Any) -> None:
        if not self.on:
            return
        if event == "call":
            code = frame.f_code
            self.calls[code] += 1
            if code is _WEAKSET_ADD and isinstance(frame.f_locals.get("item"), asyncio.Task):
                self.registered_tasks += 1  # a task registering itself, however it was made
        elif event == "c_call":
            self.c_calls[getattr(arg, "__name__", "?")] += 1

    def begin(self) -> None:
        self.calls.clear()
        self.c_calls.clear()
        self.loop_iterations = 0
        self.futures = 0
        self.tasks = 0
        self.registered_tasks = 0
        self.opcodes = 0
        self.opcodes_by_code.clear()
        self.gc_seconds = 0.0
        self.gc_collections = [0, 0, 0]
        self._cpu = time.process_time()
        self._times = os.times()
        self.on = True
        if self._cprofile is not None:
            self._cprofile.enable()

    def end(self, top: int) -> dict[str, Any]:
        self.on = False
        if self._cprofile is not None:
            self._cprofile.disable()
            self._cprofile.dump_stats(os.environ["H2RPC_PERCALL_PSTATS"])
        self.cpu = time.process_time() - self._cpu
        times = os.times()
        result: dict[str, Any] = {
            "cpu": self.cpu,
            "cpu_user": times.user - self._times.user,
            "cpu_system": times.system - self._times.system,
            "loop_iterations": self.loop_iterations,
            "futures": self.futures,
            "tasks": self.tasks,
            "opcodes": self.opcodes,
            "gc_us": self.gc_seconds * 1e6,
            "gc_gen0": self.gc_collections[0],
            "gc_gen1": self.gc_collections[1],
            "gc_gen2": self.gc_collections[2],
        }
        if self.mode == "profile":
            result.update(self._profile_summary(top))
        if self.mode == "opcodes":
            result["top_opcodes"] = [
                [f"{_short(code.co_filename)}:{code.co_firstlineno} {code.co_name}", n]
                for code, n in self.opcodes_by_code.most_common(top)
            ]
        return result

    def _profile_summary(self, top: int) -> dict[str, Any]:
        import concurrent.futures

        futures = waits = 0
        future_init = concurrent.futures.Future.__init__.__code__
        wait = threading.Condition.wait.__code__
        for code, n in self.calls.items():
            if code is future_init:
                futures += n
            elif code is wait:
                waits += n
        ranked = sorted(self.calls.items(), key=lambda item: -item[1])[:top]
        return {
            "py_calls": sum(self.calls.values()),
            "c_calls": sum(self.c_calls.values()),
            "thread_futures": futures,
            "all_tasks": self.registered_tasks,
            "waits": waits,
            "top": [
                [f"{_short(code.co_filename)}:{code.co_firstlineno} {code.co_name}", n]
                for code, n in ranked
            ],
            "top_c": [[name, n] for name, n in self.c_calls.most_common(top)],
        }


def _short(filename: str) -> str:
    for root in (str(REPO) + os.sep, os.path.dirname(os.__file__) + os.sep):
        if filename.startswith(root):
            return filename[len(root) :]
    return filename.rsplit("site-packages" + os.sep, 1)[-1]


def _counting_policy(api: str, instruments: Instruments) -> asyncio.AbstractEventLoopPolicy:
    """An event loop policy whose loops count the futures and tasks made through them and (on
    asyncio's own loop, whose iterations are Python) their iterations."""
    base: Any
    if api == "uvloop":
        import uvloop

        base = uvloop.Loop
    else:
        base = asyncio.SelectorEventLoop

    class CountingLoop(base):  # type: ignore[misc, valid-type]
        if api != "uvloop":

            def _run_once(self) -> None:
                instruments.loop_iterations += 1
                super()._run_once()

        def create_future(self) -> Any:
            instruments.futures += 1
            return super().create_future()

        def create_task(self, *args: Any, **kwargs: Any) -> Any:
            instruments.tasks += 1
            return super().create_task(*args, **kwargs)

    class Policy(asyncio.DefaultEventLoopPolicy):
        def new_event_loop(self) -> asyncio.AbstractEventLoop:
            return CountingLoop()  # type: ignore[no-any-return]

    return Policy()


def _reply(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _commands() -> Any:
    """stdin's command lines, as they come (blocking reads)."""
    for line in sys.stdin:
        yield line.split()


# ---------------------------------------------------------------------------- servers (child)


def serve_async(api: str, instruments: Instruments, top: int) -> None:
    from .h2rpc_async_server import make_server

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = make_server()
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        stop = loop.create_future()
        stdin = sys.stdin.fileno()
        pending = b""

        def on_stdin() -> None:
            nonlocal pending
            data = os.read(stdin, 4096)
            if not data:
                loop.remove_reader(stdin)
                if not stop.done():
                    stop.set_result(None)
                return
            pending += data
            while b"\n" in pending:
                line, pending = pending.split(b"\n", 1)
                command = line.decode().split()
                if command == ["begin"]:
                    instruments.begin()
                    _reply("ok")
                elif command == ["end"]:
                    _reply("COUNTS " + json.dumps(instruments.end(top)))

        loop.add_reader(stdin, on_stdin)
        _reply(f"PORT {port}")
        await stop
        await server.stop(0.5)

    _run_loop(api, instruments, main)


def serve_sync(instruments: Instruments, top: int) -> None:
    import rpc

    from .h2rpc_sync_server import WORKERS, BenchServicer
    from .service import MAX_MESSAGE, messages

    server = rpc.sync.Server(
        max_workers=WORKERS,
        max_calls_per_connection=WORKERS,
        max_receive_message_length=MAX_MESSAGE,
        max_send_message_length=MAX_MESSAGE,
    )
    server.add_service(messages().service, BenchServicer())
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    _reply(f"PORT {port}")
    for command in _commands():
        if command == ["begin"]:
            instruments.begin()
            _reply("ok")
        elif command == ["end"]:
            _reply("COUNTS " + json.dumps(instruments.end(top)))
    server.stop(0.5)


def _run_loop(api: str, instruments: Instruments, main: Callable[[], Any]) -> None:
    asyncio.set_event_loop_policy(_counting_policy(api, instruments))
    asyncio.run(main())


# ---------------------------------------------------------------------------- clients (child)


def client_async(api: str, target: str, scenario: str, instruments: Instruments, top: int) -> None:
    from .h2rpc_async_client import Client
    from .service import messages

    async def main() -> None:
        small = messages().Payload(body=SMALL_BODY)
        async with Client(target) as client:
            if scenario == "unary":
                unary = client.unary

                async def op() -> None:
                    await unary(small)

            else:
                bidi = await client.bidi()

                async def op() -> None:
                    await bidi.write(small)
                    await bidi.read()

            for _ in range(WARMUP_OPS):
                await op()
            _reply("READY")
            for command in _commands():  # blocks the loop between windows: nothing to do then
                if command == ["begin"]:
                    instruments.begin()
                    _reply("ok")
                elif command[:1] == ["run"]:
                    for _ in range(int(command[1])):
                        await op()
                    _reply("done")
                elif command == ["end"]:
                    _reply("COUNTS " + json.dumps(instruments.end(top)))
                elif command == ["quit"]:
                    break
            if scenario == "bidi":
                await bidi.finish()

    _run_loop(api, instruments, main)


def client_sync(target: str, scenario: str, instruments: Instruments, top: int) -> None:
    from .h2rpc_sync_client import Client
    from .service import messages

    small = messages().Payload(body=SMALL_BODY)
    with Client(target) as client:
        if scenario == "unary":
            unary = client.unary

            def op() -> None:
                unary(small)

        else:
            bidi = client.bidi()

            def op() -> None:
                bidi.write(small)
                bidi.read()

        for _ in range(WARMUP_OPS):
            op()
        _reply("READY")
        for command in _commands():
            if command == ["begin"]:
                instruments.begin()
                _reply("ok")
            elif command[:1] == ["run"]:
                for _ in range(int(command[1])):
                    op()
                _reply("done")
            elif command == ["end"]:
                _reply("COUNTS " + json.dumps(instruments.end(top)))
            elif command == ["quit"]:
                break
        if scenario == "bidi":
            bidi.finish()


def child_main(args: argparse.Namespace) -> int:
    from .service import prepare_process

    prepare_process()
    instruments = Instruments(args.mode)
    if args.role == "server":
        if args.api == "sync":
            serve_sync(instruments, args.top)
        else:
            serve_async(args.api, instruments, args.top)
    elif args.api == "sync":
        client_sync(args.target, args.scenario, instruments, args.top)
    else:
        client_async(args.api, args.target, args.scenario, instruments, args.top)
    return 0


# ------------------------------------------------------------------------------ orchestrator


class Child:
    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            cwd=REPO,
            text=True,
            bufsize=1,
        )
        self.pid = self.proc.pid
        self._stderr: list[str] = []
        threading.Thread(target=self._drain_stderr, daemon=True).start()

    def _drain_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self._stderr.append(line)

    def expect(self, prefix: str, timeout: float = 120.0) -> str:
        assert self.proc.stdout is not None
        result: list[str] = []

        def read() -> None:
            assert self.proc.stdout is not None
            for line in self.proc.stdout:
                if line.startswith(prefix):
                    result.append(line.rstrip("\n"))
                    return

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        reader.join(timeout)
        if not result:
            self.stop()
            raise RuntimeError(f"no {prefix!r} from {self.proc.args}:\n{''.join(self._stderr)}")
        return result[0]

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def stop(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(OSError):
                assert self.proc.stdin is not None
                self.proc.stdin.close()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Strace:
    """``strace -c -f -p PID``: counts every system call of every thread until stopped."""

    def __init__(self, pid: int, out: Path) -> None:
        self.out = out
        self.proc = subprocess.Popen(
            ["strace", "-c", "-f", "-o", str(out), "-p", str(pid)],
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stderr is not None
        line = self.proc.stderr.readline()  # "strace: Process N attached" (each thread)
        if "attached" not in line:
            raise RuntimeError(f"strace did not attach: {line}")
        threading.Thread(target=self.proc.stderr.read, daemon=True).start()

    def stop(self) -> dict[str, int]:
        self.proc.send_signal(signal.SIGINT)
        self.proc.wait(30)
        counts: dict[str, int] = {}
        for line in self.out.read_text().splitlines():
            # % time  seconds  usecs/call  calls  [errors]  syscall
            match = re.match(r"\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?(\w+)\s*$", line)
            if match and match.group(2) != "total":
                counts[match.group(2)] = int(match.group(1))
        return counts


def measure(
    setup: dict[str, Any], api: str, scenario: str, mode: str, calls: int
) -> dict[str, Any]:
    """One server and one client process, one window of ``calls`` operations: their counts."""
    base = [sys.executable, "-m", "tests.bench.percall", "--api", api, "--mode", mode]
    base += ["--top", str(setup["top"])]
    server_env = dict(setup["env"], **({CPU_ENV: setup["cpus"][0]} if setup["cpus"] else {}))
    client_env = dict(setup["env"], **({CPU_ENV: setup["cpus"][1]} if setup["cpus"] else {}))
    if mode == "cprofile":
        for env, side in ((server_env, "server"), (client_env, "client")):
            env["H2RPC_PERCALL_PSTATS"] = str(setup["cprofile"] / f"{api}-{scenario}-{side}.pstats")
    server = Child([*base, "--role", "server"], server_env)
    client = None
    tracers: list[Strace] = []
    try:
        port = int(server.expect("PORT ").split()[1])
        client = Child(
            [*base, "--role", "client", "--scenario", scenario, "--target", f"127.0.0.1:{port}"],
            client_env,
        )
        client.expect("READY")
        for child in (server, client):
            child.send("begin")
            child.expect("ok")
        if mode == "strace":
            tracers = [
                Strace(child.pid, setup["tmp"] / f"strace-{name}.txt")
                for name, child in (("server", server), ("client", client))
            ]
            time.sleep(0.2)  # every thread attached
        client.send(f"run {calls}")
        client.expect("done", timeout=600)
        syscalls = [tracer.stop() for tracer in tracers]
        tracers = []
        result: dict[str, Any] = {}
        for i, (name, child) in enumerate((("server", server), ("client", client))):
            child.send("end")
            counts = json.loads(child.expect("COUNTS ")[len("COUNTS ") :])
            if syscalls:
                counts["syscalls"] = syscalls[i]
            result[name] = counts
        client.send("quit")
        return result
    finally:
        for tracer in tracers:
            with contextlib.suppress(Exception):
                tracer.stop()
        if client is not None:
            client.stop()
        server.stop()


def run_all(args: argparse.Namespace) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="h2rpc-percall-"))
    try:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            [str(REPO), *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
        )
        if DESCRIPTOR_ENV not in env:
            env[DESCRIPTOR_ENV] = str(compile_descriptor(tmp / "bench.desc"))
        cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
        setup = {
            "env": env,
            "tmp": tmp,
            "top": args.top,
            "cprofile": args.cprofile,
            "cpus": [str(cpus[0]), str(cpus[1])] if len(cpus) >= 2 else [],
        }
        modes = {
            "cpu": args.calls,
            "profile": args.profile_calls,
            "strace": args.strace_calls,
            "opcodes": args.profile_calls,
        }
        modes = {mode: n for mode, n in modes.items() if mode in args.modes}
        if args.cprofile:
            args.cprofile.mkdir(parents=True, exist_ok=True)
            modes["cprofile"] = args.profile_calls
        if not shutil.which("strace"):
            print("strace is not installed: no system call counts", file=sys.stderr)
            del modes["strace"]
        results: dict[str, Any] = {}
        for api in args.apis:
            if api == "uvloop" and not _importable("uvloop"):
                print("uvloop is not installed: skipped", file=sys.stderr)
                continue
            for scenario in args.scenarios:
                key = f"{api} {scenario}"
                cell: dict[str, Any] = {"server": {}, "client": {}}
                for mode, calls in modes.items():
                    print(f"[{key}] {mode}, {calls} operations ...", file=sys.stderr, flush=True)
                    measured = measure(setup, api, scenario, mode, calls)
                    for side in ("server", "client"):
                        cell[side][mode] = per_op(measured[side], calls)
                results[key] = cell
        return results
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _importable(name: str) -> bool:
    try:
        __import__(name)
    except ImportError:
        return False
    return True


def per_op(counts: dict[str, Any], ops: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in counts.items():
        if key in ("top", "top_c", "top_opcodes"):
            out[key] = [[name, n / ops] for name, n in value]
        elif key == "syscalls":
            out[key] = {name: n / ops for name, n in value.items()}
        elif key.startswith("cpu"):
            out[key + "_us"] = value / ops * 1e6
        else:
            out[key] = value / ops
    return out


# ------------------------------------------------------------------------------------ report


def render(results: dict[str, Any], top: int) -> str:
    lines = [
        "| API, scenario | side | bytecodes | Python calls | C calls | loop iterations "
        "(_run_once / epoll_wait) | syscalls (main ones) | futures | tasks | thread waits | "
        "CPU µs (user + system) | of which GC µs (collections gen0/1/2 per 1k) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for key, cell in results.items():
        for side in ("client", "server"):
            data = cell[side]
            cpu = data.get("cpu", {})
            prof = data.get("profile", {})
            ops = data.get("opcodes", {})
            sys_counts = data.get("strace", {}).get("syscalls", {})
            total = sum(sys_counts.values())
            main_ones = ", ".join(
                f"{name} {n:.2f}"
                for name, n in sorted(sys_counts.items(), key=lambda item: -item[1])
                if n >= 0.05
            )
            futures = _num(cpu.get("futures"), 2)
            if prof.get("thread_futures"):
                futures += f" + {prof['thread_futures']:.2f} concurrent"
            iterations = "-"
            if "asyncio" in key:
                iterations = f"{cpu.get('loop_iterations', 0):.2f}"
            if sys_counts:
                epoll = sys_counts.get("epoll_wait", 0) + sys_counts.get("epoll_pwait", 0)
                iterations += f" / {epoll:.2f}"
            lines.append(
                f"| {key} | {side} | {_num(ops.get('opcodes'), 0)} | {_num(prof.get('py_calls'))} "
                f"| {_num(prof.get('c_calls'))} "
                f"| {iterations} | {total:.2f}: {main_ones} | {futures} "
                f"| {_num(prof.get('all_tasks'), 2)} | {_num(prof.get('waits'), 2)} "
                f"| {_num(cpu.get('cpu_us'))} ({_num(cpu.get('cpu_user_us'))} + "
                f"{_num(cpu.get('cpu_system_us'))}) | {_num(cpu.get('gc_us'))} ("
                + "/".join(_num(cpu.get(f"gc_gen{g}", 0) * 1000, 1) for g in range(3))
                + ") |"
            )
    if top:
        for key, cell in results.items():
            for side in ("client", "server"):
                profile = dict(cell[side].get("profile", {}), **cell[side].get("opcodes", {}))
                for field, what in (
                    ("top_opcodes", "Bytecodes (own) of the functions that run most"),
                    ("top", "Python"),
                    ("top_c", "C"),
                ):
                    ranked = profile.get(field, [])
                    if ranked:
                        unit = "" if field == "top_opcodes" else " calls"
                        lines += ["", f"{key}, {side}: {what}{unit} per operation", ""]
                        lines += [f"    {n:7.2f}  {name}" for name, n in ranked]
    return "\n".join(lines)


def _num(value: Optional[float], digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--apis", nargs="+", choices=APIS, default=list(APIS))
    parser.add_argument("--scenarios", nargs="+", choices=SCENARIOS, default=list(SCENARIOS))
    parser.add_argument(
        "--modes",
        nargs="+",
        choices=MODES[:4],
        default=list(MODES[:4]),
        help="the passes to run (default: all four)",
    )
    parser.add_argument("--calls", type=int, default=5000, help="operations timed (cpu pass)")
    parser.add_argument("--profile-calls", type=int, default=500, help="operations profiled")
    parser.add_argument("--strace-calls", type=int, default=2000, help="operations straced")
    parser.add_argument("--top", type=int, default=0, help="list the N most called functions")
    parser.add_argument("--json", type=Path, help="write the results here too")
    parser.add_argument(
        "--cprofile",
        type=Path,
        metavar="DIR",
        help="also a cProfile pass: DIR/API-SCENARIO-SIDE.pstats (read with python -m pstats)",
    )
    # The processes this script starts for itself:
    parser.add_argument("--role", choices=("server", "client"), help=argparse.SUPPRESS)
    parser.add_argument("--api", choices=APIS, help=argparse.SUPPRESS)
    parser.add_argument("--mode", choices=MODES, help=argparse.SUPPRESS)
    parser.add_argument("--scenario", choices=SCENARIOS, help=argparse.SUPPRESS)
    parser.add_argument("--target", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.role:
        return child_main(args)
    results = run_all(args)
    report = render(results, args.top)
    print(report)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
