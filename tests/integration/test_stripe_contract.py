"""A contract test against real Stripe test mode: the adapter's assumptions hold on the real API.
Skipped unless ``STRIPE_API_KEY`` is a test-mode key (``sk_test_…``) and Stripe is reachable."""

from __future__ import annotations

import os
import secrets
from datetime import UTC, datetime, timedelta

import pytest

KEY = os.environ.get("STRIPE_API_KEY", "")
pytestmark = pytest.mark.skipif(not KEY.startswith("sk_test_"), reason="set STRIPE_API_KEY=sk_test_… to run against Stripe")


async def test_refund_idempotency_and_listing_on_real_stripe() -> None:
    import stripe

    from adapters.gateways.stripe_gateway import StripeGateway

    client = stripe.StripeClient(KEY, http_client=stripe.HTTPXClient())
    intent = await client.v1.payment_intents.create_async(
        params={
            "amount": 1000,
            "currency": "eur",
            "payment_method": "pm_card_visa",
            "confirm": True,
            "automatic_payment_methods": {"enabled": True, "allow_redirects": "never"},
        }
    )
    gateway = StripeGateway(KEY)
    refund_id, key = f"rf_contract_{secrets.token_hex(4)}", f"contract-{secrets.token_hex(8)}"
    first = await gateway.create_refund(
        payment_reference=intent.id, amount=300, currency="EUR", refund_id=refund_id, idempotency_key=key
    )
    again = await gateway.create_refund(
        payment_reference=intent.id, amount=300, currency="EUR", refund_id=refund_id, idempotency_key=key
    )
    assert again.gateway_refund_id == first.gateway_refund_id and first.refund_id == refund_id
    assert first.status in ("pending", "succeeded")
    now = datetime.now(UTC)
    listed = [
        r async for r in gateway.list_refunds(created_from=now - timedelta(minutes=5), created_to=now + timedelta(minutes=1))
    ]
    assert first.gateway_refund_id in {r.gateway_refund_id for r in listed}
