"""Fixtures for the tests that need the service configured for Stripe: the fake Stripe server
and a service of their own (its own database and worker) pointed at it, per test module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from service.config import Settings
from tests.fakes.stripe_server import FakeStripe, fake_stripe
from tests.support.database import fresh_database
from tests.support.server import serve
from tests.support.tenants import Tenant

SECRET = "whsec_test_secret"


@pytest.fixture(scope="module")
def stripe_fake() -> Iterator[FakeStripe]:
    with fake_stripe() as fake:
        yield fake


@pytest.fixture(scope="module")
def stripe_service(stripe_fake: FakeStripe, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    from service.bootstrap import build_app

    with fresh_database() as database_url:
        settings = Settings(
            database_url=database_url, data_dir=tmp_path_factory.mktemp("stripe"), log_format="json",
            stripe_api_key="sk_test_fake", stripe_api_base=stripe_fake.url, stripe_webhook_secret=SECRET,
            worker_idle_seconds=0.05, refund_poll_after_seconds=0.5, worker_poll_every_seconds=0.2,
        )
        with serve(build_app(settings)) as url:
            yield url, database_url


@pytest.fixture
def shop(stripe_service: tuple[str, str]) -> Iterator[Tenant]:
    url, database_url = stripe_service
    tenant = Tenant(url, database_url)
    yield tenant
    tenant.close()


