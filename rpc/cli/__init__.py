"""``h2rpc``, the command line (``python -m rpc`` too): ``list``, ``describe``, ``call`` and
``health`` against any gRPC server, with schemas from server reflection or from ``.proto`` and
``FileDescriptorSet`` files. It sits on top of ``rpc``: the blocking API (``rpc.sync``), the
reflection and health protos of ``rpc.services``, and study-mode tracing (``--trace``)."""

from __future__ import annotations

from .main import main

__all__ = ["main"]
