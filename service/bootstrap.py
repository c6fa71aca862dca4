"""The composition root: the one module that picks adapters and wires them into the app."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, nullcontext
from datetime import timedelta

from litestar import Litestar

from adapters.blobstore.filesystem import FilesystemBlobStore
from adapters.gateways.stripe_webhooks import StripeWebhookVerifier
from adapters.images import PillowImageProcessor
from adapters.mail import EmlFolderTransport, SmtpTransport
from adapters.postgres.database import PostgresDatabase
from adapters.postgres.embedded import embedded_database_url
from adapters.postgres.migrations import migrate
from adapters.webhook_sender import HttpWebhookSender, LoopResolver
from domain.cases import DEFAULT_SLA, CaseState
from policies.registry import RuleRegistry
from service.api.app import create_app
from service.cases import CaseService, ReturnRateFlag, utcnow
from service.config import LOCAL_URL, Settings
from service.container import Services
from service.finance import FinanceService
from service.labels import LabelService
from service.logging import configure_logging
from service.mail import Mailer
from service.notifications import Notifications
from service.photos import PhotoService
from service.policy import PolicyBook
from service.portal import PortalService
from service.ports import (
    BlobStore,
    Carrier,
    CarrierWebhook,
    Database,
    MailTransport,
    PaymentGateway,
    Resolver,
    WebhookSender,
)
from service.refunds import RefundService
from service.tracking import Tracking
from service.worker import Worker


def database_url(settings: Settings) -> str:
    """The configured database, else the embedded one under the data folder."""
    return settings.database_url or embedded_database_url(settings.data_dir)


async def open_database(settings: Settings) -> PostgresDatabase:
    """Connect and bring the schema up to date (under an advisory lock: safe with many processes)."""
    db = await PostgresDatabase.connect(
        database_url(settings),
        min_size=min(2, settings.db_pool_max),
        max_size=settings.db_pool_max,
        acquire_timeout=settings.db_acquire_timeout_seconds,
    )
    async with db.pool.acquire() as conn:
        await migrate(conn)
    return db


@asynccontextmanager
async def payment_gateway(settings: Settings) -> AsyncIterator[PaymentGateway]:
    """Stripe when a key is configured, else the simulated gateway (laptops, demos, tests), whose
    state is in the database and whose connection pool closes with it."""
    if settings.stripe_api_key:
        from adapters.gateways.stripe_gateway import StripeGateway

        yield StripeGateway(settings.stripe_api_key, api_base=settings.stripe_api_base)
        return
    from adapters.gateways.simulated import SimulatedGateway

    simulated = SimulatedGateway(database_url(settings), latency=settings.simulated_latency_ms / 1000)
    try:
        yield simulated
    finally:
        await simulated.close()


@asynccontextmanager
async def carrier(settings: Settings) -> AsyncIterator[Carrier]:
    """EasyPost when a key is configured, else the simulated carrier (laptops, demos, tests): its
    state is in the database, its connection pool closes with it, its scans follow the configured delays."""
    if settings.easypost_api_key:
        from adapters.carriers.easypost import EasyPostCarrier

        easypost = EasyPostCarrier(settings.easypost_api_key, api_base=settings.easypost_api_base)
        try:
            yield easypost
        finally:
            await easypost.close()
        return
    from adapters.carriers.simulated import SimulatedCarrier

    simulated = SimulatedCarrier(
        database_url(settings),
        in_transit_after=settings.simulated_carrier_in_transit_seconds,
        delivered_after=settings.simulated_carrier_delivered_seconds,
        latency=settings.simulated_carrier_latency_ms / 1000,
    )
    try:
        yield simulated
    finally:
        await simulated.close()


def carrier_webhook(settings: Settings) -> CarrierWebhook | None:
    """EasyPost's signed tracking webhooks, where EasyPost is the carrier and their secret is configured."""
    if not (settings.easypost_api_key and settings.easypost_webhook_secrets):
        return None
    from adapters.carriers.easypost import EasyPostWebhook

    return EasyPostWebhook(settings.easypost_webhook_secrets)


def sla_from(settings: Settings) -> dict[CaseState, timedelta]:
    """The default SLA per state with the configured hours laid over it."""
    sla = dict(DEFAULT_SLA)
    for state, hours in settings.sla_hours.items():
        sla[CaseState(state)] = timedelta(hours=hours)
    return sla


