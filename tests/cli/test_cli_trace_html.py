"""``h2rpc call --trace-html FILE``: the call's connection drawn as a ladder diagram."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.test_cli import _h2rpc_server, h2rpc, json_lines


@pytest.fixture(scope="module")
def target() -> Iterator[str]:
    running, address = _h2rpc_server()
    try:
        yield address
    finally:
        running.stop(None)


def test_call_with_trace_html_writes_the_calls_diagram(target: str, tmp_path: Path) -> None:
    page = tmp_path / "call.html"
    result = h2rpc(
        "call", target, "clitest.Kinds/Echo", "-d", '{"name": "drawn"}', "--trace-html", str(page)
    )
    assert result.returncode == 0, result.stderr
    assert json_lines(result.stdout) == [{"name": "drawn"}]
    assert result.stderr == ""  # --trace-html alone prints no trace
    html = page.read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>")
    assert "POST /clitest.Kinds/Echo" in html  # the request's HEADERS arrow
    assert "clitest.Item { name: &quot;drawn&quot; }" in html  # its DATA arrow's hover text
    assert "ServerReflection" not in html  # only the call's connection, as with --trace


def test_trace_kinds_still_choose_what_is_printed_while_the_diagram_has_every_frame(
    target: str, tmp_path: Path
) -> None:
    drawing = tmp_path / "call.svg"
    result = h2rpc(
        "call",
        target,
        "clitest.Kinds/Echo",
        "-d",
        '{"name": "both"}',
        "--trace",
        "messages",
        "--trace-html",
        str(drawing),
    )
    assert result.returncode == 0, result.stderr
    assert "request message #1 of /clitest.Kinds/Echo" in result.stderr
    assert "HEADERS" not in result.stderr and "SETTINGS" not in result.stderr
    svg = drawing.read_text(encoding="utf-8")
    assert svg.startswith("<?xml")
    types = re.findall(r'data-type="([A-Z_]+)"', svg)
    assert {"PREFACE", "SETTINGS", "HEADERS", "DATA"} <= set(types)


def test_a_diagram_file_that_cannot_be_written_is_a_warning_not_a_failed_call(
    target: str, tmp_path: Path
) -> None:
    result = h2rpc(
        "call",
        target,
        "clitest.Kinds/Echo",
        "-d",
        "{}",
        "--trace-html",
        str(tmp_path / "no" / "such" / "dir.html"),
    )
    assert result.returncode == 0
    assert "no ladder diagram written to" in result.stderr
