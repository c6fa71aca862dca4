"""The Litestar application. It knows the services only through ``Services``; the composition
root (``service.bootstrap``) decides which adapters stand behind them."""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, cast

import structlog
from litestar import Litestar, Request, get
from litestar.di import Provide
from litestar.middleware import DefineMiddleware
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme
from litestar.routes import HTTPRoute
from litestar.types import ASGIApp, HTTPScope, Message, Receive, Scope, Send

from service.api.admin import (
    AgentController,
    AgentOrderController,
    CaseCountsController,
    MeController,
    PolicyController,
    RefundController,
    WebhookController,
)
from service.api.auth import PUBLIC_PATHS, ApiKeyMiddleware
from service.api.bodies import StrictRequest
from service.api.console import console_asset, console_messages, console_page, reports_page
from service.api.finance import FinanceController
from service.api.health import live, metrics, ready
from service.api.http import case_etag, document_case_etags
from service.api.labels import (
    AgentLabelController,
    ShippingSettingsController,
    StorefrontLabelController,
    easypost_webhook,
)
from service.api.links import document_links
from service.api.photos import PhotoController
from service.api.portal import create_portal_link, request_portal_link
from service.api.portal_pages import portal_asset, portal_messages, portal_page
from service.api.problems import (
    document_problems,
    document_public_operations,
    handle_exception,
)
from service.api.schemas import StructSchemas, document_presence
from service.api.storefront import StorefrontController
from service.api.webhooks import stripe_webhook
from service.container import Services
from service.metrics import REQUEST_SECONDS

API_VERSION = "0.1.0"
log = structlog.get_logger()


# Polled by load balancers and scrapers every few seconds: their lines are debug, not info.
QUIET_PATHS = ("/health/", "/metrics")


def request_context(app: ASGIApp) -> ASGIApp:
    """Bind a request id (the caller's ``X-Request-ID`` or a new one) to every log line of the
    request, echo it back in the answer, and log and count one line per request with the status
    the client got: an error raised by a middleware within (the key check's 401) passes through
    here before the application's handler answers it, with the status it carries."""

    async def middleware(any_scope: Scope, receive: Receive, send: Send) -> None:
        if any_scope["type"] != "http":
            await app(any_scope, receive, send)
            return
        scope = cast("HTTPScope", any_scope)
        headers = dict(scope["headers"])
        request_id = _request_id(headers.get(b"x-request-id", b""))
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)

        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
                if scope["method"] == "OPTIONS" and status < 400:
                    message["headers"] = _with_allow(list(message["headers"]), scope)
            await send(message)

        try:
            await app(scope, receive, send_with_id)
        except Exception as error:
            status = getattr(error, "status_code", 500)
            raise
        finally:
            elapsed = time.perf_counter() - started
            route = scope.get("path_template", "unmatched")
            REQUEST_SECONDS.labels(scope["method"], route, str(status)).observe(elapsed)
            quiet = scope["path"].startswith(QUIET_PATHS) and status < 500
            (log.debug if quiet else log.info)(
                "request",
                method=scope["method"],
                path=scope["path"],
                status=status,
                duration_ms=round(elapsed * 1000, 1),
            )

    return middleware


_REQUEST_ID = re.compile(rb"[\x21-\x7e]{1,64}")


def _request_id(sent: bytes) -> str:
    """The caller's ``X-Request-ID`` when it is 1–64 printable ASCII characters (echoed and logged
    exactly as sent), else a new one: anything else could not come back byte for byte."""
    return sent.decode("ascii") if _REQUEST_ID.fullmatch(sent) else uuid.uuid4().hex


def _with_allow(headers: list[tuple[bytes, bytes]], scope: Scope) -> list[tuple[bytes, bytes]]:
    """Litestar answers OPTIONS with the methods of the first handler registered for a path (GET
    alone where GET and PUT are separate handlers): name every method the path has."""
    allowed = scope["litestar_app"].state.allowed_methods.get(scope.get("path_template"))
    if allowed is None:
        return headers
    return [(name, value) for name, value in headers if name.lower() != b"allow"] + [(b"allow", allowed.encode())]


@get("/", operation_id="root", tags=["health"])
async def root() -> dict[str, str]:
    """Public: where to go from here — the agents' console, the API's documentation, readiness."""
    return {
        "service": "returns",
        "console": "/console",
        "schema": "/schema",
        "openapi": "/schema/openapi.json",
        "ready": "/health/ready",
    }


def provide_services(request: Request[Any, Any, Any]) -> Services:
    return request.app.state.services


def create_app(open_services: Callable[[], AbstractAsyncContextManager[Services]]) -> Litestar:
    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        async with open_services() as services:
            app.state.services = services
            stop = asyncio.Event()
            worker = asyncio.create_task(services.worker.run(stop)) if services.settings.run_worker else None
            try:
                yield
            finally:
                stop.set()  # the worker finishes its round; its claims are released or leased out
                if worker is not None:
                    await worker

    structs = StructSchemas()
    app = Litestar(
        route_handlers=[
            StorefrontController,
            PhotoController,
            AgentController,
            AgentOrderController,
            CaseCountsController,
            MeController,
            PolicyController,
            RefundController,
            WebhookController,
            FinanceController,
            StorefrontLabelController,
            AgentLabelController,
            ShippingSettingsController,
            stripe_webhook,
            easypost_webhook,
            create_portal_link,
            request_portal_link,
            root,
            live,
            ready,
            metrics,
            console_page,
            reports_page,
            console_asset,
            console_messages,
            portal_page,
            portal_asset,
            portal_messages,
        ],
        dependencies={"services": Provide(provide_services, sync_to_thread=False)},
        middleware=[request_context, DefineMiddleware(ApiKeyMiddleware, exclude=PUBLIC_PATHS, exclude_http_methods=[])],
        exception_handlers={Exception: handle_exception},
        after_request=case_etag,
        lifespan=[lifespan],
        openapi_config=OpenAPIConfig(
            title="Returns & refunds service",
            version=API_VERSION,
            description="Returns, exchanges, repairs and refunds for storefronts, agents and finance.",
            components=Components(
                security_schemes={"api_key": SecurityScheme(type="http", scheme="bearer", description="An API key")}
            ),
            security=[{"api_key": []}],
            path="/schema",
        ),
        request_max_body_size=1_048_576,
        request_class=StrictRequest,
        plugins=[structs],
    )
    document_public_operations(app.openapi_schema, PUBLIC_PATHS)
    document_problems(app.openapi_schema)
    document_case_etags(app.openapi_schema)
    document_links(app.openapi_schema)
    document_presence(app.openapi_schema, structs)
    app.state.allowed_methods = {
        route.path_format: ", ".join(sorted(route.methods)) for route in app.routes if isinstance(route, HTTPRoute)
    }
    return app
