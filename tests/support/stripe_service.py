"""The service set up for Stripe (the fake Stripe server through the real SDK) on a database of
its own, and Stripe events signed for it: for the tests' fixtures (tests/e2e/conftest.py) and
the modules that start one with settings of their own."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from tests.fakes.stripe_server import FakeStripe, signed_event
from tests.support.server import fresh_service

SECRET = "whsec_test_secret"


@contextmanager
def stripe_app(fake: FakeStripe, data_dir: Path, **settings: Any) -> Iterator[tuple[str, str]]:
    """The service set up for ``fake`` (its webhooks signed with ``SECRET``) on a fresh database,
    with ``settings`` laid over; its URL and its database's."""
    with fresh_service(
        data_dir=data_dir,
        log_format="json",
        stripe_api_key="sk_test_fake",
        stripe_api_base=fake.url,
        stripe_webhook_secret=SECRET,
        **settings,
    ) as service:
        yield service


def post_event(url: str, event_type: str, obj: dict, *, event_id: str, account: str | None = None) -> httpx.Response:
    """A Stripe event about ``obj`` signed with ``SECRET``, posted to the service at ``url``."""
    payload, signature = signed_event(event_type, obj, SECRET, event_id=event_id, account=account)
    return httpx.post(
        f"{url}/webhooks/stripe", content=payload, headers={"Stripe-Signature": signature, "Content-Type": "application/json"}
    )
