"""Interactive API documentation at ``/docs``: Swagger UI over ``/openapi.json``.

The Swagger UI files come from the ``swagger-ui-bundle-v2`` package (Swagger UI 5, which
reads OpenAPI 3.1) and are served by the gateway itself under ``/docs/``: nothing is loaded
from elsewhere, so the page works offline. "Authorize" takes the client's API key
(``X-API-Key``) and "Try it out" sends requests to this gateway. Without the package,
``/docs`` serves the plain reference page of :func:`server.gateway.openapi.docs_page`.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from server.gateway.openapi import docs_page

__all__ = ["ApiDocs", "swagger_ui_dir"]

# The files the page loads (served from the package, read once).
_ASSETS = {
    "swagger-ui.css": "text/css; charset=utf-8",
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "favicon-32x32.png": "image/png",
    "favicon-16x16.png": "image/png",
}

_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}</title>
<link rel="stylesheet" href="/docs/swagger-ui.css">
<link rel="icon" type="image/png" href="/docs/favicon-32x32.png" sizes="32x32">
</head>
<body>
<div id="swagger-ui"></div>
<script src="/docs/swagger-ui-bundle.js"></script>
<script>
window.ui = SwaggerUIBundle({{
  url: "/openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  displayOperationId: true,
  defaultModelsExpandDepth: 0,
  validatorUrl: null
}});
</script>
</body>
</html>
"""


def swagger_ui_dir() -> Path | None:
    """The directory of the installed Swagger UI files, or None without the package."""
    try:
        import swagger_ui_bundle
    except ImportError:
        return None
    path = Path(getattr(swagger_ui_bundle, "swagger_ui_path", Path(swagger_ui_bundle.__file__).parent))
    return path if (path / "swagger-ui-bundle.js").is_file() else None


class ApiDocs:
    """The ``/docs`` page and its files."""

    def __init__(self, openapi: dict[str, Any]) -> None:
        self.dir = swagger_ui_dir()
        if self.dir is None:
            self.page = docs_page(openapi).encode()
        else:
            import html

            self.page = _PAGE.format(title=html.escape(openapi["info"]["title"])).encode()

    @functools.cache  # noqa: B019 - one instance per process, four files
    def asset(self, name: str) -> tuple[str, bytes] | None:
        """``(content type, bytes)`` of a Swagger UI file, None for any other name."""
        ctype = _ASSETS.get(name)
        if ctype is None or self.dir is None:
            return None
        return ctype, (self.dir / name).read_bytes()
