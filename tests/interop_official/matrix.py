"""The interop matrix: every client case, for each client -> server direction, over loopback.

Usage (from the repository root; CI runs it)::

    python -m tests.interop_official.matrix [--directions h2rpc->grpcio,...] [--cases a,b]
                                            [--no_tls] [--client_timeout S]

Directions: h2rpc -> h2rpc, h2rpc -> grpcio and grpcio -> h2rpc, each in cleartext and over
TLS (certificates made by trustme for the run: the server presents a chain for
``interop.h2rpc.test``, clients trust the run's CA with ``--use_test_ca --ca_file`` and
``--server_host_override``). Each server is a real process (``python -m rpc.interop.server`` or
``tests/interop_official/grpcio_server.py``) on an ephemeral loopback port; each direction's
client is one real process running ``--test_case all`` (each case on a new channel) and
reporting per case in JSON; directions run in parallel.

Prints a table (case x direction: pass / FAIL / skip), then the reason of every failure and the
servers' stderr for the directions that failed; exits 1 if any cell failed. Directions that need
grpcio are skipped on PyPy (only there: grpcio does not build on PyPy).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from tests.interop.peers import (
    GRPCIO_AVAILABLE,
    GRPCIO_UNAVAILABLE_REASON,
    REPO_ROOT,
    PeerProcess,
    peer_environment,
    start_peer,
)

#: The cases of the issue, in the order the table shows them.
CASES = (
    "empty_unary",
    "large_unary",
    "client_streaming",
    "server_streaming",
    "ping_pong",
    "empty_stream",
    "timeout_on_sleeping_server",
    "cancel_after_begin",
    "cancel_after_first_response",
    "status_code_and_message",
    "special_status_message",
    "custom_metadata",
    "unimplemented_method",
    "unimplemented_service",
    "client_compressed_unary",
    "server_compressed_unary",
    "client_compressed_streaming",
    "server_compressed_streaming",
)
SERVER_MODULES = {"h2rpc": "rpc.interop.server", "grpcio": "tests.interop_official.grpcio_server"}
CLIENT_MODULES = {"h2rpc": "rpc.interop.client", "grpcio": "tests.interop_official.grpcio_client"}
TLS_SERVER_NAME = "interop.h2rpc.test"
DEFAULT_CLIENT_TIMEOUT = 120.0
CASE_TIMEOUT = 30.0
_STDERR_TAIL = 4000


@dataclass(frozen=True)
class Direction:
    client: str
    server: str
    tls: bool

    @property
    def name(self) -> str:
        return f"{self.client}->{self.server}{'/tls' if self.tls else ''}"

    @property
    def needs_grpcio(self) -> bool:
        return "grpcio" in (self.client, self.server)

    def __str__(self) -> str:
        return self.name


DIRECTIONS = tuple(
    Direction(client, server, tls)
    for tls in (False, True)
    for client, server in (("h2rpc", "h2rpc"), ("h2rpc", "grpcio"), ("grpcio", "h2rpc"))
)


@dataclass(frozen=True)
class CellResult:
    """``passed`` is None for a skipped cell."""

    passed: Optional[bool]
    reason: str = ""
    seconds: float = 0.0

    @property
    def label(self) -> str:
        return {True: "pass", False: "FAIL", None: "skip"}[self.passed]


@dataclass(frozen=True)
class TlsFiles:
    ca: Path
    chain: Path
    key: Path


def make_tls_files(directory: Path) -> TlsFiles:
    """A CA and a server certificate for TLS_SERVER_NAME, as PEM files (trustme)."""
    import trustme

    ca = trustme.CA()
    issued = ca.issue_cert(TLS_SERVER_NAME)
    files = TlsFiles(directory / "ca.pem", directory / "server.pem", directory / "server.key")
    ca.cert_pem.write_to_path(str(files.ca))
    files.chain.write_bytes(b"".join(blob.bytes() for blob in issued.cert_chain_pems))
    issued.private_key_pem.write_to_path(str(files.key))
    return files


class MatrixRun:
    """Servers and clients of one run: ``start()``, then ``result()`` per cell, ``close()``."""

    def __init__(
        self,
        directions: Sequence[Direction] = DIRECTIONS,
        cases: Sequence[str] = CASES,
        client_timeout: float = DEFAULT_CLIENT_TIMEOUT,
    ) -> None:
        self.directions = list(directions)
        self.cases = list(cases)
        self.client_timeout = client_timeout
        self._workdir = Path(tempfile.mkdtemp(prefix="h2rpc-interop-matrix-"))
        self._tls: Optional[TlsFiles] = None
        self._servers: dict[tuple[str, bool], PeerProcess] = {}
        self._ports: dict[tuple[str, bool], int] = {}
        self._server_errors: dict[tuple[str, bool], str] = {}
        self._results: dict[Direction, dict[str, CellResult]] = {}
        self._threads: dict[Direction, threading.Thread] = {}
        self._client_output: dict[Direction, str] = {}

    # ------------------------------------------------------------------ running

    def runnable(self, direction: Direction) -> bool:
        return GRPCIO_AVAILABLE or not direction.needs_grpcio

    def start(self) -> None:
        """Start the servers, then every direction's client, in parallel; returns at once."""
        wanted = [d for d in self.directions if self.runnable(d)]
        if any(d.tls for d in wanted):
            self._tls = make_tls_files(self._workdir)
        servers = sorted({(d.server, d.tls) for d in wanted})
        starters = [threading.Thread(target=self._start_server, args=key) for key in servers]
        for thread in starters:
            thread.start()
        for thread in starters:
            thread.join()
        for direction in self.directions:
            if not self.runnable(direction):
                self._results[direction] = {
                    case: CellResult(None, GRPCIO_UNAVAILABLE_REASON) for case in self.cases
                }
                continue
            thread = threading.Thread(
                target=self._run_client, args=(direction,), name=f"client {direction}"
            )
            self._threads[direction] = thread
            thread.start()

    def _start_server(self, kind: str, tls: bool) -> None:
        argv = [
            sys.executable,
            "-m",
            SERVER_MODULES[kind],
            "--port",
            "0",
            "--host",
            "127.0.0.1",
            "--stop_on_stdin_eof",
        ]
        if tls:
            assert self._tls is not None
            argv += [
                "--use_tls",
                "--tls_cert_file",
                str(self._tls.chain),
                "--tls_key_file",
                str(self._tls.key),
            ]
        try:
            proc, port = start_peer(argv)
        except Exception as exc:
            self._server_errors[(kind, tls)] = f"{kind} server did not start: {exc}"
            return
        self._servers[(kind, tls)] = proc
        self._ports[(kind, tls)] = port

    def _client_argv(
        self, direction: Direction, port: int, test_case: str, report: Path
    ) -> list[str]:
        argv = [
            sys.executable,
            "-m",
            CLIENT_MODULES[direction.client],
            "--server_host",
            "127.0.0.1",
            "--server_port",
            str(port),
            "--test_case",
            test_case,
            "--case_timeout",
            str(CASE_TIMEOUT),
            "--report_json",
            str(report),
        ]
        if direction.tls:
            assert self._tls is not None
            argv += [
                "--use_tls",
                "--use_test_ca",
                "--ca_file",
                str(self._tls.ca),
                "--server_host_override",
                TLS_SERVER_NAME,
            ]
        return argv

    def _run_client(self, direction: Direction) -> None:
        started = time.monotonic()
        key = (direction.server, direction.tls)
        if key in self._server_errors:
            self._fail_all(direction, self._server_errors[key])
            return
        port = self._ports[key]
        tag = direction.name.replace("->", "-to-").replace("/", "-")
        everything = self.cases == list(CASES)
        runs = (
            [("all", self._workdir / f"{tag}.json")]
            if everything
            else [(case, self._workdir / f"{tag}-{case}.json") for case in self.cases]
        )
        results: dict[str, CellResult] = {}
        output = []
        for test_case, report in runs:
            argv = self._client_argv(direction, port, test_case, report)
            remaining = self.client_timeout - (time.monotonic() - started)
            try:
                done = subprocess.run(
                    argv,
                    cwd=REPO_ROOT,
                    env=peer_environment(),
                    stdin=subprocess.DEVNULL,
                    capture_output=True,
                    text=True,
                    encoding="utf-8",
                    errors="replace",
                    timeout=max(remaining, 1.0),
                )
                status = f"status {done.returncode}"
                output.append(done.stdout + done.stderr)
            except subprocess.TimeoutExpired as exc:
                status = f"killed after {self.client_timeout:g} s"
                output.append(_text(exc.stdout) + _text(exc.stderr))
            reported = json.loads(report.read_text("utf-8")) if report.is_file() else {}
            for case in self.cases if test_case == "all" else [test_case]:
                if case in reported:
                    r = reported[case]
                    results[case] = CellResult(bool(r["passed"]), r["reason"], r["seconds"])
                else:
                    tail = "".join(output)[-_STDERR_TAIL:]
                    reason = f"client ({status}) reported no result for this case:\n{tail}"
                    results[case] = CellResult(False, reason)
        self._client_output[direction] = "".join(output)
        self._results[direction] = results

    def _fail_all(self, direction: Direction, reason: str) -> None:
        self._results[direction] = {case: CellResult(False, reason) for case in self.cases}

    def wait(self, direction: Direction) -> dict[str, CellResult]:
        thread = self._threads.get(direction)
        if thread is not None:
            thread.join()
        return self._results[direction]

    def result(self, direction: Direction, case: str) -> CellResult:
        return self.wait(direction)[case]

    def server_stderr(self, kind: str, tls: bool) -> str:
        proc = self._servers.get((kind, tls))
        return "" if proc is None else proc.stderr_text()

    def close(self) -> None:
        for thread in self._threads.values():
            thread.join()
        for proc in self._servers.values():
            proc.stop()
            proc.remove_logs()
        self._servers.clear()
        shutil.rmtree(self._workdir, ignore_errors=True)

    # ------------------------------------------------------------------ reporting

    def table(self) -> str:
        results = {d: self.wait(d) for d in self.directions}
        width = max(len("case"), *(len(c) for c in self.cases))
        columns = [d.name for d in self.directions]
        header = f"{'case':<{width}}  " + "  ".join(f"{c:<{max(len(c), 4)}}" for c in columns)
        lines = [header, "-" * len(header)]
        for case in self.cases:
            cells = [f"{results[d][case].label:<{max(len(d.name), 4)}}" for d in self.directions]
            lines.append(f"{case:<{width}}  " + "  ".join(cells))
        return "\n".join(lines)

    def failures(self) -> list[tuple[Direction, str, CellResult]]:
        return [
            (d, case, r)
            for d in self.directions
            for case, r in self.wait(d).items()
            if r.passed is False
        ]

    def counts(self) -> tuple[int, int, int]:
        cells = [r for d in self.directions for r in self.wait(d).values()]
        return (
            sum(r.passed is True for r in cells),
            sum(r.passed is False for r in cells),
            sum(r.passed is None for r in cells),
        )


