"""The service registry: ``/package.Service/Method`` -> handler, one dict lookup per call."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Optional

from google.protobuf.descriptor import ServiceDescriptor

from .._handlers import (
    GenericRpcHandler,
    HandlerCallDetails,
    MethodHandler,
    ServiceHandlers,
    as_method_handler,
)

#: Paths whose generic-handler result is kept converted (``Registry._converted``); past this many
#: the cache starts over, so that a generic handler answering any path cannot grow it forever.
CONVERTED_CACHE_SIZE = 256


class Registry:
    """Exact paths first (O(1)); then generic handlers that decide per call, in the order added."""

    def __init__(self) -> None:
        self._methods: dict[str, MethodHandler] = {}
        self._registered: set[str] = set()  # paths from add_registered (they take precedence)
        self._generic: list[GenericRpcHandler] = []
        self._services: list[str] = []
        self._descriptors: dict[str, ServiceDescriptor] = {}  # the services that came with one
        #: path -> (what a generic handler returned, converted): grpcio's handlers are converted
        #: once, not per call, as long as the generic handler returns the same object.
        self._converted_cache: dict[str, tuple[Any, MethodHandler]] = {}

    def add(self, handler: GenericRpcHandler) -> None:
        if isinstance(handler, ServiceHandlers):
            for path in handler.method_handlers:
                if path in self._methods and path not in self._registered:
                    raise ValueError(f"method {path} is already registered")
            for path, method_handler in handler.method_handlers.items():
                self._methods.setdefault(path, method_handler)  # registered ones stay
            self._add_service_name(handler.service_name)
            if handler.descriptor is not None:
                self._descriptors.setdefault(handler.service_name, handler.descriptor)
        else:
            self._generic.append(handler)
            # grpcio's service handlers (grpc.ServiceRpcHandler) also say their service's name.
            service_name = getattr(handler, "service_name", None)
            try:
                name = service_name() if callable(service_name) else None
            except TypeError:  # some other method of that name
                name = None
            if isinstance(name, str):
                self._add_service_name(name)

    def add_registered(self, service_name: str, method_handlers: Mapping[str, Any]) -> None:
        """grpcio's ``add_registered_method_handlers``: exact paths that take precedence over
        handlers of the same paths added with ``add`` (grpcio's rule)."""
        handlers = ServiceHandlers(service_name, method_handlers).method_handlers
        for path in handlers:
            if path in self._registered:
                raise ValueError(f"method {path} is already registered")
        self._methods.update(handlers)
        self._registered.update(handlers)
        self._add_service_name(service_name)

    def add_method(self, path: str, handler: MethodHandler) -> None:
        if path in self._methods:
            raise ValueError(f"method {path} is already registered")
        self._methods[path] = handler

    def _add_service_name(self, name: str) -> None:
        if name not in self._services:
            self._services.append(name)

    @property
    def service_names(self) -> list[str]:
        return list(self._services)

    def services(self) -> dict[str, Optional[ServiceDescriptor]]:
        """Every service name, in the order added, with its descriptor when one came with it."""
        return {name: self._descriptors.get(name) for name in self._services}

    def lookup(self, path: str, metadata: object = None) -> Optional[MethodHandler]:
        handler = self._methods.get(path)
        if handler is not None or not self._generic:
            return handler
        details = HandlerCallDetails(method=path, invocation_metadata=metadata)
        for generic in self._generic:
            found = generic.service(details)
            if found is not None:
                return self._converted(path, found)
        return None

    def _converted(self, path: str, found: Any) -> MethodHandler:
        """A generic handler's result as a ``MethodHandler`` (grpcio's are converted).

        The conversion is kept per path for as long as the generic handler returns the very same
        object (an identity check, so a handler chosen per call is never confused with another).
        """
        if isinstance(found, MethodHandler):
            return found
        cache = self._converted_cache
        cached = cache.get(path)
        if cached is not None and cached[0] is found:
            return cached[1]
        handler = as_method_handler(found)
        if len(cache) >= CONVERTED_CACHE_SIZE:
            cache.clear()
        cache[path] = (found, handler)
        return handler
