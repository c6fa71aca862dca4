"""Refunds through Stripe with the official SDK (the async calls of ``StripeClient`` over httpx).

A refund is made against the order's PaymentIntent (Stripe takes the currency from the payment)
with our refund id in ``metadata[refund_id]``, so a refund can be matched to ours even when its
answer was lost. The caller's idempotency key goes on every call, and the SDK keeps it across
its own network retries: a retry after a timeout replays the refund Stripe made, never a second
one. A merchant's connected account, when it has one, goes in ``Stripe-Account``.
"""

from __future__ import annotations

import math
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from contextlib import aclosing, contextmanager
from datetime import datetime
from typing import Any

import stripe

from adapters.gateways.stripe_webhooks import refund_from_stripe
from service.ports import GatewayError, GatewayRefund

PAGE_SIZE = 100  # Stripe's largest page


class StripeGateway:
    name = "stripe"

    def __init__(self, api_key: str, *, api_base: str | None = None, max_network_retries: int = 2) -> None:
        """``api_base`` points the SDK elsewhere than api.stripe.com (the tests' fake server)."""
        self.client = stripe.StripeClient(
            api_key,
            base_addresses={"api": api_base} if api_base else None,
            max_network_retries=max_network_retries,
            http_client=stripe.HTTPXClient(),
        )

    async def create_refund(
        self,
        *,
        payment_reference: str,
        amount: int,
        currency: str,
        refund_id: str,
        idempotency_key: str,
        account: str | None = None,
    ) -> GatewayRefund:
        options: stripe.RequestOptions = {"idempotency_key": idempotency_key}
        if account:
            options["stripe_account"] = account
        with _gateway_errors():
            refund = await self.client.v1.refunds.create_async(
                params={
                    "payment_intent": payment_reference,
                    "amount": amount,
                    "reason": "requested_by_customer",
                    "metadata": {"refund_id": refund_id},
                },
                options=options,
            )
            return refund_from_stripe(refund.to_dict())

    async def get_refund(self, gateway_refund_id: str, *, account: str | None = None) -> GatewayRefund:
        with _gateway_errors():
            refund = await self.client.v1.refunds.retrieve_async(gateway_refund_id, options=_on(account))
            return refund_from_stripe(refund.to_dict())

    async def find_refund(self, *, payment_reference: str, refund_id: str, account: str | None = None) -> GatewayRefund | None:
        """Our refund among the payment's (Stripe lists them by ``payment_intent``), by the
        ``metadata[refund_id]`` every refund we make carries."""
        async with aclosing(self._refunds({"payment_intent": payment_reference}, account)) as refunds:
            async for found in refunds:
                if found.refund_id == refund_id:
                    return found
        return None

    def list_refunds(
        self, *, created_from: datetime, created_to: datetime, account: str | None = None
    ) -> AsyncIterator[GatewayRefund]:
        """Refunds created in ``[created_from, created_to)``, newest first, every page. Stripe counts
        whole seconds, so the bounds are rounded up: a refund of second ``s`` is dated ``s``."""
        created = {"gte": math.ceil(created_from.timestamp()), "lt": math.ceil(created_to.timestamp())}
        return self._refunds({"created": created}, account)

    def charge_refunds(self, charge: str, *, account: str | None = None) -> AsyncIterator[GatewayRefund]:
        """The charge's refunds, every page (``Refund.list(charge=…)``): a charge object leaves
        them out since API version 2022-11-15, and listed at most ten before."""
        return self._refunds({"charge": charge}, account)

    async def _refunds(self, params: dict[str, Any], account: str | None) -> AsyncGenerator[GatewayRefund, None]:
        """The refunds Stripe lists for ``params``, page after page, in our terms."""
        with _gateway_errors():
            listing: Any = {**params, "limit": PAGE_SIZE}  # one of the SDK's ListParams, by what ``params`` names
            page = await self.client.v1.refunds.list_async(params=listing, options=_on(account))
            async for refund in page.auto_paging_iter():
                yield refund_from_stripe(refund.to_dict())


def _on(account: str | None) -> stripe.RequestOptions:
    return {"stripe_account": account} if account else {}


@contextmanager
def _gateway_errors() -> Iterator[None]:
    """Stripe's errors as ``GatewayError``, retryable when a later try with the same key may work:
    no connection, 409 (the same key still in flight), 429 (rate limited: slow down) and 5xx."""
    try:
        yield
    except stripe.APIConnectionError as error:
        raise GatewayError(error.user_message or str(error), code="api_connection_error", retryable=True) from error
    except stripe.StripeError as error:
        status = error.http_status or 0
        details = error.error
        code = error.code or (details.code or details.type if details else None)
        retryable = status == 409 or status >= 500
        raise GatewayError(
            error.user_message or str(error),
            code=code,
            retryable=retryable,
            rate_limited=status == 429,
            retry_after=_seconds(error.headers.get("retry-after") if error.headers else None),
        ) from error
    except ValueError as error:  # an answer that is not a refund we can read: ask again later
        raise GatewayError(f"the gateway's answer is not a refund: {error}", code="malformed_answer", retryable=True) from error


def _seconds(value: str | None) -> float | None:
    """``Retry-After`` in seconds (Stripe sends seconds, never an HTTP date)."""
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None
