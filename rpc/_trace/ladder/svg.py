"""The ladder as SVG: columns, one arrow per frame, and three small plots under it.

Readable without JavaScript: each arrow is a ``<g class="frame">`` whose ``<title>`` holds the
frame decoded (header fields with their HPACK representation, messages as protobuf text), which
browsers show on hover. Nothing depends on the time of day: with ``times=False`` two runs of the
same calls give the same file.
"""

from __future__ import annotations

import math
from html import escape

from .model import SIDES, Ladder, Series, Transfer
from .text import label, title_lines

__all__ = ["PALETTE", "render_svg", "stream_colours"]

WIDTH = 900
COLUMN = {"client": 180, "server": 740}
ROW = 30
DROP = 9  # how far an arrow falls when only one end of it was traced
PLOT_HEIGHT = 96
PLOT_GAP = 44
PLOT_LEFT = 90
PLOT_RIGHT = WIDTH - 20
_LABEL_CHARS = 92

#: Stream colours (stream 0, the connection's own frames, is grey).
PALETTE = (
    "#1f77b4",
    "#d62728",
    "#2ca02c",
    "#9467bd",
    "#ff7f0e",
    "#17becf",
    "#8c564b",
    "#e377c2",
    "#bcbd22",
    "#393b79",
)
CONNECTION_COLOUR = "#555555"
SIDE_COLOUR = {"client": "#1f77b4", "server": "#d62728"}

_STYLE = """
text { font-family: 'DejaVu Sans', Verdana, Arial, sans-serif; font-size: 11px; fill: #222; }
.head { font-size: 13px; font-weight: bold; }
.small { font-size: 9px; fill: #666; }
.note { fill: #b00; }
.lifeline { stroke: #999; stroke-width: 1; }
.untraced { stroke-dasharray: 4 4; }
.frame line.hit { stroke: transparent; stroke-width: 12; }
.axis { stroke: #888; stroke-width: 1; fill: none; }
.grid { stroke: #e4e4e4; stroke-width: 1; }
"""


def stream_colours(ladder: Ladder) -> dict[tuple[int, int], str]:
    colours: dict[tuple[int, int], str] = {}
    n = 0
    for key in ladder.stream_keys():
        if key[1] == 0:
            colours[key] = CONNECTION_COLOUR
        else:
            colours[key] = PALETTE[n % len(PALETTE)]
            n += 1
    return colours


def _y(top: int, row: float) -> float:
    return top + row * ROW + ROW / 2


def _num(value: float) -> str:
    text = f"{value:.1f}"
    return text[:-2] if text.endswith(".0") else text


def _arrow_ends(transfer: Transfer, top: int) -> tuple[float, float]:
    """Where an arrow leaves its sender and reaches its receiver; with one end traced, a short
    fall across its row (the peer's time is unknown, only that it is later)."""
    if transfer.send_row is not None and transfer.recv_row is not None:
        return _y(top, transfer.send_row), _y(top, transfer.recv_row)
    row = transfer.send_row if transfer.send_row is not None else transfer.recv_row
    assert row is not None
    middle = _y(top, row)
    return middle - DROP / 2, middle + DROP / 2


