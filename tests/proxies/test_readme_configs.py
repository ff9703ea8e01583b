"""The README's Deployment section shows the proxy configs the proxy tests run: each block that
follows a ``<!-- tests/proxies/configs/NAME -->`` marker must equal that file, and each config
the tests fill in must be shown."""

from __future__ import annotations

import re
from pathlib import Path

from tests.proxies.proxy_processes import CONFIG_DIR, render

README = Path(__file__).resolve().parents[2] / "README.md"
MARKED_BLOCK = re.compile(r"<!-- (tests/proxies/configs/[\w.-]+) -->\n```\w*\n(.*?)```", re.S)
#: The configs a user deploys (the others are the tests' wrappers: pid, logs, temp paths).
SHOWN = {"nginx-grpc.conf", "haproxy-grpc.cfg"}


def readme_blocks() -> dict[str, str]:
    return {Path(path).name: body for path, body in MARKED_BLOCK.findall(README.read_text())}


def test_the_readme_shows_exactly_the_configs_the_tests_run() -> None:
    blocks = readme_blocks()
    assert set(blocks) == SHOWN
    for name, body in blocks.items():
        assert body == (CONFIG_DIR / name).read_text(), f"README's {name} differs from the file"


def test_the_shown_configs_have_only_the_placeholders_the_tests_fill_in() -> None:
    for name in SHOWN:
        text = (CONFIG_DIR / name).read_text()
        render(text, LISTEN="127.0.0.1:1", BACKEND1="127.0.0.1:2", BACKEND2="127.0.0.1:3")
