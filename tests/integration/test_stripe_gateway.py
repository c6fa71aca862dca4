"""The Stripe adapter through the real SDK against the fake Stripe server on 127.0.0.1: refunds,
idempotency under retries and lost answers, error mapping, listing, connected accounts; and the
fake's own Stripe behaviours (pages, parameters, webhook signatures) checked against the SDK."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import stripe

from adapters.gateways.stripe_gateway import PAGE_SIZE, StripeGateway
from adapters.gateways.stripe_webhooks import CHARGE_EVENTS, REFUND_EVENTS, StripeWebhookVerifier
from service.ports import GatewayError, GatewayEvent, GatewayRefund, InvalidWebhook
from tests.fakes.stripe_server import FakeStripe, sign_webhook, signed_event

CAPTURED = 5000


@pytest.fixture
def fake() -> Iterator[FakeStripe]:
    with FakeStripe() as server:
        server.add_payment_intent("pi_1", amount=CAPTURED, currency="eur")
        yield server


def _gateway(fake: FakeStripe, retries: int = 0) -> StripeGateway:
    return StripeGateway("sk_test_fake", api_base=fake.url, max_network_retries=retries)


async def _refund(
    gateway: StripeGateway, amount: int = 100, key: str = "rf_1:1", *, pi: str = "pi_1", account: str | None = None
) -> GatewayRefund:
    return await gateway.create_refund(
        payment_reference=pi,
        amount=amount,
        currency="EUR",
        refund_id=key.split(":", maxsplit=1)[0],
        idempotency_key=key,
        account=account,
    )


def _posts(fake: FakeStripe) -> list[str | None]:
    """The idempotency key of every refund creation the fake received."""
    return [key for method, path, key in fake.requests if (method, path) == ("POST", "/v1/refunds")]


# --------------------------------------------------------------------------- making refunds


async def test_a_refund_carries_our_id_and_comes_back_in_our_terms(fake: FakeStripe) -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    refund = await _refund(_gateway(fake), 1234, "rf_abc:1")
    [stored] = fake.refunds()
    assert refund == GatewayRefund(
        gateway_refund_id=stored["id"],
        status="succeeded",
        amount=1234,
        currency="EUR",
        payment_reference="pi_1",
        created_at=datetime.fromtimestamp(stored["created"], UTC),
        refund_id="rf_abc",
        failure_reason=None,
    )
    assert stored["id"].startswith("re_") and stored["currency"] == "eur"
    assert before <= refund.created_at <= datetime.now(UTC) and refund.created_at.tzinfo is UTC
    assert stored["metadata"] == {"refund_id": "rf_abc"} and stored["reason"] == "requested_by_customer"
    assert fake.requests == [("POST", "/v1/refunds", "rf_abc:1")]


async def test_the_same_key_twice_makes_one_refund(fake: FakeStripe) -> None:
    gateway = _gateway(fake)
    first, second = await _refund(gateway, 700), await _refund(gateway, 700)
    assert second == first
    assert [r["amount"] for r in fake.refunds()] == [700]
    assert _posts(fake) == ["rf_1:1", "rf_1:1"]


async def test_the_same_key_with_other_parameters_is_refused(fake: FakeStripe) -> None:
    gateway = _gateway(fake)
    await _refund(gateway, 100)
    with pytest.raises(GatewayError) as refused:
        await _refund(gateway, 200)
    assert refused.value.code == "idempotency_error" and refused.value.retryable is False
    assert [r["amount"] for r in fake.refunds()] == [100]


async def test_500s_then_success_is_one_refund_made_with_one_key(fake: FakeStripe) -> None:
    fake.fail_next(2, status=500)
    refund = await _refund(_gateway(fake, retries=3))
    assert refund.status == "succeeded"
    assert [r["id"] for r in fake.refunds()] == [refund.gateway_refund_id]
    assert _posts(fake) == ["rf_1:1"] * 3, "the SDK retried twice, with the same key"


async def test_the_sdk_does_not_retry_when_stripe_says_so(fake: FakeStripe) -> None:
    fake.fail_next(1, status=500, should_retry=False)
    with pytest.raises(GatewayError) as failed:
        await _refund(_gateway(fake, retries=2))
    assert failed.value.retryable is True, "the worker may still try later"
    assert len(_posts(fake)) == 1 and fake.refunds() == []


async def test_an_answer_lost_after_the_refund_was_made_is_replayed_by_the_sdk(fake: FakeStripe) -> None:
    fake.drop_connection_next(1, after_commit=True)
    refund = await _refund(_gateway(fake, retries=2))
    [stored] = fake.refunds()
    assert refund.gateway_refund_id == stored["id"] and refund.amount == 100
    assert _posts(fake) == ["rf_1:1", "rf_1:1"]


async def test_an_answer_lost_after_the_refund_was_made_is_replayed_on_a_later_try(fake: FakeStripe) -> None:
    gateway = _gateway(fake, retries=0)
    fake.drop_connection_next(1, after_commit=True)
    with pytest.raises(GatewayError) as lost:
        await _refund(gateway)
    assert lost.value.retryable is True and lost.value.code == "api_connection_error"
    assert fake.account().in_flight == set(), "the request was over before its connection dropped"
    [made] = fake.refunds()  # the gateway acted although we never heard
    again = await _refund(gateway)  # the worker's next try, with the same key
    assert again.gateway_refund_id == made["id"]
    assert [r["id"] for r in fake.refunds()] == [made["id"]]


async def test_a_connection_dropped_before_the_refund_was_made_makes_it_on_a_later_try(fake: FakeStripe) -> None:
    gateway = _gateway(fake, retries=0)
    fake.drop_connection_next(1)
    with pytest.raises(GatewayError) as lost:
        await _refund(gateway)
    assert lost.value.retryable is True
    assert fake.refunds() == []
    made = await _refund(gateway)
    assert [r["id"] for r in fake.refunds()] == [made.gateway_refund_id]


@pytest.mark.parametrize(
    ("status", "code"),
    [(500, None), (503, None), (429, "rate_limit"), (409, "idempotency_error")],
)
async def test_failures_that_a_later_try_may_fix_are_retryable(fake: FakeStripe, status: int, code: str | None) -> None:
    fake.fail_next(1, status=status)
    with pytest.raises(GatewayError) as failed:
        await _refund(_gateway(fake, retries=0))
    assert failed.value.retryable is True
    assert failed.value.code == (code or "api_error")
    assert fake.refunds() == []


async def test_the_same_key_while_the_first_request_runs_is_409_and_retryable(fake: FakeStripe) -> None:
    gateway = _gateway(fake, retries=0)
    fake.delay_next(0.5)
    first = asyncio.create_task(_refund(gateway))
    while not _posts(fake):
        await asyncio.sleep(0.01)
    with pytest.raises(GatewayError) as in_flight:
        await _refund(gateway)
    assert in_flight.value.retryable is True and in_flight.value.code == "idempotency_error"
    made = await first
    assert [r["id"] for r in fake.refunds()] == [made.gateway_refund_id]


async def test_connection_refused_is_retryable() -> None:
    gateway = StripeGateway("sk_test_fake", api_base="http://127.0.0.1:9", max_network_retries=0)
    with pytest.raises(GatewayError) as failed:
        await gateway.create_refund(payment_reference="pi_1", amount=1, currency="EUR", refund_id="rf", idempotency_key="k")
    assert failed.value.retryable is True and failed.value.code == "api_connection_error"


async def test_over_refund_and_unknown_objects_are_final(fake: FakeStripe) -> None:
    gateway = _gateway(fake, retries=2)
    await _refund(gateway, CAPTURED - 100, "rf_a:1")
    with pytest.raises(GatewayError) as too_much:
        await _refund(gateway, 101, "rf_b:1")
    assert too_much.value.code == "amount_too_large" and too_much.value.retryable is False
    assert "(100)" in str(too_much.value)
    with pytest.raises(GatewayError) as unknown_payment:
        await _refund(gateway, 1, "rf_c:1", pi="pi_nope")
    assert unknown_payment.value.code == "resource_missing" and unknown_payment.value.retryable is False
    with pytest.raises(GatewayError) as unknown_refund:
        await gateway.get_refund("re_nope")
    assert unknown_refund.value.code == "resource_missing" and unknown_refund.value.retryable is False
    assert len(_posts(fake)) == 3, "the SDK retried none of the refusals"


async def test_a_failed_refund_gives_its_amount_back(fake: FakeStripe) -> None:
    gateway = _gateway(fake)
    fake.set_next_status("failed")
    failed = await _refund(gateway, CAPTURED, "rf_a:1")
    assert failed.status == "failed" and failed.failure_reason == "lost_or_stolen_card"
    again = await _refund(gateway, CAPTURED, "rf_b:1")
    assert again.status == "succeeded"


async def test_status_changes_are_read_back(fake: FakeStripe) -> None:
    fake.set_next_status("pending", "requires_action")
    gateway = _gateway(fake)
    pending, needs_action = await _refund(gateway, 10, "rf_a:1"), await _refund(gateway, 20, "rf_b:1")
    assert (pending.status, needs_action.status) == ("pending", "requires_action")
    fake.set_status(pending.gateway_refund_id, "failed", "expired_or_canceled_card")
    fake.set_status(needs_action.gateway_refund_id, "canceled")
    read = [await gateway.get_refund(r.gateway_refund_id) for r in (pending, needs_action)]
    assert [(r.status, r.failure_reason, r.refund_id) for r in read] == [
        ("failed", "expired_or_canceled_card", "rf_a"),
        ("canceled", None, "rf_b"),
    ]


# --------------------------------------------------------------------------- connected accounts


async def test_connected_accounts_are_kept_apart(fake: FakeStripe) -> None:
    fake.add_payment_intent("pi_shop", amount=300, currency="usd", account="acct_shop")
    gateway = _gateway(fake)
    made = await _refund(gateway, 300, "rf_c:1", pi="pi_shop", account="acct_shop")
    assert made.currency == "USD"
    assert [r["id"] for r in fake.refunds("acct_shop")] == [made.gateway_refund_id] and fake.refunds() == []
    assert (await gateway.get_refund(made.gateway_refund_id, account="acct_shop")).amount == 300
    with pytest.raises(GatewayError) as elsewhere:
        await gateway.get_refund(made.gateway_refund_id)
    assert elsewhere.value.code == "resource_missing"
    with pytest.raises(GatewayError) as on_platform:
        await _refund(gateway, 1, "rf_d:1", pi="pi_shop")
    assert on_platform.value.code == "resource_missing", "the platform has no such payment"
    with pytest.raises(GatewayError) as nothing_left:
        await _refund(gateway, 1, "rf_e:1", pi="pi_shop", account="acct_shop")
    assert nothing_left.value.code == "amount_too_large"


# --------------------------------------------------------------------------- listing


def _at(timestamp: int) -> datetime:
    return datetime.fromtimestamp(timestamp, UTC)


async def test_listing_pages_through_a_created_range(fake: FakeStripe) -> None:
    start = int(datetime.now(UTC).timestamp()) - 10_000
    fake.add_payment_intent("pi_many", amount=10**7)
    inside = [fake.add_external_refund("pi_many", 10 + i, created=start + i // 2) for i in range(250)]
    fake.add_external_refund("pi_many", 1, created=start - 1)  # just before the range
    fake.add_external_refund("pi_many", 2, created=start + 125)  # at its end, which is excluded
    listed = [r async for r in _gateway(fake).list_refunds(created_from=_at(start), created_to=_at(start + 125))]
    assert [r.gateway_refund_id for r in listed] == [r["id"] for r in reversed(inside)], "every one, newest first, once"
    assert all(r.created_at.tzinfo is UTC for r in listed)
    pages = [r for r in fake.requests if r[:2] == ("GET", "/v1/refunds")]
    assert len(pages) == 3  # 100 + 100 + 50


async def test_listing_rounds_a_fractional_range_to_stripes_seconds(fake: FakeStripe) -> None:
    start = int(datetime.now(UTC).timestamp()) - 100
    made = [fake.add_external_refund("pi_1", 1, created=start + i) for i in range(4)]
    listed = [
        r.gateway_refund_id
        async for r in _gateway(fake).list_refunds(
            created_from=_at(start) + timedelta(milliseconds=500), created_to=_at(start + 2) + timedelta(milliseconds=500)
        )
    ]
    assert listed == [made[2]["id"], made[1]["id"]], "dated start+1 and start+2 fall in [start+0.5, start+2.5)"


async def test_listing_a_connected_account_keeps_it_on_every_page(fake: FakeStripe) -> None:
    now = int(datetime.now(UTC).timestamp())
    mine = [fake.add_external_refund("pi_x", 5, created=now - 100, account="acct_a") for _ in range(150)]
    fake.add_external_refund("pi_x", 5, created=now - 100)  # the platform's
    fake.add_external_refund("pi_x", 5, created=now - 100, account="acct_b")
    listed = [
        r.gateway_refund_id
        async for r in _gateway(fake).list_refunds(created_from=_at(now - 200), created_to=_at(now), account="acct_a")
    ]
    assert sorted(listed) == sorted(r["id"] for r in mine)


# --------------------------------------------------------------------------- the fake itself


def test_the_fake_lists_pages_like_stripe(fake: FakeStripe) -> None:
    made = [fake.add_external_refund("pi_1", 1, created=1_700_000_000 + i) for i in range(5)]
    with httpx.Client(base_url=fake.url) as http:
        first = http.get("/v1/refunds", params={"limit": 2}).json()
        second = http.get("/v1/refunds", params={"limit": 2, "starting_after": first["data"][-1]["id"]}).json()
        last = http.get("/v1/refunds", params={"limit": 2, "starting_after": second["data"][-1]["id"]}).json()
        too_big = http.get("/v1/refunds", params={"limit": 101})
    assert (first["object"], first["url"], first["has_more"]) == ("list", "/v1/refunds", True)
    assert [r["id"] for page in (first, second, last) for r in page["data"]] == [r["id"] for r in reversed(made)]
    assert (second["has_more"], last["has_more"]) == (True, False)
    assert too_big.status_code == 400 and too_big.json()["error"]["param"] == "limit"


def test_the_fake_refuses_unknown_parameters_and_replays_with_a_header(fake: FakeStripe) -> None:
    with httpx.Client(base_url=fake.url) as http:
        unknown = http.post("/v1/refunds", data={"payment_intent": "pi_1", "amont": "5"})
        made = http.post("/v1/refunds", data={"payment_intent": "pi_1", "amount": "5"}, headers={"Idempotency-Key": "k"})
        replayed = http.post("/v1/refunds", data={"payment_intent": "pi_1", "amount": "5"}, headers={"Idempotency-Key": "k"})
    assert unknown.status_code == 400 and unknown.json()["error"]["code"] == "parameter_unknown"
    assert made.status_code == 200 and "Idempotent-Replayed" not in made.headers
    assert replayed.json() == made.json() and replayed.headers["Idempotent-Replayed"] == "true"


def test_webhook_signatures_verify_with_the_sdk_and_the_service() -> None:
    refund = {
        "id": "re_1",
        "object": "refund",
        "amount": 5,
        "currency": "eur",
        "status": "succeeded",
        "payment_intent": "pi_1",
        "created": 1_700_000_000,
        "metadata": {"refund_id": "rf_1"},
    }
    payload, header = signed_event("refund.updated", refund, "whsec_test")
    event = stripe.Webhook.construct_event(payload, header, "whsec_test")
    assert (event.type, event.data.object.id) == ("refund.updated", "re_1")
    verified = StripeWebhookVerifier("whsec_test").verify(payload, header, datetime.now(UTC))
    assert [r.refund_id for r in verified.refunds] == ["rf_1"]
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(payload, sign_webhook(payload, "whsec_other"), "whsec_test")
    old = sign_webhook(payload, "whsec_test", timestamp=int(datetime.now(UTC).timestamp()) - 3600)
    with pytest.raises(InvalidWebhook):
        StripeWebhookVerifier("whsec_test").verify(payload, old, datetime.now(UTC))
    assert json.loads(payload)["data"]["object"] == refund


async def test_a_charges_refunds_are_listed_on_its_account_every_page(fake: FakeStripe) -> None:
    made = [fake.add_external_refund("pi_1", 1, created=1_700_000_000 + i) for i in range(PAGE_SIZE + 5)]
    fake.add_external_refund("pi_2", 1)  # another charge
    fake.add_payment_intent("pi_1", amount=CAPTURED, account="acct_other")
    theirs = fake.add_external_refund("pi_1", 1, account="acct_other")
    gateway = _gateway(fake)

    listed = [r.gateway_refund_id async for r in gateway.charge_refunds("ch_1")]
    assert listed == [r["id"] for r in made[::-1]], "every page, newest first"
    assert [path for method, path, _ in fake.requests if method == "GET"] == ["/v1/refunds"] * 2
    assert [r.gateway_refund_id async for r in gateway.charge_refunds("ch_1", account="acct_other")] == [theirs["id"]]
    with pytest.raises(GatewayError) as missing:
        [r async for r in gateway.charge_refunds("ch_1", account="acct_elsewhere")]
    assert missing.value.code == "resource_missing" and not missing.value.retryable


def test_every_refund_event_is_read_and_a_charge_that_does_not_list_its_refunds_is_named(fake: FakeStripe) -> None:
    verifier = StripeWebhookVerifier("whsec_test")
    refund = fake.add_external_refund("pi_1", 700, metadata={"refund_id": "rf_1"})
    charge = fake.charge("pi_1")

    def read(event_type: str, obj: dict) -> GatewayEvent:
        return verifier.verify(*signed_event(event_type, obj, "whsec_test"), datetime.now(UTC))

    for event_type in ("refund.created", "refund.updated", "refund.failed", "charge.refund.updated"):
        event = read(event_type, refund)
        assert [(r.gateway_refund_id, r.refund_id) for r in event.refunds] == [(refund["id"], "rf_1")], event_type
        assert event.unlisted_charges == []
    listing = {"object": "list", "data": [refund], "has_more": False, "url": "/v1/charges/ch_1/refunds"}
    assert "refunds" not in charge
    assert (read("charge.refunded", charge).refunds, read("charge.refunded", charge).unlisted_charges) == ([], ["ch_1"])
    cut_short = read("charge.refunded", charge | {"refunds": listing | {"has_more": True}})
    assert (cut_short.refunds, cut_short.unlisted_charges) == ([], ["ch_1"]), "the first page only: all are asked"
    complete = read("charge.refunded", charge | {"refunds": listing})
    assert [r.gateway_refund_id for r in complete.refunds] == [refund["id"]] and complete.unlisted_charges == []
    for event_type, obj in (("charge.succeeded", charge), ("charge.refunded", refund), ("refund.updated", charge)):
        assert read(event_type, obj).refunds == read(event_type, obj).unlisted_charges == [], "no refund reported"
    with pytest.raises(InvalidWebhook) as unreadable:
        read("charge.refunded", {**charge, "id": None})
    assert unreadable.value.code == "invalid_event"


def test_the_contract_names_every_event_read() -> None:
    contract = (Path(__file__).resolve().parents[2] / "docs" / "contract.md").read_text()
    assert [kind for kind in sorted(REFUND_EVENTS | CHARGE_EVENTS) if f"`{kind}`" not in contract] == []


def test_the_fake_cancels_only_refunds_that_require_action() -> None:
    import stripe

    from tests.fakes.stripe_server import fake_stripe as running_fake

    with running_fake() as fake:
        fake.add_payment_intent("pi_c", amount=1000)
        fake.set_next_status("requires_action", "succeeded")
        client = stripe.StripeClient(
            "sk_test_fake", base_addresses={"api": fake.url}, http_client=stripe.HTTPXClient(allow_sync_methods=True)
        )
        waiting = client.v1.refunds.create(params={"payment_intent": "pi_c", "amount": 100})
        done = client.v1.refunds.create(params={"payment_intent": "pi_c", "amount": 200})
        assert client.v1.refunds.cancel(waiting.id).status == "canceled"
        with pytest.raises(stripe.InvalidRequestError) as refused:
            client.v1.refunds.cancel(done.id)
        assert refused.value.code == "charge_refund_cancel_invalid"
