"""``python -m rpc.trace render TRACE.jsonl [-o OUT] [--svg]``: a ladder diagram of a trace.

TRACE.jsonl is what ``H2RPC_TRACE=all,json`` writes (to standard error, or appended to
``H2RPC_TRACE_FILE``); ``-`` reads standard input. The output is one self-contained HTML page
(default ``TRACE.html``) or, with ``--svg`` or an ``-o`` ending in ``.svg``, an SVG drawing that
needs no JavaScript. Exit status 0, or 1 with a message for a file that is not a trace.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Optional

from .ladder.write import TraceFileError, load_events, write_diagram

__all__ = ["main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m rpc.trace", description="Study tools for h2rpc wire traces."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    render = commands.add_parser(
        "render",
        help="draw a trace as a ladder diagram (HTML page or SVG)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    render.add_argument("trace", metavar="TRACE.jsonl", help="a JSON-lines trace; - for stdin")
    render.add_argument("-o", "--output", metavar="FILE", help="where to write the diagram")
    render.add_argument("--svg", action="store_true", help="write SVG instead of HTML")
    render.add_argument("--title", help="the diagram's heading (default: the trace's name)")
    render.add_argument(
        "--no-times",
        action="store_true",
        help="leave the timestamps out (the same calls then give the same file)",
    )
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    source = args.trace
    skipped: list[int] = []
    try:
        events = load_events(sys.stdin if source == "-" else source, skipped=skipped)
        svg = args.svg or (args.output or "").lower().endswith(".svg")
        if args.output:
            output = Path(args.output)
        elif source == "-":
            output = Path("trace.svg" if svg else "trace.html")
        else:
            output = Path(source).with_suffix(".svg" if svg else ".html")
        title = (
            args.title
            if args.title is not None
            else ("h2rpc trace" if source == "-" else Path(source).name)
        )
        write_diagram(events, output, svg=svg, title=title, times=not args.no_times)
    except (OSError, TraceFileError) as exc:
        print(f"python -m rpc.trace: {exc}", file=sys.stderr)
        return 1
    except (KeyError, TypeError, ValueError) as exc:
        print(
            f"python -m rpc.trace: {source}: not a trace this renderer can read: {exc!r}",
            file=sys.stderr,
        )
        return 1
    if skipped:
        lines = ", ".join(str(n) for n in skipped[:10]) + (" ..." if len(skipped) > 10 else "")
        print(f"skipped {len(skipped)} line(s) that are not trace events: {lines}", file=sys.stderr)
    print(f"wrote {output}")
    return 0
