"""The gRPC interop test client on h2rpc.

Usage::

    python -m rpc.interop.client --server_host H --server_port P --test_case large_unary
    python -m rpc.interop.client --server_port P --test_case all
    python -m rpc.interop.client --server_port P --test_case all --use_tls \\
        --use_test_ca --ca_file ca.pem --server_host_override foo.test.google.fr

Runs the client test cases of the gRPC project's interop test descriptions against any interop
server: empty_unary, large_unary, client_compressed_unary, server_compressed_unary,
client_streaming, client_compressed_streaming, server_streaming, server_compressed_streaming,
ping_pong, empty_stream, custom_metadata, status_code_and_message, special_status_message,
unimplemented_method, unimplemented_service, cancel_after_begin, cancel_after_first_response,
timeout_on_sleeping_server. ``--test_case all`` runs each of them (each on a new channel) and
prints a table.

Exit status: 0 when every case run passed; 1 when one failed (the reason is on stderr); 2 for a
usage error.

TLS: ``--use_tls`` verifies the server against the system's roots, or with ``--use_test_ca``
against the CA in ``--ca_file``. Official clients bundle the gRPC project's test CA for
``--use_test_ca``; h2rpc does not ship those keys, so ``--use_test_ca`` needs ``--ca_file`` (the
gRPC project's ``src/core/tsi/test_creds/ca.pem`` for official servers, or the CA that signed the
certificate given to ``rpc.interop.server``). ``--server_host_override`` is the name the
certificate is checked against and the ``:authority`` sent.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import ssl
import sys
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Optional

import rpc
from rpc.interop._cases import CASES, Case, CaseFailed
from rpc.interop._common import add_bool_flag, host_port

DEFAULT_CASE_TIMEOUT = 30.0
#: How long the client waits, at the end, for its channels to finish closing.
CHANNEL_CLOSE_WAIT = 1.0


@dataclass(frozen=True)
class CaseResult:
    name: str
    passed: bool
    seconds: float
    reason: str = ""


@dataclass(frozen=True)
class Target:
    """Where and how to connect: one new channel per case."""

    address: str
    ssl_context: Optional[ssl.SSLContext] = None
    host_override: Optional[str] = None
    port: int = 0

    def channel(self) -> rpc.Channel:
        options: dict[str, Any] = {}
        if self.ssl_context is not None:
            options["ssl_context"] = self.ssl_context
        if self.host_override:
            if self.ssl_context is not None:
                options["server_hostname"] = self.host_override
            options["authority"] = host_port(self.host_override, self.port)
        return rpc.Channel(self.address, **options)


async def run_case(
    name: str, case: Case, target: Target, timeout: float, closing: list[asyncio.Future[None]]
) -> CaseResult:
    """Run one case on a new channel; the channel's close is appended to ``closing``."""
    started = time.monotonic()
    channel = target.channel()
    try:
        await asyncio.wait_for(case(channel), timeout)
    except CaseFailed as exc:
        return CaseResult(name, False, time.monotonic() - started, str(exc))
    except asyncio.TimeoutError:
        return CaseResult(name, False, time.monotonic() - started, f"timed out after {timeout:g} s")
    except rpc.RpcError as exc:
        reason = f"unexpected status {exc.code().name}: {exc.details()}"
        return CaseResult(name, False, time.monotonic() - started, reason)
    except Exception as exc:
        traceback.print_exc()
        reason = f"unexpected {type(exc).__name__}: {exc}"
        return CaseResult(name, False, time.monotonic() - started, reason)
    finally:
        # Closed in the background: a case's result does not depend on a clean close, and
        # closing a TLS channel waits for the server to close the connection, which grpcio
        # servers (gRPC core) may not do: Channel.close() then takes its full 5 s timeout.
        closing.append(asyncio.ensure_future(channel.close()))
    return CaseResult(name, True, time.monotonic() - started)


async def run_cases(names: Sequence[str], target: Target, timeout: float) -> list[CaseResult]:
    results = []
    closing: list[asyncio.Future[None]] = []
    try:
        for name in names:
            result = await run_case(name, CASES[name], target, timeout, closing)
            _report(result)
            results.append(result)
    finally:
        if closing:
            _, pending = await asyncio.wait(closing, timeout=CHANNEL_CLOSE_WAIT)
            for task in pending:
                task.cancel()
    return results


