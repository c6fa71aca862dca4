"""Prometheus metrics: request latency by route, cases by state, refunds by status, gateway
errors, worker lag and outbox depth. The gauges are read from PostgreSQL at each scrape, so
every process answers for the whole service, whichever of them the scraper reaches."""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from service.ports import Database

REGISTRY = CollectorRegistry()
REQUEST_SECONDS = Histogram(
    "returns_http_request_duration_seconds",
    "HTTP request latency by route template",
    ["method", "route", "status"],
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
    registry=REGISTRY,
)
GATEWAY_ERRORS = Counter(
    "returns_gateway_errors_total", "Errors from the payment gateway", ["gateway", "code", "retryable"], registry=REGISTRY
)
GATEWAY_REPORTS_IGNORED = Counter(
    "returns_gateway_reports_ignored_total",
    "Gateway answers, events and polls that did not match the refund they named, and changed nothing",
    ["gateway", "source", "reason"],
    registry=REGISTRY,
)
REFUND_ERRORS = Counter(
    "returns_refund_errors_total",
    "Unexpected errors sending or polling one refund (it is postponed; the others go on)",
    ["gateway", "error"],
    registry=REGISTRY,
)
WEBHOOK_FAILURES = Counter("returns_webhook_delivery_failures_total", "Failed deliveries of outbound webhooks", registry=REGISTRY)
MAIL_FAILURES = Counter(
    "returns_customer_mail_failures_total",
    "Customer e-mails the mail server refused or could not take: retried, or given up",
    ["outcome"],
    registry=REGISTRY,
)
CASES = Gauge("returns_cases", "Cases by type and state", ["type", "state"], registry=REGISTRY)
REFUNDS = Gauge("returns_refunds", "Refunds by status", ["status"], registry=REGISTRY)
OUTBOX_DEPTH = Gauge("returns_outbox_depth", "Outbox messages not delivered yet", registry=REGISTRY)
WORKER_LAG = Gauge("returns_worker_lag_seconds", "How long the oldest due refund has waited for a worker", registry=REGISTRY)


async def render(db: Database) -> bytes:
    async with db.transaction() as repos:
        counts = await repos.operational_counts()
    CASES.clear()
    for (case_type, state), count in counts.cases.items():
        CASES.labels(case_type, state).set(count)
    REFUNDS.clear()
    for status, count in counts.refunds.items():
        REFUNDS.labels(status).set(count)
    OUTBOX_DEPTH.set(counts.outbox_depth)
    WORKER_LAG.set(counts.worker_lag_seconds)
    return generate_latest(REGISTRY)
