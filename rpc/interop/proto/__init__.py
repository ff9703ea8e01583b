"""The ``grpc.testing`` protos of the interop tests and their generated modules.

``empty_pb2``, ``messages_pb2`` and ``test_pb2`` are generated from the ``.proto`` files next to
them by ``scripts/gen_protos.py`` (grpcio-tools 1.64.1, so they load on protobuf >= 5.26.1); do not
edit them by hand. The package, message, field and service names are the gRPC project's, so the
wire format is the official interop tests' own.
"""

from __future__ import annotations
