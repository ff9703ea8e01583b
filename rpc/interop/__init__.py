"""gRPC interop tests on h2rpc: the official test service, a server and a client.

``python -m rpc.interop.server --port N`` serves ``grpc.testing.TestService`` as the gRPC project's
interop test descriptions define it, and ``python -m rpc.interop.client --server_host H
--server_port P --test_case NAME`` runs their client test cases against any interop server (ours,
grpcio's, grpc-go's, ...). Both take the reference implementations' flags, so they drop into the
gRPC project's interop harness as well.

The ``grpc.testing`` messages and services are in :mod:`rpc.interop.proto` (``empty_pb2``,
``messages_pb2``, ``test_pb2``). Importing this package loads nothing else.
"""

from __future__ import annotations
