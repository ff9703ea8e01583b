"""Standard gRPC services for h2rpc servers, each enabled with one call.

* ``rpc.services.health``: ``grpc.health.v1.Health`` (``enable_health(server)``);
* ``rpc.services.reflection``: ``grpc.reflection.v1`` and ``v1alpha`` ``ServerReflection``
  (``enable_reflection(server)``), what grpcurl and other tools discover services with.

They sit on top of ``rpc``: they use its public API, and work on ``rpc.Server`` and
``rpc.sync.Server`` alike.
"""

from __future__ import annotations
