"""Ladder diagrams of a trace: time flows down, client and server as columns, one arrow per frame,
with the send windows and HPACK table sizes plotted under it (``python -m rpc.trace render``).

``model`` turns events into rows and series, ``svg`` draws them (readable without JavaScript:
every arrow's details are in its ``<title>``), ``html`` wraps the drawing in one self-contained
page where a click shows a frame's bytes and header fields.
"""

from __future__ import annotations

from .html import render_html
from .model import Ladder, build_ladder, event_dicts
from .svg import render_svg
from .write import load_events, write_diagram

__all__ = [
    "Ladder",
    "build_ladder",
    "event_dicts",
    "load_events",
    "render_html",
    "render_svg",
    "write_diagram",
]
