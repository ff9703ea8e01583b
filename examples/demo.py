"""The README demo: a route guide server process and a client talking over loopback.

``python -m examples.demo`` starts ``examples.route_guide.server`` on a free port in a child
process, runs the client against it (one call of each kind, printed as it happens), and stops the
server. ``--pcap FILE`` writes the client's connection to FILE (pcapng) for Wireshark.
"""

from __future__ import annotations

import argparse
import subprocess
import sys

import rpc
from examples.route_guide.client import run


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--pcap", metavar="FILE", help="write the connections to FILE as pcapng, for Wireshark"
    )
    args = parser.parse_args()
    if args.pcap:  # the client's connection (it holds both directions) is captured
        rpc.PcapWriter(args.pcap).activate()
    server = subprocess.Popen(
        [sys.executable, "-m", "examples.route_guide.server", "--address", "127.0.0.1:0"],
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
        rpc.run(run(f"127.0.0.1:{port}", say=lambda text: print(f"client: {text}")))
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
