"""Liveness and readiness probes, and the metrics."""

from __future__ import annotations

from litestar import Response, get
from litestar.openapi import ResponseSpec

from service.container import Services
from service.metrics import render


@get("/health/live", operation_id="live", tags=["health"])
async def live() -> dict[str, str]:
    return {"status": "ok"}


@get(
    "/health/ready",
    operation_id="ready",
    tags=["health"],
    responses={503: ResponseSpec(dict[str, object], description="Not ready: which check failed", generate_examples=False)},
)
async def ready(services: Services) -> Response[dict[str, object]]:
    """Ready when the database answers and every migration is applied."""
    database = await services.db.ping()
    migrations = database and not await services.db.pending_migrations()
    ok = database and migrations
    return Response(
        {"status": "ok" if ok else "unavailable", "database": database, "migrations_applied": migrations},
        status_code=200 if ok else 503,
    )


@get("/metrics", operation_id="metrics", tags=["health"], media_type="text/plain; version=0.0.4", include_in_schema=False)
async def metrics(services: Services) -> Response[bytes]:
    """Prometheus text format, for the operator's scraper."""
    return Response(await render(services.db), media_type="text/plain; version=0.0.4; charset=utf-8")