def _report(result: CaseResult) -> None:
    if result.passed:
        print(f"PASS {result.name} ({result.seconds:.2f} s)", flush=True)
    else:
        print(f"FAIL {result.name}: {result.reason}", file=sys.stderr, flush=True)


def format_table(results: Sequence[CaseResult]) -> str:
    width = max(len("case"), *(len(r.name) for r in results))
    lines = [f"{'case':<{width}}  result  seconds  reason", "-" * (width + 32)]
    for r in results:
        lines.append(
            f"{r.name:<{width}}  {'pass' if r.passed else 'FAIL':<6}  {r.seconds:7.2f}  {r.reason}"
        )
    passed = sum(r.passed for r in results)
    lines.append(f"{passed}/{len(results)} passed")
    return "\n".join(lines)


def write_report(path: str, results: Sequence[CaseResult]) -> None:
    """Results as JSON, for harnesses: ``{"case": {"passed":..., "seconds":..., "reason":...}}``."""
    data = {
        r.name: {"passed": r.passed, "seconds": round(r.seconds, 3), "reason": r.reason}
        for r in results
    }
    with open(path, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=1)


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m rpc.interop.client",
        description="gRPC interop test client on h2rpc.",
    )
    parser.add_argument("--server_host", default="localhost", help="server host to connect to")
    parser.add_argument(
        "--server_host_override",
        help="the server name for TLS verification and the :authority header",
    )
    parser.add_argument("--server_port", type=int, required=True, help="server port")
    parser.add_argument(
        "--test_case",
        default="large_unary",
        help=f"the case to run, or 'all': {', '.join(CASES)}",
    )
    add_bool_flag(parser, "--use_tls", "connect with TLS (ALPN h2)")
    add_bool_flag(parser, "--use_test_ca", "verify the server with the CA of --ca_file")
    parser.add_argument("--ca_file", help="PEM root certificate(s) for --use_test_ca")
    parser.add_argument(
        "--case_timeout",
        type=float,
        default=DEFAULT_CASE_TIMEOUT,
        help=f"seconds each case may take (default {DEFAULT_CASE_TIMEOUT:g})",
    )
    parser.add_argument("--report_json", metavar="PATH", help="also write the results as JSON")
    parser.add_argument(
        "--trace",
        nargs="?",
        const="all",
        metavar="KINDS",
        help="study mode: print the wire to stderr (frames,headers,messages; default all; json)",
    )
    parser.add_argument(
        "--pcap", metavar="FILE", help="write the connections to FILE as pcapng, for Wireshark"
    )
    args = parser.parse_args(argv)
    if args.test_case != "all" and args.test_case not in CASES:
        parser.error(f"unknown --test_case {args.test_case!r}; known: all, {', '.join(CASES)}")
    if args.use_test_ca and not args.ca_file:
        parser.error(
            "--use_test_ca needs --ca_file: h2rpc ships no test CA (the gRPC project's "
            "src/core/tsi/test_creds/ca.pem is theirs to distribute)"
        )
    if (args.use_test_ca or args.ca_file) and not args.use_tls:
        parser.error("--use_test_ca and --ca_file need --use_tls")
    if args.trace:  # study mode: every channel and server of this run is traced (rpc.Tracer)
        rpc.Tracer.from_spec(args.trace).activate()
    if args.pcap:  # every channel and server of this run is captured (rpc.PcapWriter)
        try:
            rpc.PcapWriter(args.pcap).activate()
        except OSError as exc:
            parser.error(f"--pcap {args.pcap}: {exc.strerror or exc}")
    return args


def target_from(args: argparse.Namespace) -> Target:
    context = None
    if args.use_tls:
        context = rpc.ssl_channel_context(args.ca_file)  # None: the system's roots
    return Target(
        host_port(args.server_host, args.server_port),
        context,
        args.server_host_override,
        args.server_port,
    )


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    names = list(CASES) if args.test_case == "all" else [args.test_case]
    results = rpc.run(run_cases(names, target_from(args), args.case_timeout))
    if args.report_json:
        write_report(args.report_json, results)
    if args.test_case == "all":
        print(format_table(results))
    return 0 if all(r.passed for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
