"""The package version and the ``user-agent`` it announces (gRPC convention: name/version)."""

from __future__ import annotations

__version__ = "0.1.0"
USER_AGENT = f"h2rpc-python/{__version__}"
