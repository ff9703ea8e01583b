"""The anatomy of gRPC calls: ``python -m examples.anatomy [--check] [--output FILE] [--trace]``.

Runs a unary call, each streaming kind, a deadline expiry, a cancellation, a compressed call, an
error answered Trailers-Only and a graceful GOAWAY, with the client's connection traced, and
writes the annotated walkthrough (``examples/anatomy/WALKTHROUGH.md`` by default) from the real
trace, with each scenario's ladder diagram beside it (``diagrams/NN-scenario.svg``). ``--check``
writes nothing: it fails (exit status 1) if the committed walkthrough or a diagram differs from a
fresh one. ``--trace`` also prints the live trace to standard error; ``--trace-html FILE`` draws
the whole run as one ladder diagram.
"""

from __future__ import annotations

import argparse
import asyncio
import difflib
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import rpc
from examples.anatomy.scenarios import run_scenarios
from examples.anatomy.walkthrough import DIAGRAMS, diagrams, normalize, normalize_svg, render

WALKTHROUGH = Path(__file__).resolve().parent / "WALKTHROUGH.md"


@dataclass
class Walkthrough:
    """The walkthrough's markdown, and its diagrams (file name -> SVG) for ``diagrams/``."""

    markdown: str
    diagrams: dict[str, str]


def generate(live_trace: bool = False, trace_html: Optional[str] = None) -> Walkthrough:
    """Run the scenarios and return the walkthrough's markdown and diagrams."""
    tracer = rpc.Tracer()
    if live_trace:
        tracer.add_output(sys.stderr)
    scenarios = rpc.run(asyncio.wait_for(run_scenarios(tracer), 60))
    if trace_html:
        tracer.write_diagram(trace_html, title="python -m examples.anatomy")
    return Walkthrough(render(scenarios), diagrams(scenarios))


def _diff(committed: str, fresh: str, name: str) -> str:
    return "".join(
        difflib.unified_diff(
            committed.splitlines(keepends=True),
            fresh.splitlines(keepends=True),
            f"committed {name}",
            "regenerated",
        )
    )


def stale_diff(committed: str, fresh: Walkthrough, directory: Optional[Path] = None) -> str:
    """A unified diff of what is out of date ("" if nothing is), ignoring what varies: of the
    markdown (``committed``) and of each diagram in ``directory`` (default: beside it)."""
    folder = (directory or WALKTHROUGH.parent) / DIAGRAMS
    out = _diff(normalize(committed), normalize(fresh.markdown), "WALKTHROUGH.md")
    for name, svg in sorted(fresh.diagrams.items()):
        path = folder / name
        old = path.read_text(encoding="utf-8") if path.exists() else ""
        out += _diff(normalize_svg(old), normalize_svg(svg), f"{DIAGRAMS}/{name}")
    stray = sorted(p.name for p in folder.glob("*.svg") if p.name not in fresh.diagrams)
    for name in stray:
        out += f"{DIAGRAMS}/{name}: no scenario draws it any more (delete it)\n"
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--output", type=Path, default=WALKTHROUGH)
    parser.add_argument("--check", action="store_true", help="fail if the file is stale")
    parser.add_argument(
        "--trace", action="store_true", help="also print the live trace to standard error"
    )
    parser.add_argument(
        "--trace-html", metavar="FILE", help="also draw the whole run as a ladder diagram"
    )
    parser.add_argument(
        "--pcap", metavar="FILE", help="write the connections to FILE as pcapng, for Wireshark"
    )
    args = parser.parse_args()
    if args.pcap:  # every channel and server of this run is captured (rpc.PcapWriter)
        rpc.PcapWriter(args.pcap).activate()
    fresh = generate(args.trace, args.trace_html)
    if args.check:
        committed = args.output.read_text(encoding="utf-8") if args.output.exists() else ""
        diff = stale_diff(committed, fresh, args.output.parent)
        if diff:
            sys.stdout.write(diff)
            print(f"{args.output} is stale: run python -m examples.anatomy", file=sys.stderr)
            return 1
        print(f"{args.output} is up to date")
        return 0
    args.output.write_text(fresh.markdown, encoding="utf-8")
    folder = args.output.parent / DIAGRAMS
    folder.mkdir(exist_ok=True)
    for stale in folder.glob("*.svg"):
        if stale.name not in fresh.diagrams:
            stale.unlink()
    for name, svg in fresh.diagrams.items():
        (folder / name).write_text(svg, encoding="utf-8")
    print(f"wrote {args.output} and {len(fresh.diagrams)} diagrams in {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
