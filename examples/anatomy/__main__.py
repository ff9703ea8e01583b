"""The anatomy of gRPC calls: ``python -m examples.anatomy [--check] [--output FILE] [--trace]``.

Runs a unary call, each streaming kind, a deadline expiry, a cancellation, a compressed call, an
error answered Trailers-Only and a graceful GOAWAY, with the client's connection traced, and
writes the annotated walkthrough (``examples/anatomy/WALKTHROUGH.md`` by default) from the real
trace. ``--check`` writes nothing: it fails (exit status 1) if the committed walkthrough differs
from a fresh one. ``--trace`` also prints the live trace to standard error.
"""

from __future__ import annotations

import argparse
import asyncio
import difflib
import sys
from pathlib import Path

import rpc
from examples.anatomy.scenarios import run_scenarios
from examples.anatomy.walkthrough import normalize, render

WALKTHROUGH = Path(__file__).resolve().parent / "WALKTHROUGH.md"


def generate(live_trace: bool = False) -> str:
    """Run the scenarios and return the walkthrough's markdown."""
    tracer = rpc.Tracer()
    if live_trace:
        tracer.add_output(sys.stderr)
    scenarios = rpc.run(asyncio.wait_for(run_scenarios(tracer), 60))
    return render(scenarios)


def stale_diff(committed: str, fresh: str) -> str:
    """A unified diff of what is out of date ("" if nothing is), ignoring the lines that vary."""
    return "".join(
        difflib.unified_diff(
            normalize(committed).splitlines(keepends=True),
            normalize(fresh).splitlines(keepends=True),
            "committed WALKTHROUGH.md",
            "regenerated",
        )
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--output", type=Path, default=WALKTHROUGH)
    parser.add_argument("--check", action="store_true", help="fail if the file is stale")
    parser.add_argument(
        "--trace", action="store_true", help="also print the live trace to standard error"
    )
    parser.add_argument(
        "--pcap", metavar="FILE", help="write the connections to FILE as pcapng, for Wireshark"
    )
    args = parser.parse_args()
    if args.pcap:  # every channel and server of this run is captured (rpc.PcapWriter)
        rpc.PcapWriter(args.pcap).activate()
    fresh = generate(args.trace)
    if args.check:
        committed = args.output.read_text(encoding="utf-8") if args.output.exists() else ""
        diff = stale_diff(committed, fresh)
        if diff:
            sys.stdout.write(diff)
            print(f"{args.output} is stale: run python -m examples.anatomy", file=sys.stderr)
            return 1
        print(f"{args.output} is up to date")
        return 0
    args.output.write_text(fresh, encoding="utf-8")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
