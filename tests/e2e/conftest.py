"""Fixtures for the tests that need the service configured for Stripe: the fake Stripe server
and a service of their own (its own database and worker) pointed at it, per test module
(``tests/support/stripe_service.py`` starts it)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fakes.stripe_server import FakeStripe, fake_stripe
from tests.support.stripe_service import stripe_app
from tests.support.tenants import Tenant


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


@pytest.fixture
def merchants(stripe_service: tuple[str, str]) -> Iterator[tuple[Tenant, Tenant]]:
    """Two merchants on the platform's Stripe account: neither names a Connect account of its own."""
    pair = (Tenant(*stripe_service), Tenant(*stripe_service))
    yield pair
    for tenant in pair:
        tenant.close()
