"""``--trace-html FILE`` for command lines: trace the wire, and draw it when the command ends.

``tracing(spec, html)`` is what the examples and ``h2rpc`` do with their ``--trace [KINDS]`` and
``--trace-html FILE`` options: the tracer to give channels and servers (None when neither was
asked for, so ``H2RPC_TRACE`` still applies). With a diagram file, every kind is recorded (a
diagram needs the frames even when ``--trace messages`` asks to print only messages) and the
``--trace`` lines are printed as asked; when the block ends, however it ends, the file is written.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Callable, Optional

from transport.trace import TraceEvent

from .format import format_json, format_text
from .ladder.write import TraceFileError, write_diagram
from .tracer import Tracer, parse_spec

log = logging.getLogger(__name__)

__all__ = ["tracing"]

#: The event kinds each trace kind covers (connection and error events are always shown).
_EVENT_KINDS = {"frames": ("frame", "preface"), "headers": ("headers",), "messages": ("message",)}

#: What ``--trace-html`` says in ``--help``.
HELP = "study mode: draw the wire as a ladder diagram in FILE (HTML; .svg for SVG) at the end"


def _printing(spec: str) -> tuple[set[str], Callable[[TraceEvent], str]]:
    """The event kinds a spec prints, and in which form."""
    kinds, format = parse_spec(spec)
    wanted = {"connection", "error"}
    for kind in kinds:
        wanted.update(_EVENT_KINDS[kind])
    return wanted, format_json if format == "json" else format_text


@contextmanager
def tracing(
    spec: Optional[str], html: Optional[str], stream: Optional[IO[str]] = None
) -> Iterator[Optional[Tracer]]:
    """The tracer for ``--trace spec`` and ``--trace-html html`` (either may be None); the
    ``--trace`` lines go to ``stream`` (default: standard error at the time)."""
    if html is None:
        yield Tracer.from_spec(spec, stream) if spec else None
        return
    tracer = Tracer()
    if spec:
        wanted, formatter = _printing(spec)

        def show(event: TraceEvent) -> None:
            if event.kind in wanted:
                target = sys.stderr if stream is None else stream
                target.write(formatter(event) + "\n")
                target.flush()

        tracer.add_sink(show)
    try:
        yield tracer
    finally:
        tracer.stop()
        try:
            write_diagram(tracer.events, html)
        except (OSError, TraceFileError) as exc:
            log.warning("no ladder diagram written to %s: %s", html, exc)
