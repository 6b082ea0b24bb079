"""The web UI: the production build in ``attune/api/ui_dist`` served at ``/`` (docs/web-ui.md).

Installed as the router's *default* handler, so it only sees requests no route matched (a path
that a route serves with another method still answers 405). Under the API's own prefixes
(``/api``, ``/auth``, ``/docs``, ``/health``, ``/api-spec``) an unknown path keeps the API's
404 (empty body, api.md conventions);
anywhere else a GET/HEAD gets the file it names from the build, or ``index.html`` so deep links
work in the single-page app.
"""

from __future__ import annotations

from pathlib import Path

from starlette.responses import FileResponse, Response
from starlette.routing import Router
from starlette.types import ASGIApp, Receive, Scope, Send

UI_DIST = Path(__file__).resolve().parent / "ui_dist"

#: Paths owned by the API; never answered with the UI.
RESERVED_PREFIXES = ("/api/", "/auth/", "/docs/", "/health/", "/api-spec/")
RESERVED_EXACT = frozenset({"/api", "/auth", "/docs", "/health", "/api-spec"})

_NOT_BUILT = (
    b"<!doctype html><title>Attune</title><h1>Attune</h1><p>The web UI is not built. "
    b"Run <code>make web</code> (or <code>make run</code>), or see <a href='/docs'>/docs</a> for the API.</p>"
)


def _reserved(path: str) -> bool:
    return path in RESERVED_EXACT or path.startswith(RESERVED_PREFIXES)


class UiFallback:
    """ASGI app for requests that matched no route."""

    def __init__(self, not_found: ASGIApp, dist: Path = UI_DIST) -> None:
        self.not_found = not_found
        self.dist = dist.resolve()

    def _file(self, path: str) -> Path | None:
        relative = path.lstrip("/")
        if not relative:
            return None
        candidate = (self.dist / relative).resolve()
        if not candidate.is_relative_to(self.dist) or not candidate.is_file():
            return None
        return candidate

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        if scope["type"] != "http" or _reserved(path) or scope["method"] not in ("GET", "HEAD"):
            await self.not_found(scope, receive, send)
            return
        index = self.dist / "index.html"
        target = self._file(path)
        response: Response
        if target is not None:
            # Hashed assets never change under their name; index.html must always be re-read.
            cache = "public, max-age=31536000, immutable" if path.startswith("/assets/") else "no-cache"
            response = FileResponse(target, headers={"Cache-Control": cache})
        elif index.is_file():
            response = FileResponse(index, headers={"Cache-Control": "no-cache"})
        else:
            response = Response(_NOT_BUILT, status_code=404, media_type="text/html")
        await response(scope, receive, send)


def install_ui(router: Router, dist: Path = UI_DIST) -> None:
    """Answer unmatched GET/HEAD requests outside the API's prefixes with the UI."""
    router.default = UiFallback(router.default, dist)
