"""The Debian tools some tests run against (nginx, haproxy, tshark, tcpdump, chromium).

On a machine with only Python and pip (the README's quick start) a test that needs one of them
skips, saying which package brings it. CI must run them all: `.ci/run` installs the packages and
sets ``H2RPC_REQUIRE_TOOLS=1``, and then tests/conftest.py turns such a skip into a failure, so a
tool that went missing cannot quietly skip a suite of tests.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Optional

#: Every skip for a missing tool starts with this (tests/conftest.py looks for it).
MISSING_TOOL = "missing tool: "
REQUIRE_TOOLS_ENV = "H2RPC_REQUIRE_TOOLS"

#: Debian installs nginx and haproxy in sbin, which is not on an ordinary user's PATH.
SBIN_DIRS = ("/usr/sbin", "/sbin", "/usr/local/sbin")


def find_program(name: str) -> Optional[str]:
    """``name`` on PATH or in an sbin directory."""
    found = shutil.which(name)
    if found:
        return found
    for directory in SBIN_DIRS:
        candidate = Path(directory, name)
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def missing(program: str, package: str) -> str:
    """The skip reason for ``program`` (from Debian's ``package``) not being installed."""
    return f"{MISSING_TOOL}{program} is not installed (apt-get install {package}; .ci/run does)"


def tools_required() -> bool:
    return os.environ.get(REQUIRE_TOOLS_ENV, "") not in ("", "0")
