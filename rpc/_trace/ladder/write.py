"""Reading a JSON-lines trace, and writing a diagram file (HTML or SVG, by its name or asked)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import IO, Any, Optional, Union

from transport.trace import TraceEvent

from .html import render_html
from .model import build_ladder
from .svg import render_svg, standalone

__all__ = ["TraceFileError", "load_events", "write_diagram"]


class TraceFileError(ValueError):
    """A trace file that holds no trace events (or none that can be drawn)."""


def load_events(
    source: Union[str, Path, IO[str]], *, skipped: Optional[list[int]] = None
) -> list[dict[str, Any]]:
    """The events of a JSON-lines trace (``H2RPC_TRACE=all,json``), in file order.

    Lines that are not JSON objects with ``kind``/``side`` (other output on the same standard
    error, a line cut by a crash) are skipped; their numbers go to ``skipped``. A file with no
    events at all is an error.
    """
    if isinstance(source, (str, Path)):
        with open(source, encoding="utf-8", errors="replace") as stream:
            return load_events(stream, skipped=skipped)
    events = []
    for number, line in enumerate(source, 1):
        line = line.strip()
        if not line:
            continue
        try:
            event = json.loads(line)
        except ValueError:
            event = None
        if isinstance(event, dict) and "kind" in event and "side" in event and "conn" in event:
            events.append(event)
        elif skipped is not None:
            skipped.append(number)
    if not events:
        raise TraceFileError(
            "no trace events found: expected JSON lines as H2RPC_TRACE=all,json writes them"
        )
    return events


def write_diagram(
    events: Iterable[Union[TraceEvent, Mapping[str, Any]]],
    path: Union[str, Path],
    *,
    svg: Optional[bool] = None,
    title: Optional[str] = None,
    times: bool = True,
) -> None:
    """Draw ``events`` into ``path``: SVG if ``svg`` (default: if the name ends in ``.svg``),
    else a self-contained HTML page."""
    path = Path(path)
    if svg is None:
        svg = path.suffix.lower() == ".svg"
    ladder = build_ladder(events)
    if not ladder.transfers:
        raise TraceFileError(
            "the trace has no frames to draw (trace the 'frames' kind: H2RPC_TRACE=all,json)"
        )
    heading = title if title is not None else "h2rpc trace"
    text = (
        standalone(render_svg(ladder, title=heading, times=times))
        if svg
        else render_html(ladder, title=heading, times=times)
    )
    path.write_text(text, encoding="utf-8")