def blob_store(settings: Settings) -> BlobStore:
    """An S3-compatible bucket when one is configured, else a folder on the local disk."""
    if settings.s3_bucket:
        from adapters.blobstore.s3 import S3BlobStore

        return S3BlobStore(
            settings.s3_bucket,
            endpoint_url=settings.s3_endpoint,
            region=settings.s3_region,
            access_key=settings.s3_access_key,
            secret_key=settings.s3_secret_key,
        )
    return FilesystemBlobStore(settings.blob_dir or settings.data_dir / "blobs")


def mail_transport(settings: Settings) -> MailTransport:
    """The SMTP server when one is configured, else ``.eml`` files under the data folder."""
    if settings.smtp_url:
        return SmtpTransport(settings.smtp_url)
    return EmlFolderTransport(settings.data_dir / "outbox-mail")


def build_services(
    settings: Settings,
    db: Database,
    gateway: PaymentGateway,
    sender: WebhookSender,
    shipping: Carrier,
    resolver: Resolver | None = None,
) -> Services:
    """``shipping``: the carrier return labels are bought from."""
    policies = PolicyBook(RuleRegistry.discover())
    refunds = RefundService(
        db,
        gateway,
        utcnow,
        poll_after=timedelta(seconds=settings.refund_poll_after_seconds),
        lease=timedelta(seconds=settings.refund_lease_seconds),
        max_in_flight=settings.refund_concurrency,
        rate_per_account=settings.gateway_rate_per_second,
    )
    notifications = Notifications(
        db,
        sender,
        utcnow,
        first_backoff=timedelta(seconds=settings.webhook_first_backoff_seconds),
        allow_internal_targets=settings.webhook_allow_internal_targets,
        resolver=resolver or LoopResolver(),
        secret_grace=timedelta(seconds=settings.webhook_secret_grace_seconds),
    )
    portal = PortalService(db, utcnow, settings.portal_secrets, settings.portal_lookups_per_ip, settings.portal_lookups_per_email)
    mailer = Mailer(
        db,
        mail_transport(settings),
        utcnow,
        portal,
        public_url=settings.public_url or LOCAL_URL,
        mail_from=settings.mail_from,
        first_backoff=timedelta(seconds=settings.mail_first_backoff_seconds),
    )
    verifier = StripeWebhookVerifier(settings.stripe_webhook_secret) if settings.stripe_webhook_secret else None
    return_rate = ReturnRateFlag(settings.high_return_rate, settings.high_return_rate_min_items)
    cases = CaseService(db, policies, refunds, utcnow, sla_from(settings), return_rate, shipping.name)
    blobs = blob_store(settings)
    photos = PhotoService(db, blobs, PillowImageProcessor(), cases, utcnow, per_case=settings.photos_per_case)
    labels = LabelService(
        db,
        shipping,
        blobs,
        cases,
        utcnow,
        lease=timedelta(seconds=settings.label_lease_seconds),
        first_backoff=timedelta(seconds=settings.label_first_backoff_seconds),
    )
    tracking = Tracking(db, cases, shipping, utcnow, poll_after=timedelta(seconds=settings.tracking_poll_after_seconds))
    return Services(
        settings=settings,
        db=db,
        policies=policies,
        cases=cases,
        photos=photos,
        finance=FinanceService(db, gateway, utcnow),
        refunds=refunds,
        notifications=notifications,
        mailer=mailer,
        worker=Worker(
            refunds,
            notifications,
            cases,
            mailer,
            labels,
            tracking,
            idle_seconds=settings.worker_idle_seconds,
            poll_every_seconds=settings.worker_poll_every_seconds,
            auto_close_after=timedelta(days=settings.auto_close_days) if settings.auto_close_days > 0 else None,
        ),
        webhook_verifier=verifier,
        carrier_webhook=carrier_webhook(settings),
        portal=portal,
        labels=labels,
        tracking=tracking,
    )


@asynccontextmanager
async def open_services(
    settings: Settings, gateway: PaymentGateway | None = None, resolver: Resolver | None = None
) -> AsyncIterator[Services]:
    """``resolver``: where webhook hosts are looked up (tests script DNS answers); the system's by default."""
    db = await open_database(settings)
    sender = HttpWebhookSender()
    try:
        async with (
            nullcontext(gateway) if gateway is not None else payment_gateway(settings) as chosen,
            carrier(settings) as shipping,
        ):
            yield build_services(settings, db, chosen, sender, shipping, resolver)
    finally:
        await sender.close()
        await db.close()


def build_app(
    settings: Settings | None = None, gateway: PaymentGateway | None = None, resolver: Resolver | None = None
) -> Litestar:
    settings = settings or Settings.from_env()
    configure_logging(settings.log_format)
    return create_app(lambda: open_services(settings, gateway, resolver))
