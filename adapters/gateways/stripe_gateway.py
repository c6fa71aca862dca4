"""Refunds through Stripe with the official SDK (async calls on ``StripeClient``): refunds are
made against the order's PaymentIntent with our refund id in ``metadata``, an optional Connect
account per merchant, and the caller's idempotency key, which the SDK keeps across its own
network retries."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import stripe

from adapters.gateways.stripe_webhooks import refund_from_stripe
from service.ports import GatewayError, GatewayRefund


class StripeGateway:
    name = "stripe"

    def __init__(self, api_key: str, *, api_base: str | None = None, max_network_retries: int = 2) -> None:
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
        options: dict[str, Any] = {"idempotency_key": idempotency_key}
        if account:
            options["stripe_account"] = account
        with _translated_errors():
            refund = await self.client.v1.refunds.create_async(
                params={"payment_intent": payment_reference, "amount": amount, "metadata": {"refund_id": refund_id}},
                options=options,  # type: ignore[arg-type]
            )
        return _refund(refund)

    async def get_refund(self, gateway_refund_id: str, *, account: str | None = None) -> GatewayRefund:
        with _translated_errors():
            refund = await self.client.v1.refunds.retrieve_async(
                gateway_refund_id, options={"stripe_account": account} if account else None  # type: ignore[arg-type]
            )
        return _refund(refund)

    async def list_refunds(
        self, *, created_from: datetime, created_to: datetime, account: str | None = None
    ) -> AsyncIterator[GatewayRefund]:
        params = {"created": {"gte": int(created_from.timestamp()), "lte": int(created_to.timestamp())}, "limit": 100}
        with _translated_errors():
            page = await self.client.v1.refunds.list_async(
                params=params, options={"stripe_account": account} if account else None  # type: ignore[arg-type]
            )
            async for refund in page.auto_paging_iter():
                yield _refund(refund)


class _translated_errors:  # noqa: N801 - used as a context manager
    """Stripe's errors as ``GatewayError``: retryable for what a later try may fix."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, _: object) -> bool:
        if error is None or not isinstance(error, stripe.StripeError):
            return False
        status = error.http_status or 0
        retryable = isinstance(error, stripe.APIConnectionError) or status in (409, 429) or status >= 500
        code = error.code or (error.error.type if error.error else None) or type(error).__name__
        raise GatewayError(error.user_message or str(error), code=code, retryable=retryable) from error


def _refund(refund: stripe.Refund) -> GatewayRefund:
    return refund_from_stripe(refund.to_dict())
