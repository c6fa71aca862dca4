"""Every Stripe event that reports a refund moves it, over HTTP, with the service set up for Stripe
(the real SDK against the fake Stripe server) and no polling: only the events can settle a
submitted refund here. ``charge.refunded`` whose charge does not list its refunds (Stripe's API
since 2022-11-15) has them fetched from Stripe on the event's account; a replayed event, or one
about another account's refund, moves nothing."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest

from tests.fakes.stripe_server import FakeStripe
from tests.support.flows import received_return
from tests.support.stripe_service import post_event, stripe_app
from tests.support.tenants import Tenant
from tests.support.waiting import eventually


@pytest.fixture(scope="module")
def stripe_service(stripe_fake: FakeStripe, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """The worker sends refunds at once but asks Stripe about them only after the default five
    minutes: a submitted refund moves by an event or not at all."""
    with stripe_app(stripe_fake, tmp_path_factory.mktemp("events"), worker_idle_seconds=0.05) as service:
        yield service


def _case(shop: Tenant, case_id: str) -> dict:
    return shop.agent.get(f"/admin/v1/cases/{case_id}").json()


def _events(shop: Tenant, case_id: str) -> list[str]:
    return [e["type"] for e in shop.agent.get(f"/admin/v1/cases/{case_id}/events").json()["items"]]


def _submitted(
    shop: Tenant, fake: FakeStripe, amount: int, *, pi: str | None = None, account: str | None = None
) -> tuple[dict, dict]:
    """A case whose refund Stripe accepted (``pending`` there, ``submitted`` here): the case and
    the refund at Stripe."""
    fake.set_next_status("pending")
    case = received_return(shop, fake, amount, pi=pi)
    refund = eventually(lambda: [r for r in _case(shop, case["id"])["refunds"] if r["status"] == "submitted"])[0]
    return case, next(r for r in fake.refunds(account) if r["id"] == refund["gateway_refund_id"])


def _evt() -> str:
    return f"evt_{secrets.token_hex(8)}"


def _list_calls(fake: FakeStripe) -> int:
    return sum(1 for method, path, _ in fake.requests if (method, path) == ("GET", "/v1/refunds"))


@pytest.mark.parametrize(
    ("event_type", "outcome"),
    [
        ("refund.created", "succeeded"),
        ("refund.updated", "succeeded"),
        ("charge.refund.updated", "succeeded"),
        ("refund.failed", "failed"),
        ("charge.refund.updated", "failed"),
    ],
)
def test_each_refund_event_moves_a_submitted_refund(
    shop: Tenant, stripe_fake: FakeStripe, stripe_service: tuple[str, str], event_type: str, outcome: str
) -> None:
    url, _ = stripe_service
    case, at_stripe = _submitted(shop, stripe_fake, 2100)
    reason = "expired_or_canceled_card" if outcome == "failed" else None
    changed = stripe_fake.set_status(at_stripe["id"], outcome, reason)

    answer = post_event(url, event_type, changed, event_id=_evt())
    assert answer.status_code == 200 and answer.json() == {"received": True, "duplicate": False}
    now = _case(shop, case["id"])
    assert [(r["status"], r["failure_reason"]) for r in now["refunds"]] == [(outcome, reason)]
    if outcome == "succeeded":
        assert now["state"] == "closed"
    else:
        assert now["state"] == "refund_pending" and _events(shop, case["id"]).count("refund_failed") == 1


@pytest.mark.parametrize("listing", ["left_out", "cut_short"])
def test_a_charge_refunded_that_does_not_list_its_refunds_is_resolved_through_stripe(
    shop: Tenant, stripe_fake: FakeStripe, stripe_service: tuple[str, str], listing: str
) -> None:
    """``left_out``: the charge as Stripe's API renders it since 2022-11-15, no ``refunds``;
    ``cut_short``: an older version's first page (``has_more``), without ours."""
    url, _ = stripe_service
    case, at_stripe = _submitted(shop, stripe_fake, 2200)
    stripe_fake.set_status(at_stripe["id"], "succeeded")
    charge = stripe_fake.charge(at_stripe["payment_intent"])
    assert "refunds" not in charge and charge["id"] == at_stripe["charge"] and charge["amount_refunded"] == at_stripe["amount"]
    if listing == "cut_short":
        charge["refunds"] = {"object": "list", "data": [], "has_more": True, "url": f"/v1/charges/{charge['id']}/refunds"}

    calls = _list_calls(stripe_fake)
    answer = post_event(url, "charge.refunded", charge, event_id=_evt())
    assert answer.status_code == 200 and answer.json()["duplicate"] is False
    assert _list_calls(stripe_fake) == calls + 1, "its refunds were asked of Stripe"
    closed = _case(shop, case["id"])
    assert closed["state"] == "closed" and [r["status"] for r in closed["refunds"]] == ["succeeded"]


def test_a_charge_refunded_listing_its_refunds_is_read_as_sent(
    shop: Tenant, stripe_fake: FakeStripe, stripe_service: tuple[str, str]
) -> None:
    url, _ = stripe_service
    case, at_stripe = _submitted(shop, stripe_fake, 2300)
    failed = stripe_fake.set_status(at_stripe["id"], "failed", "lost_or_stolen_card")
    charge = stripe_fake.charge(at_stripe["payment_intent"]) | {
        "refunds": {"object": "list", "data": [failed], "has_more": False, "url": f"/v1/charges/{failed['charge']}/refunds"}
    }
    calls = _list_calls(stripe_fake)
    assert post_event(url, "charge.refunded", charge, event_id=_evt()).status_code == 200
    assert _list_calls(stripe_fake) == calls, "nothing to ask"
    refund = _case(shop, case["id"])["refunds"][0]
    assert refund["status"] == "failed" and refund["failure_reason"] == "lost_or_stolen_card"


