"""``protoc-gen-h2rpc``: a protoc plugin that writes typed h2rpc stubs and servicers.

For each ``x.proto`` it writes ``x_h2rpc.py``, which imports only ``rpc``, the standard library's
``typing`` and ``collections.abc``, and the ``_pb2`` modules of the messages it uses. Per service
``S``:

- ``SStub(channel: rpc.Channel)`` and ``SBlockingStub(channel: rpc.sync.Channel)``: one typed
  multi-callable attribute per RPC (``rpc.UnaryUnaryMultiCallable[Request, Response]``, ...);
- ``SServicer`` (``async def`` methods) and ``SBlockingServicer`` (``def`` methods): base classes
  whose methods answer UNIMPLEMENTED until a subclass overrides them;
- ``add_SServicer_to_server(servicer, server)``: serves a servicer on ``rpc.Server`` or
  ``rpc.sync.Server``.

Run it as ``python -m grpc_tools.protoc -I. --python_out=. --pyi_out=. --h2rpc_out=. x.proto``
(the ``protoc-gen-h2rpc`` console script on ``PATH``), or with any protoc:
``protoc --plugin=protoc-gen-h2rpc=$(which protoc-gen-h2rpc) --h2rpc_out=. x.proto``. Option
``--h2rpc_opt=relative_imports`` imports the ``_pb2`` modules of the files compiled in the same
run relatively (``from . import x_pb2``), for generated code that lives inside a package.

The plugin needs only protobuf; it imports nothing else of h2rpc.
"""

from __future__ import annotations

from .generator import Options, generate

__all__ = ["Options", "generate"]
