"""The Litestar application. It knows the services only through ``Services``; the composition
root (``service.bootstrap``) decides which adapters stand behind them."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import structlog
from litestar import Litestar, Request
from litestar.di import Provide
from litestar.middleware import DefineMiddleware
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from service.api.admin import (
    AgentController,
    AgentOrderController,
    CaseCountsController,
    PolicyController,
    RefundController,
    WebhookController,
)
from service.api.auth import PUBLIC_PATHS, ApiKeyMiddleware
from service.api.bodies import StrictRequest
from service.api.console import console_asset, console_messages, console_page
from service.api.finance import FinanceController
from service.api.health import live, metrics, ready
from service.api.photos import PhotoController
from service.api.problems import document_problems, handle_exception
from service.api.storefront import StorefrontController
from service.api.webhooks import stripe_webhook
from service.container import Services
from service.metrics import REQUEST_SECONDS

API_VERSION = "0.1.0"
log = structlog.get_logger()


def request_context(app: ASGIApp) -> ASGIApp:
    """Bind a request id (the caller's ``X-Request-ID`` or a new one) to every log line of the
    request, echo it back in the answer, and log one line per request."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        request_id = headers.get(b"x-request-id", b"").decode("latin-1")[:64] or uuid.uuid4().hex
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)

        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            route = scope.get("path_template", "unmatched")
            REQUEST_SECONDS.labels(scope["method"], route, str(status)).observe(elapsed)
            log.info(
                "request",
                method=scope["method"],
                path=scope["path"],
                status=status,
                duration_ms=round(elapsed * 1000, 1),
            )

    return middleware


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

    app = Litestar(
        route_handlers=[
            StorefrontController,
            PhotoController,
            AgentController,
            AgentOrderController,
            CaseCountsController,
            PolicyController,
            RefundController,
            WebhookController,
            FinanceController,
            stripe_webhook,
            live,
            ready,
            metrics,
            console_page,
            console_asset,
            console_messages,
        ],
        dependencies={"services": Provide(provide_services, sync_to_thread=False)},
        middleware=[request_context, DefineMiddleware(ApiKeyMiddleware, exclude=PUBLIC_PATHS, exclude_http_methods=[])],
        exception_handlers={Exception: handle_exception},
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
    )
    document_problems(app.openapi_schema)
    return app