def render_svg(ladder: Ladder, *, title: str = "", times: bool = True) -> str:
    """The whole drawing as one ``<svg>`` element (standalone: prepend an XML declaration)."""
    colours = stream_colours(ladder)
    out: list[str] = []
    legend = _legend(ladder, colours)
    legend_lines = (len(legend) + 3) // 4
    top = 58 + 16 * legend_lines + (18 if title else 0)
    rows_end = _y(top, ladder.rows) - ROW / 2 + 8
    plots_top = int(rows_end + 30)
    height = plots_top + 3 * (PLOT_HEIGHT + PLOT_GAP) + 10
    out.append(
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
        f'viewBox="0 0 {WIDTH} {height}" class="ladder" data-frames="{len(ladder.transfers)}">'
    )
    out.append(f"<style>{_STYLE}</style>")
    out.append(f'<rect width="{WIDTH}" height="{height}" fill="#ffffff"/>')
    y = 8
    if title:
        out.append(f'<text x="10" y="{y + 12}" class="head">{escape(title)}</text>')
        y += 18
    for side in SIDES:
        x = COLUMN[side]
        traced = side in ladder.traced
        name = side if traced else f"{side} (not traced)"
        out.append(
            f'<rect x="{x - 85}" y="{y}" width="170" height="24" rx="4" '
            f'fill="{"#eef3fa" if traced else "#f4f4f4"}" stroke="#888"/>'
        )
        out.append(f'<text x="{x}" y="{y + 16}" text-anchor="middle" class="head">{name}</text>')
        dash = "" if traced else " untraced"
        out.append(
            f'<line x1="{x}" y1="{y + 24}" x2="{x}" y2="{_num(rows_end)}" class="lifeline{dash}"/>'
        )
    for i, (key, text) in enumerate(legend):
        lx = 10 + (i % 4) * 222
        ly = y + 44 + (i // 4) * 16
        out.append(
            f'<g class="legend" data-stream="{key[0]}-{key[1]}">'
            f'<rect x="{lx}" y="{ly - 9}" width="10" height="10" fill="{colours[key]}"/>'
            f'<text x="{lx + 14}" y="{ly}">{escape(text)}</text></g>'
        )
    if times:
        out.append(
            f'<text x="{COLUMN["client"] - 8}" y="{top - 4}" text-anchor="end" class="small">'
            "ms since its connection opened</text>"
        )
    for instant in ladder.instants:
        yy = _y(top, instant.row)
        out.append(f'<text x="6" y="{_num(yy + 3)}" class="small">{instant.row}</text>')
        if times:
            x = COLUMN[instant.side]
            anchor = "end" if instant.side == "client" else "start"
            dx = -8 if instant.side == "client" else 8
            out.append(
                f'<text x="{x + dx}" y="{_num(yy + 3)}" text-anchor="{anchor}" class="small">'
                f"{instant.t * 1000:.3f}</text>"
            )
        if instant.note is not None:
            x = COLUMN[instant.side]
            anchor = "start" if instant.side == "client" else "end"
            dx = 8 if instant.side == "client" else -8
            error = escape(str(instant.note.get("error", "")))
            out.append(
                f'<text x="{x + dx}" y="{_num(yy + 3)}" text-anchor="{anchor}" class="note">'
                f"<title>{error}</title>!! {escape(_short(error, 80))}</text>"
            )
    for transfer in ladder.transfers:
        out.append(_arrow(transfer, ladder, colours, top, times))
    out += _plots(ladder, colours, plots_top)
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _legend(
    ladder: Ladder, colours: dict[tuple[int, int], str]
) -> list[tuple[tuple[int, int], str]]:
    out = []
    for key in colours:
        link, stream = key
        where = f"c{link} " if ladder.links > 1 else ""
        if stream == 0:
            text = f"{where}stream 0 (the connection)"
        else:
            path = ladder.paths.get(key, "")
            text = f"{where}stream {stream} {path.rsplit('/', 1)[-1]}".rstrip()
        out.append((key, _short(text, 36)))
    return out


def _arrow(
    transfer: Transfer,
    ladder: Ladder,
    colours: dict[tuple[int, int], str],
    top: int,
    times: bool,
) -> str:
    colour = colours[(transfer.link, transfer.stream)]
    x1 = COLUMN[transfer.sender]
    x2 = COLUMN[transfer.receiver]
    ys, yr = _arrow_ends(transfer, top)
    direction = 1 if x2 > x1 else -1
    tip_x = x2 - direction * 2
    # the head: a small triangle along the line's direction
    dx, dy = tip_x - x1, yr - ys
    length = (dx * dx + dy * dy) ** 0.5 or 1.0
    ux, uy = dx / length, dy / length
    bx, by = tip_x - ux * 9, yr - uy * 9
    head = (
        f"{_num(tip_x)},{_num(yr)} {_num(bx - uy * 4)},{_num(by + ux * 4)} "
        f"{_num(bx + uy * 4)},{_num(by - ux * 4)}"
    )
    text_x = x1 + direction * 10
    anchor = "start" if direction > 0 else "end"
    title = escape("\n".join(title_lines(transfer, ladder, times)))
    dashed = ' stroke-dasharray="5 3"' if transfer.kind == "preface" else ""
    return (
        f'<g class="frame" data-i="{transfer.index}" '
        f'data-stream="{transfer.link}-{transfer.stream}" data-type="{transfer.type}">'
        f"<title>{title}</title>"
        f'<line class="hit" x1="{x1}" y1="{_num(ys)}" x2="{_num(tip_x)}" y2="{_num(yr)}"/>'
        f'<line x1="{x1}" y1="{_num(ys)}" x2="{_num(bx)}" y2="{_num(by)}" stroke="{colour}" '
        f'stroke-width="1.6"{dashed}/>'
        f'<polygon points="{head}" fill="{colour}"/>'
        f'<text x="{text_x}" y="{_num(ys - 4)}" text-anchor="{anchor}" fill="{colour}">'
        f"{escape(label(transfer, ladder, _LABEL_CHARS))}</text></g>"
    )


# ====================================================================== plots


def _plots(ladder: Ladder, colours: dict[tuple[int, int], str], top: int) -> list[str]:
    out: list[str] = []
    panels: list[tuple[str, list[tuple[Series, str, str]]]] = []
    for side in SIDES:
        lines = []
        for series in ladder.windows:
            if series.side != side:
                continue
            if series.stream == 0:
                lines.append((series, CONNECTION_COLOUR, ""))
            else:
                lines.append((series, colours.get((series.link, series.stream), "#000"), ""))
        panels.append((f"{side}'s send windows (bytes it may still send, log scale)", lines))
    hpack = [(s, SIDE_COLOUR[s.side], "") for s in ladder.hpack]
    hpack += [(s, SIDE_COLOUR[s.side], "4 3") for s in ladder.hpack_max]
    panels.append(("HPACK dynamic table size (bytes, log scale; dashed: its limit)", hpack))
    for number, (heading, lines) in enumerate(panels):
        y0 = top + number * (PLOT_HEIGHT + PLOT_GAP)
        out.append(f'<g class="plot" data-plot="{number}">')
        out.append(f'<text x="10" y="{y0}" class="head">{escape(heading)}</text>')
        out += _panel(ladder, lines, y0 + 10)
        out.append("</g>")
    return out


def _panel(ladder: Ladder, lines: list[tuple[Series, str, str]], y0: int) -> list[str]:
    out: list[str] = []
    left, right = PLOT_LEFT, PLOT_RIGHT
    bottom = y0 + PLOT_HEIGHT - 22
    rows = max(ladder.rows, 1)

    def x_of(row: float) -> float:
        return left + (right - left) * (row + 0.5) / rows

    top_value = max((p.value for s, _, _ in lines for p in s.points), default=0)
    # Log scale: a window of 16 MiB and one of 64 KiB, or a table of 4 KiB and one entry's 50
    # bytes, are all worth seeing on one plot.
    top_log = math.log10(1 + max(top_value, 9))

    def y_of(value: int) -> float:
        return bottom - (bottom - y0) * math.log10(1 + max(value, 0)) / top_log

    out.append(f'<line x1="{left}" y1="{bottom}" x2="{right}" y2="{bottom}" class="axis"/>')
    out.append(f'<line x1="{left}" y1="{y0}" x2="{left}" y2="{bottom}" class="axis"/>')
    ticks = [10**k for k in (2, 4, 6) if 10**k * 20 < top_value] + [top_value]
    for tick in ticks:
        ty = _num(y_of(tick))
        out.append(f'<line x1="{left}" y1="{ty}" x2="{right}" y2="{ty}" class="grid"/>')
        out.append(
            f'<text x="{left - 4}" y="{_num(y_of(tick) + 3)}" text-anchor="end" class="small">'
            f"{_size(tick)}</text>"
        )
    out.append(f'<text x="{left - 4}" y="{bottom}" text-anchor="end" class="small">0</text>')
    step = _tick_step(rows)
    for row in range(0, rows, step):
        x = x_of(row)
        out.append(
            f'<text x="{_num(x)}" y="{bottom + 11}" text-anchor="middle" class="small">{row}</text>'
        )
    out.append(
        f'<text x="{right}" y="{bottom + 21}" text-anchor="end" class="small">'
        "row of the diagram (time →)</text>"
    )
    if not any(s.points for s, _, _ in lines):
        out.append(
            f'<text x="{left + 10}" y="{(y0 + bottom) // 2}" class="small">'
            "(nothing in the trace to plot)</text>"
        )
        return out
    legend_x = left + 6
    for series, colour, dash in lines:
        if not series.points:
            continue
        end = series.end_row if series.end_row is not None else ladder.rows - 1
        end = max(end, series.points[-1].row)
        first = series.points[0]
        path = [f"M{_num(x_of(first.row))},{_num(y_of(first.value))}"]
        for point in series.points[1:]:
            path.append(f"H{_num(x_of(point.row))}V{_num(y_of(point.value))}")
        path.append(f"H{_num(x_of(end))}")
        width = "2" if series.stream == 0 else "1.4"
        dashing = f' stroke-dasharray="{dash}"' if dash else ""
        values = ", ".join(f"{p.value:,} at row {p.row}" for p in series.points)
        tip = escape(f"{series.name}: {values}")
        out.append(
            f'<path d="{"".join(path)}" fill="none" stroke="{colour}" stroke-width="{width}"'
            f"{dashing}><title>{tip}</title></path>"
        )
        if not dash and legend_x < right - 60:
            name = escape(_short(series.name, 30))
            out.append(
                f'<text x="{legend_x}" y="{bottom + 32}" fill="{colour}" class="small" '
                f'style="fill:{colour}">■ {name}</text>'
            )
            legend_x += 8 + 6 * min(len(series.name), 30)
    return out


def _size(value: int) -> str:
    for unit, name in ((1 << 20, "Mi"), (1 << 10, "Ki")):
        if value >= unit and value % unit == 0:
            return f"{value // unit} {name}"
    return f"{value:,}"


def _tick_step(rows: int) -> int:
    for step in (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000):
        if rows / step <= 12:
            return step
    return max(rows // 10, 1)


def standalone(svg: str) -> str:
    """An SVG file's text: the XML declaration, then the drawing."""
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + svg
