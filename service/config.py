"""Configuration from the environment, with defaults that work on a laptop: no database URL
means an embedded PostgreSQL under ``RETURNS_DATA_DIR``; no Stripe key means the simulated
gateway; photos on the local disk."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TypedDict

import msgspec

LOCAL_URL = "http://127.0.0.1:8000"  # where `returns serve` listens by default


class Settings(msgspec.Struct, frozen=True):
    database_url: str | None = None
    data_dir: Path = Path(".returns")
    stripe_api_key: str | None = None
    stripe_webhook_secret: str | None = None
    stripe_api_base: str | None = None  # a Stripe-compatible server (tests, proxies)
    easypost_api_key: str | None = None  # return labels through EasyPost; unset: the simulated carrier
    easypost_api_base: str | None = None  # an EasyPost-compatible server, ".../v2" included; default EasyPost's
    # verify EasyPost's webhooks; comma-separated while one is rotated (any verifies)
    easypost_webhook_secrets: tuple[str, ...] = ()
    simulated_latency_ms: int = 0  # the simulated gateway's delay per call (demos, benchmarks)
    log_format: str = "auto"  # auto | json | console
    run_worker: bool = True
    worker_idle_seconds: float = 1.0  # how long an idle worker waits before looking again
    refund_poll_after_seconds: float = 300.0  # ask the gateway about a refund no webhook settled
    worker_poll_every_seconds: float = 60.0
    webhook_allow_internal_targets: bool = False  # webhooks to loopback/private addresses
    webhook_first_backoff_seconds: float = 5.0  # doubles per failed delivery, up to an hour
    webhook_secret_grace_seconds: float = 86400.0  # a rotated-out secret keeps signing this long
    sla_hours: dict[str, float] = {}  # per case state, over the defaults: "pending_review=8,received=24"
    photo_max_bytes: int = 15 * 1024 * 1024
    photos_per_case: int = 10
    blob_dir: Path | None = None  # photos on the local disk; default <data_dir>/blobs
    s3_bucket: str | None = None  # photos in an S3-compatible store instead
    s3_endpoint: str | None = None
    s3_region: str = "us-east-1"
    s3_access_key: str | None = None
    s3_secret_key: str | None = None
    refund_concurrency: int = 64  # refunds a worker keeps in flight at the gateway
    gateway_rate_per_second: float = 20.0  # calls per gateway account, all workers together (Stripe allows ~25)
    refund_lease_seconds: float = 15.0  # a killed worker's refunds are taken over after this
    gateway_account_read_only: bool = False  # the operator binds accounts; the admin endpoint refuses
    reports_for_agents: bool = False  # agent keys may read the finance reports (and the Reports page) too
    db_pool_max: int = 10
    high_return_rate: float = 0.5  # a new case is flagged when the customer returned this share of 90 days' items
    high_return_rate_min_items: int = 3  # ... once they bought at least this many
    auto_close_days: float = 14.0  # a shipped exchange or repair closes itself after this long (0: never)
    db_acquire_timeout_seconds: float = 5.0  # then 503: a full pool never hangs a request
    smtp_url: str | None = None  # customer e-mail through this server; else .eml files in <data_dir>/outbox-mail
    mail_from: str = "returns@localhost"  # the envelope sender and From address (merchants set the name)
    mail_first_backoff_seconds: float = 30.0  # doubles per failed attempt, up to an hour
    # signs the customer portal's links; comma-separated to rotate (the first signs, all verify);
    # unset: a secret generated once and stored in the database
    portal_secrets: tuple[str, ...] = ()
    public_url: str | None = None  # where customers reach the service (portal and e-mail links); default: the
    # request's for a portal link made over HTTP; in e-mail, where `returns serve` listens (LOCAL_URL for
    # a `returns worker` on its own, which knows no address: set it there)
    portal_lookups_per_ip: int = 20  # order + e-mail lookups an hour per client address (all processes together)
    portal_lookups_per_email: int = 5  # ... and per merchant, order and e-mail
    # proxies whose X-Forwarded-For / -Proto are believed (comma-separated addresses, as uvicorn's
    # --forwarded-allow-ips); none: the connection's peer is the client, whatever headers say
    trusted_proxies: str | None = None
    # the simulated carrier's scripted scans, in seconds after a label is bought
    simulated_carrier_in_transit_seconds: float = 120.0
    simulated_carrier_delivered_seconds: float = 600.0
    simulated_carrier_latency_ms: int = 0  # the simulated carrier's delay per call (demos, crash tests)
    label_lease_seconds: float = 60.0  # a killed worker's labels are taken over after this
    tracking_poll_after_seconds: float = 300.0  # ask the carrier for scans of a label quiet this long
    label_first_backoff_seconds: float = 5.0  # a carrier that is down: doubles per try, up to an hour

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if env is None else env)
        return cls(
            database_url=env.get("RETURNS_DATABASE_URL") or None,
            data_dir=Path(env.get("RETURNS_DATA_DIR", ".returns")),
            stripe_api_key=env.get("STRIPE_API_KEY") or None,
            stripe_webhook_secret=env.get("STRIPE_WEBHOOK_SECRET") or None,
            stripe_api_base=env.get("STRIPE_API_BASE") or None,
            easypost_api_key=env.get("EASYPOST_API_KEY") or None,
            easypost_api_base=env.get("RETURNS_EASYPOST_API_BASE") or None,
            easypost_webhook_secrets=_list(env.get("EASYPOST_WEBHOOK_SECRET", "")),
            simulated_latency_ms=int(env.get("RETURNS_SIMULATED_LATENCY_MS", "0")),
            log_format=env.get("RETURNS_LOG_FORMAT", "auto"),
            run_worker=env.get("RETURNS_RUN_WORKER", "1") not in ("0", "false", "no"),
            worker_idle_seconds=float(env.get("RETURNS_WORKER_IDLE_SECONDS", "1.0")),
            refund_poll_after_seconds=float(env.get("RETURNS_REFUND_POLL_AFTER_SECONDS", "300")),
            worker_poll_every_seconds=float(env.get("RETURNS_WORKER_POLL_EVERY_SECONDS", "60")),
            webhook_allow_internal_targets=env.get("RETURNS_WEBHOOK_ALLOW_PRIVATE", "0") in ("1", "true", "yes"),
            webhook_first_backoff_seconds=float(env.get("RETURNS_WEBHOOK_FIRST_BACKOFF_SECONDS", "5")),
            webhook_secret_grace_seconds=float(env.get("RETURNS_WEBHOOK_SECRET_GRACE_SECONDS", "86400")),
            sla_hours=_pairs(env.get("RETURNS_SLA_HOURS", "")),
            photo_max_bytes=int(env.get("RETURNS_PHOTO_MAX_BYTES", str(15 * 1024 * 1024))),
            photos_per_case=int(env.get("RETURNS_PHOTOS_PER_CASE", "10")),
            blob_dir=Path(env["RETURNS_BLOB_DIR"]) if env.get("RETURNS_BLOB_DIR") else None,
            s3_bucket=env.get("RETURNS_S3_BUCKET") or None,
            s3_endpoint=env.get("RETURNS_S3_ENDPOINT") or None,
            s3_region=env.get("RETURNS_S3_REGION", "us-east-1"),
            s3_access_key=env.get("RETURNS_S3_ACCESS_KEY") or None,
            s3_secret_key=env.get("RETURNS_S3_SECRET_KEY") or None,
            refund_concurrency=int(env.get("RETURNS_REFUND_CONCURRENCY", "64")),
            gateway_rate_per_second=float(env.get("RETURNS_GATEWAY_RATE_PER_SECOND", "20")),
            refund_lease_seconds=float(env.get("RETURNS_REFUND_LEASE_SECONDS", "15")),
            gateway_account_read_only=env.get("RETURNS_GATEWAY_ACCOUNT_READ_ONLY", "0") in ("1", "true", "yes"),
            reports_for_agents=env.get("RETURNS_REPORTS_FOR_AGENTS", "0") in ("1", "true", "yes"),
            db_pool_max=int(env.get("RETURNS_DB_POOL_MAX", "10")),
            high_return_rate=float(env.get("RETURNS_HIGH_RETURN_RATE", "0.5")),
            high_return_rate_min_items=int(env.get("RETURNS_HIGH_RETURN_RATE_MIN_ITEMS", "3")),
            auto_close_days=float(env.get("RETURNS_AUTO_CLOSE_DAYS", "14")),
            db_acquire_timeout_seconds=float(env.get("RETURNS_DB_ACQUIRE_TIMEOUT_SECONDS", "5")),
            smtp_url=env.get("RETURNS_SMTP_URL") or None,
            mail_from=env.get("RETURNS_MAIL_FROM") or "returns@localhost",
            mail_first_backoff_seconds=float(env.get("RETURNS_MAIL_FIRST_BACKOFF_SECONDS", "30")),
            portal_secrets=_list(env.get("RETURNS_PORTAL_SECRET", "")),
            public_url=env.get("RETURNS_PUBLIC_URL") or None,
            portal_lookups_per_ip=int(env.get("RETURNS_PORTAL_LOOKUPS_PER_IP", "20")),
            portal_lookups_per_email=int(env.get("RETURNS_PORTAL_LOOKUPS_PER_EMAIL", "5")),
            trusted_proxies=env.get("RETURNS_TRUSTED_PROXIES") or None,
            simulated_carrier_in_transit_seconds=float(env.get("RETURNS_SIMULATED_CARRIER_IN_TRANSIT_SECONDS", "120")),
            simulated_carrier_delivered_seconds=float(env.get("RETURNS_SIMULATED_CARRIER_DELIVERED_SECONDS", "600")),
            simulated_carrier_latency_ms=int(env.get("RETURNS_SIMULATED_CARRIER_LATENCY_MS", "0")),
            label_lease_seconds=float(env.get("RETURNS_LABEL_LEASE_SECONDS", "60")),
            tracking_poll_after_seconds=float(env.get("RETURNS_TRACKING_POLL_AFTER_SECONDS", "300")),
            label_first_backoff_seconds=float(env.get("RETURNS_LABEL_FIRST_BACKOFF_SECONDS", "5")),
        )


def _list(text: str) -> tuple[str, ...]:
    """``"a, b,"`` → ``("a", "b")``."""
    return tuple(filter(None, (part.strip() for part in text.split(","))))


class ProxyOptions(TypedDict, total=False):
    proxy_headers: bool
    forwarded_allow_ips: str


def http_server_options(trusted_proxies: str | None) -> ProxyOptions:
    """What uvicorn is told about proxies, by ``returns serve`` and the tests alike. uvicorn's own
    default believes X-Forwarded-For from 127.0.0.1, so anything on the loopback (a sidecar, a
    proxy passing the header on) could pick its address, and a new lookup budget per request."""
    if trusted_proxies:
        return {"proxy_headers": True, "forwarded_allow_ips": trusted_proxies}
    return {"proxy_headers": False}


def _pairs(text: str) -> dict[str, float]:
    """``"a=1,b=2.5"`` → ``{"a": 1.0, "b": 2.5}``."""
    pairs = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, _, value = part.partition("=")
        pairs[key.strip()] = float(value)
    return pairs
