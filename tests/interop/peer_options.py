"""Command-line options shared by the grpcio and h2rpc peer servers (same flags, same meaning)."""

from __future__ import annotations

import argparse

DEFAULT_MAX_MESSAGE_LENGTH = 64 * 1024 * 1024

#: What the h2rpc peer started with ``--log-calls`` writes to stderr as each Unary call begins,
#: so that a test whose client cannot see that (grpcio's unary future shows nothing before its
#: end) can wait for it.
CALL_BEGUN = "call begun: Unary"


def add_server_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--max-receive-message-length", type=int, default=DEFAULT_MAX_MESSAGE_LENGTH
    )
    parser.add_argument("--max-concurrent-streams", type=int, default=0, help="0: default")
    parser.add_argument("--keepalive-time", type=float, default=0.0, help="seconds; 0: off")
    parser.add_argument("--keepalive-timeout", type=float, default=20.0)
    parser.add_argument("--tls-cert", help="PEM certificate chain file: serve TLS")
    parser.add_argument("--tls-key", help="PEM private key file")
    parser.add_argument("--tls-ca", help="PEM roots to verify client certificates with")
    parser.add_argument("--require-client-auth", action="store_true")


def read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()
