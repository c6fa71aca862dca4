"""The customer's returns portal: static files served by the service itself (no build step),
under the console's strict Content-Security-Policy and ``Referrer-Policy: no-referrer``. The page
reads its credential from the link's fragment and talks only to the public storefront API a
storefront could call itself."""

from __future__ import annotations

from importlib.resources import files
from typing import Literal

from litestar import Response, get
from litestar.exceptions import NotFoundException

from service.api.console import SAFE_HEADERS

PORTAL = files("service") / "portal_web"
_TYPES = {"js": "text/javascript", "css": "text/css"}


@get(["/portal", "/portal/"], include_in_schema=False, media_type="text/html")
async def portal_page() -> Response[bytes]:
    return Response((PORTAL / "index.html").read_bytes(), media_type="text/html", headers=SAFE_HEADERS)


@get("/portal/{name:str}", include_in_schema=False)
async def portal_asset(name: Literal["portal.js", "portal.css"]) -> Response[bytes]:
    return Response((PORTAL / name).read_bytes(), media_type=_TYPES[name.rsplit(".", 1)[1]], headers=SAFE_HEADERS)


@get("/portal/i18n/{language:str}", include_in_schema=False)
async def portal_messages(language: str) -> Response[bytes]:
    """One message catalogue per language."""
    if language not in ("en.json", "zh.json"):
        raise NotFoundException(f"no messages for {language}")
    return Response((PORTAL / "i18n" / language).read_bytes(), media_type="application/json", headers=SAFE_HEADERS)
