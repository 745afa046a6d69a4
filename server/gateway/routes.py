"""The REST route table: one entry per method and path, matched once per request.

A path is matched first as a whole (the usual request, ``POST /v1/orders``, costs one
dictionary lookup), then by its decoded segments against the templates with
parameters (``/v1/orders/{ClOrdID}/replace``). A path that exists under other methods
is answered 405 with ``Allow``; any other, 404. Each segment is percent-decoded exactly
once: granian hands the path over decoded, and segments are taken as they are
(see :func:`server.gateway.guards.path_segments`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from server.gateway.errors import ApiError
from server.gateway.guards import path_segments

__all__ = ["Route", "Router"]


class Route(NamedTuple):
    """``await handler(app, scope, proto, client, params)`` answers ``status`` with what it
    returns: JSON bytes, or ``(status, headers, body)``. ``client`` is the authenticated
    client (None for a route with ``auth=False``); ``params`` are the template's parameters."""

    method: str
    template: str
    name: str  # the metrics label
    status: int
    handler: Callable[..., Any]
    auth: bool = True



class Router:
    """Routes by method and path (see the module's docstring)."""

    def __init__(self, routes: list[Route]) -> None:
        self.routes = routes
        self._static: dict[tuple[str, str], Route] = {}
        self._templates: dict[int, list[tuple[tuple[str | None, ...], Route]]] = {}
        for r in routes:
            parts = tuple(None if p.startswith("{") else p for p in path_segments(r.template))
            if None not in parts:
                self._static[(r.method, r.template)] = r
                if r.method == "GET":  # HEAD is answered like GET, without a body (granian drops it)
                    self._static[("HEAD", r.template)] = r
            self._templates.setdefault(len(parts), []).append((parts, r))

    def match(self, method: str, path: str) -> tuple[Route, list[str]]:
        """The route and its parameters; ApiError 404 or 405 otherwise."""
        route = self._static.get((method, path))
        if route is not None:
            return route, []
        segments = path_segments(path)
        allowed: list[str] = []
        for parts, r in self._templates.get(len(segments), ()):
            params = []
            for want, seg in zip(parts, segments, strict=True):
                if want is None:
                    if not seg:
                        break
                    params.append(seg)
                elif want != seg:
                    break
            else:
                if r.method == method or (method == "HEAD" and r.method == "GET"):
                    return r, params
                allowed.append(r.method)
        if allowed:
            allow = ", ".join(sorted(set(allowed) | ({"HEAD"} if "GET" in allowed else set())))
            raise ApiError(405, "method_not_allowed", f"allowed: {allow}", headers=[("allow", allow)])
        raise ApiError(404, "not_found", f"no route {path}")
