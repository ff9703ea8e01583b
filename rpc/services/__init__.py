"""Standard gRPC services for h2rpc servers, each enabled with one call.

* ``rpc.services.health``: ``grpc.health.v1.Health`` (``health.enable_health(server)``);
* ``rpc.services.reflection``: ``grpc.reflection.v1`` and ``v1alpha`` ``ServerReflection``
  (``reflection.enable_reflection(server)``), what grpcurl and other tools discover services with.

``enable(server)`` turns both on; ``add_arguments(parser)`` gives a command line the
``--no-health`` and ``--no-reflection`` flags that turn them off (``rpc.interop.server`` and the
examples' servers have them). They sit on top of ``rpc``: they use its public API, and work on
``rpc.Server`` and ``rpc.sync.Server`` alike.
"""

from __future__ import annotations

import argparse
from typing import Any, Optional

from . import health, reflection
from . import health as _health  # (the keyword arguments of enable() hide these names)
from . import reflection as _reflection
from .health import HealthServicer

__all__ = ["add_arguments", "enable", "enable_from_arguments", "health", "reflection"]


def enable(
    server: Any, *, health: bool = True, reflection: bool = True
) -> Optional[HealthServicer]:
    """Health checking and reflection on ``server`` (``rpc.Server`` or ``rpc.sync.Server``), each
    unless turned off; the health servicer (None without health), whose ``set()`` the
    application calls."""
    servicer = _health.enable_health(server) if health else None
    if reflection:
        _reflection.enable_reflection(server)
    return servicer


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``--no-health`` and ``--no-reflection`` (``args.no_health``, ``args.no_reflection``)."""
    parser.add_argument(
        "--no-health",
        action="store_true",
        help="do not serve grpc.health.v1.Health (served by default)",
    )
    parser.add_argument(
        "--no-reflection",
        action="store_true",
        help="do not serve server reflection, grpc.reflection.v1[alpha] (served by default)",
    )


def enable_from_arguments(server: Any, args: argparse.Namespace) -> Optional[HealthServicer]:
    """``enable(server)`` as the flags of ``add_arguments`` say."""
    return enable(server, health=not args.no_health, reflection=not args.no_reflection)