def _text(data: object) -> str:
    if isinstance(data, bytes):
        return data.decode("utf-8", "replace")
    return data if isinstance(data, str) else ""


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--directions",
        help="comma-separated, e.g. h2rpc->grpcio,grpcio->h2rpc/tls (default: all six)",
    )
    parser.add_argument("--cases", help="comma-separated case names (default: all)")
    parser.add_argument("--no_tls", action="store_true", help="skip the TLS directions")
    parser.add_argument(
        "--client_timeout",
        type=float,
        default=DEFAULT_CLIENT_TIMEOUT,
        help=f"seconds each direction's client may take (default {DEFAULT_CLIENT_TIMEOUT:g})",
    )
    args = parser.parse_args(argv)
    known = {d.name: d for d in DIRECTIONS}
    if args.directions:
        names = [n.strip() for n in args.directions.split(",") if n.strip()]
        unknown = [n for n in names if n not in known]
        if unknown:
            parser.error(f"unknown directions {unknown}; known: {', '.join(known)}")
        args.directions = [known[n] for n in names]
    else:
        args.directions = list(DIRECTIONS)
    if args.no_tls:
        args.directions = [d for d in args.directions if not d.tls]
    if args.cases:
        args.cases = [c.strip() for c in args.cases.split(",") if c.strip()]
        unknown = [c for c in args.cases if c not in CASES]
        if unknown:
            parser.error(f"unknown cases {unknown}; known: {', '.join(CASES)}")
    else:
        args.cases = list(CASES)
    return args


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    started = time.monotonic()
    run = MatrixRun(args.directions, args.cases, args.client_timeout)
    try:
        run.start()
        print(run.table())
        passed, failed, skipped = run.counts()
        failures = run.failures()
        if failures:
            print("\nfailures:")
            for direction, case, result in failures:
                print(f"  {direction} {case}: {result.reason}")
            for kind, tls in sorted({(d.server, d.tls) for d, _, _ in failures}):
                print(f"\n{kind} server{' (TLS)' if tls else ''}:\n{run.server_stderr(kind, tls)}")
        print(
            f"\n{passed} passed, {failed} failed, {skipped} skipped "
            f"({len(run.directions)} directions x {len(run.cases)} cases) "
            f"in {time.monotonic() - started:.1f} s"
        )
    finally:
        run.close()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
