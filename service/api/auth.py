"""Bearer API keys → the request's ``Principal``; role guards per router."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import structlog
from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler
from litestar.middleware import AbstractAuthenticationMiddleware, AuthenticationResult

from service.keys import authenticate
from service.portal import CUSTOMER, is_portal_token
from service.ports import Principal

# Paths that need no key: probes, metrics, the schema, the console's static page, Stripe's
# webhooks (signed by Stripe instead), the portal's static page and its lookup by order number and e-mail.
PUBLIC_PATHS = [
    "^/$",
    "^/health",
    "^/metrics",
    "^/schema",
    "^/webhooks/",
    "^/console",
    "^/portal(/|$)",
    "^/v1/portal-sessions$",
]


class ApiKeyMiddleware(AbstractAuthenticationMiddleware):
    async def authenticate_request(self, connection: ASGIConnection[Any, Any, Any, Any]) -> AuthenticationResult:
        header = connection.headers.get("authorization", "")
        scheme, _, key = header.partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            raise NotAuthorizedException("send an API key as 'Authorization: Bearer <key>'")
        services = connection.app.state.services
        if is_portal_token(key.strip()):
            principal = await services.portal.authenticate(key.strip())
            if principal is None:
                raise NotAuthorizedException("the portal link is expired or not valid; ask for a new one")
        else:
            principal = await authenticate(services.db, key.strip())
        if principal is None:
            raise NotAuthorizedException("unknown or revoked API key")
        structlog.contextvars.bind_contextvars(merchant_id=principal.merchant_id, key_id=principal.key_id)
        return AuthenticationResult(user=principal, auth=None)


def roles(*allowed: str) -> Callable[[ASGIConnection[Any, Any, Any, Any], BaseRouteHandler], None]:
    """A guard letting ``allowed`` roles through; admin may do everything within its merchant. A
    customer's portal credential passes only handlers marked ``opt={"customer": True}`` (the
    storefront operations a customer needs; service code then keeps it to its own order)."""
    permitted = {*allowed, "admin"}

    def guard(connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler) -> None:
        principal: Principal = connection.user
        if principal.role == CUSTOMER:
            if not handler.opt.get(CUSTOMER):
                raise PermissionDeniedException("a customer's portal link may not do this")
        elif principal.role not in permitted and not _opened_to_agents(principal, connection, handler):
            raise PermissionDeniedException(f"role '{principal.role}' may not do this; needs {' or '.join(sorted(permitted))}")

    return guard


def _opened_to_agents(principal: Principal, connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler) -> bool:
    """Agent keys pass too where the handler names an operator setting (``opt["agents_if"]``) that
    is on: the reports, for teams whose agents analyse return reasons (RETURNS_REPORTS_FOR_AGENTS)."""
    setting = handler.opt.get("agents_if")
    return principal.role == "agent" and isinstance(setting, str) and getattr(connection.app.state.services.settings, setting)
