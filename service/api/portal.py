"""The customer portal's entry points: links the storefront makes, and the lookup by order
number and e-mail (public, rate-limited, answering the same whether or not the order exists)."""

from __future__ import annotations

import ipaddress
from typing import Any

from litestar import Request, Response, post
from litestar.background_tasks import BackgroundTask

from service.api.auth import roles
from service.api.http import principal_of
from service.api.problems import problem
from service.container import Services
from service.portal import (
    PortalLinkIn,
    PortalLinkView,
    PortalSessionIn,
    PortalSessionView,
)

ACCEPTED = PortalSessionView(
    status="accepted", detail="If this order exists and the e-mail is its customer's, a link to it was sent to that e-mail."
)


def _base(request: Request[Any, Any, Any], services: Services) -> str:
    return services.settings.public_url or str(request.base_url)


def _client_key(request: Request[Any, Any, Any]) -> str:
    """The caller's address for the limit: an IPv6 caller's /64, which one subscriber holds whole;
    an IPv4 caller of a dual-stack socket (``::ffff:a.b.c.d``) its IPv4 address, not ``::/64``."""
    host = request.client.host if request.client else "unknown"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(ipaddress.ip_network(f"{address}/64", strict=False)) if address.version == 6 else host


@post("/v1/portal-links", operation_id="createPortalLink", guards=[roles("storefront")], tags=["storefront"])
async def create_portal_link(request: Request[Any, Any, Any], services: Services, data: PortalLinkIn) -> PortalLinkView:
    """A signed, expiring link to the returns portal for one order of its customer; the token is
    also the customer's Bearer credential for that order's storefront operations."""
    return await services.portal.make_link(principal_of(request), data, _base(request, services))


@post("/v1/portal-sessions", operation_id="requestPortalLink", status_code=202, tags=["portal"])
async def request_portal_link(
    request: Request[Any, Any, Any], services: Services, data: PortalSessionIn
) -> Response[PortalSessionView]:
    """Public: e-mail the order's customer a portal link. The same 202 whether or not the order
    exists or the e-mail matches; the lookup runs after the answer. 429 ``rate_limited`` past the
    limits per client address and per merchant and e-mail."""
    wait = await services.portal.lookup_wait(_client_key(request), data)
    if wait is not None:
        limited = problem(429, "rate_limited", "too many lookups; try again later", headers={"Retry-After": str(wait)})
        return limited  # type: ignore[return-value]  # a problem+json answer, documented as the 429
    task = BackgroundTask(services.portal.lookup, data)
    return Response(ACCEPTED, status_code=202, background=task)
