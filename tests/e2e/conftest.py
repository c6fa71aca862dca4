"""Fixtures for the tests that need the service configured for Stripe: the fake Stripe server
and a service of their own (its own database and worker) pointed at it, per test module."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from service.config import Settings
from tests.fakes.stripe_server import FakeStripe, fake_stripe, signed_event
from tests.support.database import fresh_database
from tests.support.server import serve
from tests.support.tenants import Tenant

SECRET = "whsec_test_secret"


@contextmanager
def stripe_app(fake: FakeStripe, data_dir: Path, **settings: Any) -> Iterator[tuple[str, str]]:
    """The service set up for ``fake`` (its webhooks signed with ``SECRET``) on a fresh database,
    with ``settings`` laid over; its URL and its database's."""
    from service.bootstrap import build_app

    with fresh_database() as database_url:
        configured = Settings(
            database_url=database_url,
            data_dir=data_dir,
            log_format="json",
            stripe_api_key="sk_test_fake",
            stripe_api_base=fake.url,
            stripe_webhook_secret=SECRET,
            **settings,
        )
        with serve(build_app(configured)) as url:
            yield url, database_url


def post_event(url: str, event_type: str, obj: dict, *, event_id: str, account: str | None = None) -> httpx.Response:
    """A Stripe event about ``obj`` signed with ``SECRET``, posted to the service at ``url``."""
    payload, signature = signed_event(event_type, obj, SECRET, event_id=event_id, account=account)
    return httpx.post(
        f"{url}/webhooks/stripe", content=payload, headers={"Stripe-Signature": signature, "Content-Type": "application/json"}
    )


@pytest.fixture(scope="module")
def stripe_fake() -> Iterator[FakeStripe]:
    with fake_stripe() as fake:
        yield fake


@pytest.fixture(scope="module")
def stripe_service(stripe_fake: FakeStripe, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    with stripe_app(
        stripe_fake,
        tmp_path_factory.mktemp("stripe"),
        worker_idle_seconds=0.05,
        refund_poll_after_seconds=0.5,
        worker_poll_every_seconds=0.2,
    ) as service:
        yield service


@pytest.fixture
def shop(stripe_service: tuple[str, str]) -> Iterator[Tenant]:
    url, database_url = stripe_service
    tenant = Tenant(url, database_url)
    yield tenant
    tenant.close()
