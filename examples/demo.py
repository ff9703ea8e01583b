"""The README demo: a route guide server process and a client talking over loopback.

``python -m examples.demo`` starts ``examples.route_guide.server`` on a free port in a child
process, runs the client against it (one call of each kind, printed as it happens), and stops the
server. ``--trace-html FILE`` traces both ends, the server's process and the client's, into one
JSON-lines trace (``FILE`` with the suffix ``.jsonl``) and draws it as a ladder diagram in ``FILE``
(HTML; SVG if ``FILE`` ends in ``.svg``).
``--pcap FILE`` writes the client's connection to FILE (pcapng) for Wireshark.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path
from typing import Optional

import rpc
from examples.route_guide.client import run
from rpc._trace.ladder import load_events, write_diagram


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--trace-html", metavar="FILE", help="draw both ends of the wire as a ladder diagram"
    )
    parser.add_argument(
        "--pcap", metavar="FILE", help="write the connections to FILE as pcapng, for Wireshark"
    )
    args = parser.parse_args()
    if args.pcap:  # the client's connection (it holds both directions) is captured
        rpc.PcapWriter(args.pcap).activate()
    env = dict(os.environ)
    tracer: Optional[rpc.Tracer] = None
    trace_file = None
    if args.trace_html:
        # Both processes append JSON lines to one file as things happen: a sender records a
        # frame before writing it, a receiver after reading it, so the file is in wire order.
        trace_file = Path(args.trace_html).with_suffix(".jsonl")
        trace_file.unlink(missing_ok=True)
        env.update(H2RPC_TRACE="all,json", H2RPC_TRACE_FILE=str(trace_file))
        tracer = rpc.Tracer(output=str(trace_file), format="json", keep=False)
    status = _demo(env, tracer)
    if tracer is not None and trace_file is not None:
        tracer.stop()
        write_diagram(load_events(trace_file), args.trace_html, title="python -m examples.demo")
        print(f"wrote {args.trace_html} (ladder diagram) and {trace_file} (the trace)")
    return status


def _say(text: str) -> None:
    print(f"client: {text}")


def _demo(env: dict[str, str], tracer: Optional[rpc.Tracer]) -> int:
    server = subprocess.Popen(
        [sys.executable, "-m", "examples.route_guide.server", "--address", "127.0.0.1:0"],
        env=env,
        stdout=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        if not line.startswith("PORT "):
            print(f"server failed to start: {line!r}", file=sys.stderr)
            return 1
        port = int(line.split()[1])
        print(f"server: route guide listening on 127.0.0.1:{port} (pid {server.pid})")
        print("client: calling it, one call of each kind")
        rpc.run(run(f"127.0.0.1:{port}", say=_say, trace=tracer))
        print("demo finished: all four call kinds succeeded")
        return 0
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


if __name__ == "__main__":
    sys.exit(main())