def test_replayed_and_overlapping_events_settle_a_refund_once(
    shop: Tenant, stripe_fake: FakeStripe, stripe_service: tuple[str, str]
) -> None:
    """Stripe redelivers, and one change comes as ``refund.updated``, ``charge.refund.updated``
    and ``charge.refunded`` at once: the refund succeeds once, the case records it once, and
    Stripe holds the one refund we made."""
    url, _ = stripe_service
    case, at_stripe = _submitted(shop, stripe_fake, 2400)
    succeeded = stripe_fake.set_status(at_stripe["id"], "succeeded")
    charge = stripe_fake.charge(at_stripe["payment_intent"])
    first = _evt()
    assert post_event(url, "charge.refunded", charge, event_id=first).json()["duplicate"] is False
    settled = _case(shop, case["id"])
    assert settled["state"] == "closed"

    answers = [post_event(url, "charge.refunded", charge, event_id=first) for _ in range(2)]
    answers += [post_event(url, kind, succeeded, event_id=_evt()) for kind in ("refund.updated", "charge.refund.updated")]
    answers += [post_event(url, "charge.refunded", charge, event_id=first)]
    assert [a.status_code for a in answers] == [200] * 5
    assert [a.json()["duplicate"] for a in answers] == [True, True, False, False, True]

    final = _case(shop, case["id"])
    assert final["refunds"] == settled["refunds"] and final["version"] == settled["version"]
    assert final["state"] == "closed" and [r["status"] for r in final["refunds"]] == ["succeeded"]
    assert _events(shop, case["id"]).count("refund_succeeded") == 2, "the record and the transition, once each"
    ours = [r for r in stripe_fake.refunds() if r["metadata"].get("refund_id") == final["refunds"][0]["id"]]
    assert [r["id"] for r in ours] == [at_stripe["id"]], "paid once"


def test_an_event_about_another_accounts_refund_moves_nothing(stripe_service: tuple[str, str], stripe_fake: FakeStripe) -> None:
    """Merchant B refunds on its connected account. Events from A's account, or the platform's,
    naming B's charge or B's refund move nothing: the charge's refunds are asked of the event's
    account (which has no such charge), and refunds are looked up on it; B's own event does."""
    url, database_url = stripe_service
    a, b = Tenant(url, database_url), Tenant(url, database_url)
    account_a, account_b = f"acct_{secrets.token_hex(6)}", f"acct_{secrets.token_hex(6)}"
    try:
        assert a.admin.put("/admin/v1/gateway-account", json={"account": account_a}).status_code == 200
        assert b.admin.put("/admin/v1/gateway-account", json={"account": account_b}).status_code == 200
        pi = f"pi_{b.merchant_id}_2500"
        stripe_fake.add_payment_intent(pi, amount=2500 + 495, account=account_b)
        case, at_stripe = _submitted(b, stripe_fake, 2500, pi=pi, account=account_b)
        succeeded = stripe_fake.set_status(at_stripe["id"], "succeeded", account=account_b)
        charge = stripe_fake.charge(pi, account=account_b)
        before = _case(b, case["id"])["refunds"]

        for account in (account_a, None):
            for kind, obj in (("charge.refunded", charge), ("charge.refund.updated", succeeded), ("refund.updated", succeeded)):
                answer = post_event(url, kind, obj, event_id=_evt(), account=account)
                assert answer.status_code == 200, answer.text
                assert _case(b, case["id"])["refunds"] == before, f"{kind} from {account or 'the platform'} moved it"

        assert post_event(url, "charge.refunded", charge, event_id=_evt(), account=account_b).status_code == 200
        assert _case(b, case["id"])["state"] == "closed"
    finally:
        a.close()
        b.close()


@pytest.mark.parametrize(("status", "answered", "code"), [(503, 503, "gateway_unavailable"), (401, 502, "gateway_error")])
def test_stripe_unable_to_list_a_charges_refunds_leaves_the_event_to_its_redelivery(
    shop: Tenant, stripe_fake: FakeStripe, stripe_service: tuple[str, str], status: int, answered: int, code: str
) -> None:
    url, _ = stripe_service
    case, at_stripe = _submitted(shop, stripe_fake, 2600)
    stripe_fake.set_status(at_stripe["id"], "succeeded")
    charge, event_id = stripe_fake.charge(at_stripe["payment_intent"]), _evt()

    stripe_fake.fail_next(status=status, should_retry=False)
    refused = post_event(url, "charge.refunded", charge, event_id=event_id)
    assert refused.status_code == answered and refused.json()["code"] == code, refused.text
    assert ("Retry-After" in refused.headers) is (answered == 503)
    assert _case(shop, case["id"])["refunds"][0]["status"] == "submitted"

    redelivered = post_event(url, "charge.refunded", charge, event_id=event_id)
    assert redelivered.status_code == 200 and redelivered.json()["duplicate"] is False, "not recorded the first time"
    assert _case(shop, case["id"])["state"] == "closed"
