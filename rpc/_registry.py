"""The service registry: ``/package.Service/Method`` -> handler, one dict lookup per call."""

from __future__ import annotations

from typing import Optional

from ._handlers import GenericRpcHandler, HandlerCallDetails, MethodHandler, ServiceHandlers


class Registry:
    """Exact paths first (O(1)); then generic handlers that decide per call, in the order added."""

    def __init__(self) -> None:
        self._methods: dict[str, MethodHandler] = {}
        self._generic: list[GenericRpcHandler] = []
        self._services: list[str] = []

    def add(self, handler: GenericRpcHandler) -> None:
        if isinstance(handler, ServiceHandlers):
            for path in handler.method_handlers:
                if path in self._methods:
                    raise ValueError(f"method {path} is already registered")
            self._methods.update(handler.method_handlers)
            self._services.append(handler.service_name)
        else:
            self._generic.append(handler)

    def add_method(self, path: str, handler: MethodHandler) -> None:
        if path in self._methods:
            raise ValueError(f"method {path} is already registered")
        self._methods[path] = handler

    @property
    def service_names(self) -> list[str]:
        return list(self._services)

    def lookup(self, path: str, metadata: object = None) -> Optional[MethodHandler]:
        handler = self._methods.get(path)
        if handler is not None or not self._generic:
            return handler
        details = HandlerCallDetails(method=path, invocation_metadata=metadata)
        for generic in self._generic:
            handler = generic.service(details)
            if handler is not None:
                return handler
        return None
