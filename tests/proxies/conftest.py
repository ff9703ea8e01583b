"""nginx or HAProxy (``proxy`` fixture, once per proxy for a module) in front of two h2rpc
servers (``backends``: tests/proxies/backends.py)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from tests.debian_tools import find_program, missing
from tests.proxies.proxy_processes import PROXIES, ProxyProcess

if TYPE_CHECKING:
    from tests.proxies.backends import Backends


@pytest.fixture(scope="module")
def backends() -> Iterator[Backends]:
    from tests.proxies.backends import Backends  # imports the test protos, compiled by now

    servers = Backends()
    servers.start()
    try:
        yield servers
    finally:
        servers.stop()


@pytest.fixture(scope="module", params=sorted(PROXIES))
def proxy(request: pytest.FixtureRequest, backends: Backends) -> Iterator[ProxyProcess]:
    kind = request.param
    if find_program(kind) is None:
        pytest.skip(missing(kind, kind))
    process = PROXIES[kind](backends.addresses)
    with process:
        yield process
