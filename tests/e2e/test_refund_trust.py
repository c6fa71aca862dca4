"""Refunds an attacker or a busy agent can't make pay twice, over HTTP, with the service set up
for Stripe (the real SDK against the fake Stripe server): single-use retries under 20 concurrent
clicks, gateway accounts bound to one merchant, and signed gateway events checked against our
own record before they move anything."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.fakes.stripe_server import FakeStripe
from tests.support.flows import received_return
from tests.support.stripe_service import SECRET, post_event, stripe_app
from tests.support.tenants import Tenant
from tests.support.waiting import eventually


def _case(shop: Tenant, case_id: str) -> dict:
    return shop.agent.get(f"/admin/v1/cases/{case_id}").json()


def _paid_at_stripe(fake: FakeStripe, refund_ids: set[str], account: str | None = None) -> list[dict]:
    return [r for r in fake.refunds(account) if r["metadata"].get("refund_id") in refund_ids]


# ----------------------------------------------------------------------------- retries


def test_twenty_concurrent_retries_of_one_failed_refund_pay_once(shop: Tenant, stripe_fake: FakeStripe) -> None:
    stripe_fake.set_next_status("failed")
    case = received_return(shop, stripe_fake, amount=1500)
    failed = eventually(lambda: [r for r in _case(shop, case["id"])["refunds"] if r["status"] == "failed"])[0]

    def click(_: int) -> httpx.Response:
        return shop.agent.post(f"/admin/v1/refunds/{failed['id']}/retry")

    with ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(click, range(20)))
    assert sorted(a.status_code for a in answers) == [201] + [409] * 19
    retried = next(a.json() for a in answers if a.status_code == 201)
    refused = [a.json() for a in answers if a.status_code == 409]
    assert {p["code"] for p in refused} == {"refund_already_retried"}
    assert {p["retried_by"] for p in refused} == {retried["id"]}

    closed = eventually(lambda: (c := _case(shop, case["id"]))["state"] == "closed" and c)
    assert sorted(r["status"] for r in closed["refunds"]) == ["failed", "succeeded"]
    at_stripe = _paid_at_stripe(stripe_fake, {r["id"] for r in closed["refunds"]})
    assert len(at_stripe) == 2, "the failed attempt and exactly one retry reached Stripe"
    assert [r["amount"] for r in at_stripe if r["status"] == "succeeded"] == [failed["amount"]]

    again = shop.agent.post(f"/admin/v1/refunds/{failed['id']}/retry")
    assert again.status_code == 409 and again.json()["code"] == "refund_already_retried"
    succeeded = shop.agent.post(f"/admin/v1/refunds/{retried['id']}/retry")
    assert succeeded.status_code == 409 and succeeded.json()["code"] == "invalid_transition"
    assert len(_case(shop, case["id"])["refunds"]) == 2
    events = [e["type"] for e in shop.agent.get(f"/admin/v1/cases/{case['id']}/events").json()["items"]]
    assert events.count("refund_retried") == 1


# ----------------------------------------------------------------------------- gateway accounts


def test_another_merchant_can_neither_bind_nor_refund_on_an_account(
    stripe_service: tuple[str, str], stripe_fake: FakeStripe
) -> None:
    url, database_url = stripe_service
    a, b = Tenant(url, database_url), Tenant(url, database_url)
    account = f"acct_{secrets.token_hex(6)}"
    try:
        assert a.admin.put("/admin/v1/gateway-account", json={"account": account}).status_code == 200
        taken = b.admin.put("/admin/v1/gateway-account", json={"account": account})
        assert taken.status_code == 409 and taken.json()["code"] == "gateway_account_taken"
        assert b.admin.get("/admin/v1/gateway-account").json() == {"account": None}, "nothing changed for B"
        assert a.admin.get("/admin/v1/gateway-account").json() == {"account": account}

        # A's payment lives on A's account; B registers an order pointing at it and refunds it
        pi = f"pi_{a.merchant_id}_1999"
        stripe_fake.add_payment_intent(pi, amount=1999 + 495, account=account)
        mine = received_return(a, stripe_fake, pi=pi)
        case = received_return(b, stripe_fake, pi=pi)
        failed = eventually(lambda: [r for r in _case(b, case["id"])["refunds"] if r["status"] == "failed"])[0]
        assert "resource_missing" in failed["failure_reason"], "B's refund went to the platform, where A's payment is not"
        closed = eventually(lambda: (c := _case(a, mine["id"]))["state"] == "closed" and c)
        on_a = stripe_fake.refunds(account)
        assert [r["metadata"]["refund_id"] for r in on_a] == [closed["refunds"][0]["id"]], "only A's own refund"
    finally:
        a.close()
        b.close()


def test_unbinding_frees_the_account(stripe_service: tuple[str, str]) -> None:
    url, database_url = stripe_service
    a, b = Tenant(url, database_url), Tenant(url, database_url)
    account = f"acct_{secrets.token_hex(6)}"
    try:
        assert a.admin.put("/admin/v1/gateway-account", json={"account": account}).status_code == 200
        assert a.admin.put("/admin/v1/gateway-account", json={"account": account}).status_code == 200, "again: no change"
        assert a.admin.put("/admin/v1/gateway-account", json={"account": None}).status_code == 200
        assert b.admin.put("/admin/v1/gateway-account", json={"account": account}).status_code == 200
        assert a.agent.get("/admin/v1/gateway-account").status_code == 403, "admins only"
    finally:
        a.close()
        b.close()


def test_concurrent_binds_of_one_account_leave_one_owner(stripe_service: tuple[str, str]) -> None:
    url, database_url = stripe_service
    tenants = [Tenant(url, database_url) for _ in range(10)]
    account = f"acct_{secrets.token_hex(6)}"
    try:
        with ThreadPoolExecutor(10) as pool:
            answers = list(pool.map(lambda t: t.admin.put("/admin/v1/gateway-account", json={"account": account}), tenants))
        assert sorted(a.status_code for a in answers) == [200] + [409] * 9
        owners = [t for t in tenants if t.admin.get("/admin/v1/gateway-account").json()["account"] == account]
        assert len(owners) == 1
    finally:
        for tenant in tenants:
            tenant.close()


# ----------------------------------------------------------------------------- gateway events


@pytest.fixture(scope="module")
def quiet_service(stripe_fake: FakeStripe, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """The service for Stripe with no worker: its refunds stay pending, their gateway id unknown,
    so only webhooks can move them."""
    with stripe_app(stripe_fake, tmp_path_factory.mktemp("quiet"), run_worker=False) as service:
        yield service


@pytest.fixture
def quiet_shop(quiet_service: tuple[str, str]) -> Iterator[Tenant]:
    tenant = Tenant(*quiet_service)
    yield tenant
    tenant.close()


def _ignored_count(url: str, reason: str) -> float:
    total = 0.0
    for line in httpx.get(f"{url}/metrics").text.splitlines():
        if line.startswith("returns_gateway_reports_ignored_total{") and f'reason="{reason}"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_a_signed_event_that_does_not_match_our_refund_changes_nothing(
    quiet_service: tuple[str, str], quiet_shop: Tenant, stripe_fake: FakeStripe
) -> None:
    url, _ = quiet_service
    case = received_return(quiet_shop, stripe_fake, amount=1500)
    ours = case["refunds"][0]
    assert ours["status"] == "pending" and ours["gateway_refund_id"] is None
    honest = {
        "id": "re_" + secrets.token_hex(6),
        "object": "refund",
        "amount": ours["amount"],
        "currency": "eur",
        "status": "succeeded",
        "metadata": {"refund_id": ours["id"]},
        "created": 1,
    }
    before = {reason: _ignored_count(url, reason) for reason in ("amount_mismatch", "currency_mismatch", "unknown_refund")}

    forged = [
        ({**honest, "amount": ours["amount"] + 1}, None, "amount_mismatch"),
        ({**honest, "amount": 1}, None, "amount_mismatch"),
        ({**honest, "currency": "usd"}, None, "currency_mismatch"),
        (honest, "acct_attacker", "unknown_refund"),  # the same refund, reported from another account
    ]
    for index, (refund, account, _) in enumerate(forged):
        event_id = f"evt_forged_{secrets.token_hex(4)}_{index}"
        answer = post_event(url, "refund.updated", refund, event_id=event_id, account=account)
        assert answer.status_code == 200, answer.text
        now = _case(quiet_shop, case["id"])
        assert now["refunds"] == [ours] and now["state"] == "refund_pending", f"event {index} moved it"
    after = {reason: _ignored_count(url, reason) for reason in before}
    assert after["amount_mismatch"] - before["amount_mismatch"] == 2
    assert after["currency_mismatch"] - before["currency_mismatch"] == 1
    assert after["unknown_refund"] - before["unknown_refund"] >= 1

    assert post_event(url, "refund.updated", honest, event_id=f"evt_honest_{secrets.token_hex(4)}").status_code == 200
    closed = _case(quiet_shop, case["id"])
    assert closed["state"] == "closed" and closed["refunds"][0]["gateway_refund_id"] == honest["id"]

    # once we know the gateway's id, a report naming another id for our refund moves nothing
    other = {**honest, "id": "re_" + secrets.token_hex(6), "status": "failed"}
    assert post_event(url, "refund.updated", other, event_id=f"evt_other_{secrets.token_hex(4)}").status_code == 200
    assert _case(quiet_shop, case["id"])["refunds"][0]["status"] == "succeeded"


@pytest.mark.parametrize(
    "refund",
    [
        {"object": "refund", "amount": 100, "currency": "eur", "status": "succeeded", "metadata": {}},  # no id
        {"id": "re_x", "object": "refund", "currency": "eur", "status": "succeeded"},  # no amount
        {"id": "re_x", "object": "refund", "amount": "100", "currency": "eur", "status": "succeeded"},
        {"id": "re_x", "object": "refund", "amount": 100, "status": "succeeded"},  # no currency
        {"id": "re_x", "object": "refund", "amount": 100, "currency": "eur", "metadata": "rf_1"},
    ],
)
def test_a_signed_event_with_missing_fields_is_a_400(quiet_service: tuple[str, str], refund: dict) -> None:
    url, _ = quiet_service
    answer = post_event(url, "refund.updated", refund, event_id=f"evt_bad_{secrets.token_hex(4)}")
    assert answer.status_code == 400 and answer.json()["code"] == "invalid_event"


def test_a_signed_body_that_is_no_event_is_a_400(quiet_service: tuple[str, str]) -> None:
    from tests.fakes.stripe_server import sign_webhook

    url, _ = quiet_service
    for body in (
        b"[]",
        b'{"id": 5, "type": "refund.updated", "data": {"object": {}}}',
        b'{"id": "evt_1"}',
        b'{"id": "evt_2", "type": "charge.refunded", "data": {"object": {"object": "charge", "refunds": {"data": 5}}}}',
    ):
        answer = httpx.post(
            f"{url}/webhooks/stripe",
            content=body,
            headers={"Stripe-Signature": sign_webhook(body, SECRET), "Content-Type": "application/json"},
        )
        assert answer.status_code == 400 and answer.json()["code"] == "invalid_event", body
