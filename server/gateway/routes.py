"""The REST route table: one entry per method and path, matched once per request.

A path is matched first as a whole (the usual request, ``POST /v1/orders``, costs one
dictionary lookup), then by its decoded segments against the templates with
parameters (``/v1/orders/{ClOrdID}/replace``). A path that exists under other methods
is answered 405 with ``Allow``; any other, 404. Each segment is percent-decoded exactly
once (``%2F`` stays inside its segment, ``%25`` is a ``%``).
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable
from typing import Any, NamedTuple

from server.gateway.errors import ApiError

__all__ = ["Route", "Router", "path_segments"]


class Route(NamedTuple):
    """``handler(app, scope, proto, client, params)`` answers ``status`` with what it returns:
    JSON bytes, or ``(headers, body)``. ``client`` is the authenticated client (None for a
    route with ``auth=False``); ``params`` are the template's parameters, decoded."""

    method: str
    template: str
    name: str  # the metrics label
    status: int
    handler: Callable[..., Any]
    auth: bool = True


def path_segments(path: str) -> list[str]:
    """The path's segments, each percent-decoded exactly once."""
    if path in ("", "/"):
        return []
    return [urllib.parse.unquote(p, errors="strict") for p in path.strip("/").split("/")]


class Router:
    """Routes by method and path (see the module's docstring)."""

    def __init__(self, routes: list[Route]) -> None:
        self.routes = routes
        self._static: dict[tuple[str, str], Route] = {}
        self._templates: dict[int, list[tuple[tuple[str | None, ...], Route]]] = {}
        for r in routes:
            parts = tuple(None if p.startswith("{") else p for p in r.template.strip("/").split("/"))
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
        try:
            segments = path_segments(path)
        except UnicodeDecodeError:
            raise ApiError(400, "bad_path", "the path is not valid percent-encoded UTF-8") from None
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
