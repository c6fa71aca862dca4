"""The agent console: static files served by the service itself (no build step), with a strict
Content-Security-Policy. The page talks only to the public admin API."""

from __future__ import annotations

from importlib.resources import files
from typing import Literal

from litestar import Response, get
from litestar.exceptions import NotFoundException

CONSOLE = files("service") / "console"
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob:; connect-src 'self'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
SAFE_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}
# Litestar adds "; charset=utf-8" to text types itself.
_TYPES = {"js": "text/javascript", "css": "text/css", "json": "application/json"}


@get(["/console", "/console/"], include_in_schema=False, media_type="text/html")
async def console_page() -> Response[bytes]:
    return Response((CONSOLE / "index.html").read_bytes(), media_type="text/html", headers=SAFE_HEADERS)


@get(["/console/reports", "/console/reports/"], include_in_schema=False, media_type="text/html")
async def reports_page() -> Response[bytes]:
    """The Reports page: charts of the finance reports (the endpoints' role guards decide who reads)."""
    return Response((CONSOLE / "reports.html").read_bytes(), media_type="text/html", headers=SAFE_HEADERS)


@get("/console/{name:str}", include_in_schema=False)
async def console_asset(name: Literal["ui.js", "app.js", "app.css", "reports.js", "reports.css"]) -> Response[bytes]:
    return Response((CONSOLE / name).read_bytes(), media_type=_TYPES[name.rsplit(".", 1)[1]], headers=SAFE_HEADERS)


@get("/console/i18n/{language:str}", include_in_schema=False)
async def console_messages(language: str) -> Response[bytes]:
    """One message catalogue per language."""
    if language not in ("en.json", "zh.json", "reports-en.json", "reports-zh.json"):
        raise NotFoundException(f"no messages for {language}")
    return Response((CONSOLE / "i18n" / language).read_bytes(), media_type=_TYPES["json"], headers=SAFE_HEADERS)
