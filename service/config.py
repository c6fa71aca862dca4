"""Configuration from the environment, with defaults that work on a laptop: no database URL
means an embedded PostgreSQL under ``RETURNS_DATA_DIR``; no Stripe key means the simulated
gateway; photos on the local disk."""

from __future__ import annotations

import os
from pathlib import Path

import msgspec


class Settings(msgspec.Struct, frozen=True):
    database_url: str | None = None
    data_dir: Path = Path(".returns")
    stripe_api_key: str | None = None
    stripe_webhook_secret: str | None = None
    stripe_api_base: str | None = None  # a Stripe-compatible server (tests, proxies)
    log_format: str = "auto"  # auto | json | console
    run_worker: bool = True
    worker_idle_seconds: float = 1.0  # how long an idle worker waits before looking again
    refund_poll_after_seconds: float = 300.0  # ask the gateway about a refund no webhook settled
    worker_poll_every_seconds: float = 60.0
    webhook_first_backoff_seconds: float = 5.0  # doubles per failed delivery, up to an hour
    sla_hours: dict[str, float] = {}  # per case state, over the defaults: "pending_review=8,received=24"
    db_pool_max: int = 10

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if env is None else env)
        return cls(
            database_url=env.get("RETURNS_DATABASE_URL") or None,
            data_dir=Path(env.get("RETURNS_DATA_DIR", ".returns")),
            stripe_api_key=env.get("STRIPE_API_KEY") or None,
            stripe_webhook_secret=env.get("STRIPE_WEBHOOK_SECRET") or None,
            stripe_api_base=env.get("STRIPE_API_BASE") or None,
            log_format=env.get("RETURNS_LOG_FORMAT", "auto"),
            run_worker=env.get("RETURNS_RUN_WORKER", "1") not in ("0", "false", "no"),
            worker_idle_seconds=float(env.get("RETURNS_WORKER_IDLE_SECONDS", "1.0")),
            refund_poll_after_seconds=float(env.get("RETURNS_REFUND_POLL_AFTER_SECONDS", "300")),
            worker_poll_every_seconds=float(env.get("RETURNS_WORKER_POLL_EVERY_SECONDS", "60")),
            webhook_first_backoff_seconds=float(env.get("RETURNS_WEBHOOK_FIRST_BACKOFF_SECONDS", "5")),
            sla_hours=_pairs(env.get("RETURNS_SLA_HOURS", "")),
            db_pool_max=int(env.get("RETURNS_DB_POOL_MAX", "10")),
        )


def _pairs(text: str) -> dict[str, float]:
    """``"a=1,b=2.5"`` → ``{"a": 1.0, "b": 2.5}``."""
    pairs = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, _, value = part.partition("=")
        pairs[key.strip()] = float(value)
    return pairs
