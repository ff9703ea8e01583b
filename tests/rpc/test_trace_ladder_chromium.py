"""The HTML ladder diagram in a real browser: Debian's headless Chromium opens the page.

After the page's script has run, ``--dump-dom`` shows what it noted on ``<body>``: ready, how
many arrows have a layout box (drawn), and no script error; Chromium's own console log (on
standard error with ``--enable-logging=stderr``) has no console message either. A screenshot
shows every stream's colour actually painted, and a scripted click fills the details pane.
Skipped only where Chromium is not installed (CI installs it: .ci/run).
"""

from __future__ import annotations

import html
import os
import re
import signal
import struct
import subprocess
import zlib
from pathlib import Path

import pytest

import rpc
from rpc._trace.ladder import build_ladder, write_diagram
from rpc._trace.ladder.svg import stream_colours
from tests.debian_tools import find_program, missing
from tests.rpc.ladder_traces import traced_calls

CHROMIUM = find_program("chromium") or find_program("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason=missing("chromium", "chromium"))

WIDTH = 1400


def _chromium(tmp_path: Path, *args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    """Run headless Chromium once, in its own profile and process group, killed on timeout."""
    assert CHROMIUM is not None
    command = [
        CHROMIUM,
        "--headless",
        "--disable-gpu",
        "--no-sandbox",
        "--no-first-run",
        "--hide-scrollbars",
        "--disable-extensions",
        "--disable-background-networking",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--enable-logging=stderr",
        "--v=0",
        *args,
    ]
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired as expired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        raise AssertionError(
            f"chromium did not finish in {timeout} s: {' '.join(command)}"
        ) from expired
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


def _png_pixels(path: Path) -> tuple[int, int, list[bytes]]:
    """Width, height and rows of RGB(A) bytes of an 8-bit non-interlaced PNG (Chromium's)."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos = 8
    idat = b""
    width = height = 0
    channels = 0
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        chunk = data[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", chunk)
            assert depth == 8 and interlace == 0
            channels = {2: 3, 6: 4}[colour]
        elif kind == b"IDAT":
            idat += chunk
    raw = zlib.decompress(idat)
    stride = width * channels
    rows: list[bytes] = []
    previous = bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        kind = raw[start]
        line = bytearray(raw[start + 1 : start + 1 + stride])
        for i in range(stride):
            a = line[i - channels] if i >= channels else 0
            b = previous[i]
            c = previous[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + a) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + b) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (a + b) // 2) & 0xFF
            elif kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                line[i] = (line[i] + pred) & 0xFF
        rows.append(bytes(line) if channels == 3 else bytes(_rgb(line)))
        previous = line
    return width, height, rows


def _rgb(line: bytearray) -> bytearray:
    out = bytearray()
    for i in range(0, len(line), 4):
        out += line[i : i + 3]
    return out


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[rpc.TraceEvent]]:
    events = traced_calls(("client", "server"))
    path = tmp_path_factory.mktemp("ladder") / "call.html"
    write_diagram(events, path, title="four calls")
    return path, events


def test_the_page_renders_every_arrow_with_no_script_or_console_error(tmp_path, page):
    path, events = page
    expected = len([e for e in events if e.side == "client" and e.kind in ("frame", "preface")])
    done = _chromium(tmp_path, "--virtual-time-budget=5000", "--dump-dom", path.resolve().as_uri())
    assert done.returncode == 0, done.stderr[-2000:]
    body = re.search(r"<body[^>]*>", done.stdout)
    assert body is not None, done.stdout[:2000]
    attributes = dict(re.findall(r'([\w-]+)="([^"]*)"', body.group(0)))
    assert "data-errors" not in attributes, attributes.get("data-errors")
    assert attributes.get("data-ready") == "1", "the page's script did not run to its end"
    assert attributes.get("data-arrows") == str(expected)
    console = [line for line in done.stderr.splitlines() if "CONSOLE" in line]
    assert not console, console


def test_a_screenshot_shows_every_streams_colour(tmp_path, page):
    path, events = page
    shot = tmp_path / "shot.png"
    ladder = build_ladder(events)
    height = 60 * 30 + 700  # the rows, the plots under them
    done = _chromium(
        tmp_path,
        f"--screenshot={shot}",
        f"--window-size={WIDTH},{height}",
        "--virtual-time-budget=5000",
        path.resolve().as_uri(),
    )
    assert done.returncode == 0 and shot.exists(), done.stderr[-2000:]
    width, _, rows = _png_pixels(shot)
    assert width == WIDTH
    painted: dict[bytes, int] = {}
    for row in rows:
        for x in range(0, len(row), 3):
            pixel = row[x : x + 3]
            painted[pixel] = painted.get(pixel, 0) + 1
    colours = set(stream_colours(ladder).values())
    assert len(colours) == 5  # the connection and four calls
    for colour in colours:
        rgb = bytes.fromhex(colour[1:])
        # arrowheads and legend squares are filled with the exact colour
        assert painted.get(rgb, 0) >= 50, f"{colour} is not on the screenshot"


def test_clicking_an_arrow_shows_its_frame_decoded_with_its_bytes(tmp_path, page):
    path, events = page
    ladder = build_ladder(events)
    chosen = next(t for t in ladder.transfers if t.type == "DATA" and t.messages)
    # What a user's click does, scripted: the page's own handler fills the details pane.
    clicked = tmp_path / "clicked.html"
    probe = (
        "<script>var a = document.querySelectorAll('g.frame');"
        f"a[{chosen.index}].dispatchEvent(new MouseEvent('click'));"
        "document.body.setAttribute('data-pane', document.getElementById('pane').innerText);"
        "</script></body>"
    )
    clicked.write_text(path.read_text(encoding="utf-8").replace("</body>", probe), "utf-8")
    done = _chromium(
        tmp_path, "--virtual-time-budget=5000", "--dump-dom", clicked.resolve().as_uri()
    )
    assert done.returncode == 0, done.stderr[-2000:]
    body = re.search(r"<body[^>]*>", done.stdout, re.DOTALL)
    assert body is not None
    pane = html.unescape(dict(re.findall(r'([\w-]+)="([^"]*)"', body.group(0)))["data-pane"])
    frame = chosen.frame
    assert pane.startswith(f"#{chosen.index + 1} {chosen.sender} → {chosen.receiver}: DATA")
    assert frame["header"] in pane  # the frame's 9-byte header, in hex
    message = chosen.messages[0]
    assert message["prefix"] in pane and message["text"] in pane
