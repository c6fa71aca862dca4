"""A ceiling on what a return label may cost unattended (#23), over HTTP against running services
whose worker buys labels, with the simulated carrier and with EasyPost (the fake, through the real
SDK): a label over the merchant's ceiling is held, nothing is bought at the carrier, the agent's
case view and the audit trail say the rate and the ceiling; an agent's decision then buys exactly
one label (also when 20 agents decide at once) or none. The ceiling compares amounts in one
currency only. Bad ceiling settings are 422 and store nothing. Labels below the ceiling are
bought as before (tests/e2e/test_labels.py, test_labels_easypost.py)."""

# ruff: noqa: F811 - the fixtures of tests/support/simulated_labels.py and easypost_labels.py, imported by name

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from tests.fakes.easypost_server import FakeEasyPost
from tests.support.easypost_labels import SETTINGS as EASYPOST_SETTINGS
from tests.support.easypost_labels import easypost_service, fake  # noqa: F401 - the running service
from tests.support.easypost_labels import purchases as easypost_purchases
from tests.support.labels import CUSTOMER_ADDRESS, at_once, bought, held, label_id
from tests.support.simulated_labels import (  # noqa: F401 - the running service and its merchant
    SETTINGS,
    label_data,
    label_service,
    purchases,
    shop,
)
from tests.support.tenants import Tenant, payment
from tests.support.waiting import eventually

HEAVY = {**SETTINGS, "default_parcel": {"weight_g": 1_000_000}, "parcels": {}}  # the issue's 1,000 kg default
# 1,000 kg FR → DE: (4.00 + 1000 × 0.90) × 2, the cheapest (Ground); half the 19.99 t-shirt: 9.99
HEAVY_RATE, TSHIRT_CEILING = 180800, 999


def _settings(shop: Tenant, settings: dict[str, Any]) -> None:
    answer = shop.admin.put("/admin/v1/shipping-settings", json=settings)
    assert answer.status_code == 200, answer.text


def _held_return(shop: Tenant, settings: dict[str, Any] = HEAVY, **order: Any) -> dict[str, Any]:
    """A return of the order's first line (by default one 19.99 t-shirt), auto-approved, whose label
    the worker held, as an agent sees it."""
    _settings(shop, settings)
    opened = shop.open_case(shop.put_order(shipping_address=CUSTOMER_ADDRESS, **order)["order_id"]).json()
    assert opened["state"] == "approved" and opened["label"]["status"] == "pending", opened
    return held(shop, opened["id"])


def _events(shop: Tenant, case_id: str, kind: str) -> list[dict[str, Any]]:
    return [e for e in shop.agent.get(f"/admin/v1/cases/{case_id}/events").json()["items"] if e["type"] == kind]


# --------------------------------------------------------------------------- the simulated carrier


def test_a_label_over_the_ceiling_waits_for_an_agent_and_nothing_is_bought(shop: Tenant) -> None:
    case = _held_return(shop)
    label = case["label"]
    assert label["hold"] == {
        "reason": "over_ceiling",
        "carrier": "Simulated Post",
        "service": "Ground",
        "amount": HEAVY_RATE,
        "currency": "EUR",
        "ceiling": TSHIRT_CEILING,
        "approved_by": None,
        "approved_at": None,
    }
    assert (label["amount"], label["tracking_code"]) == (None, None)
    assert {"label/buy", "label/decline"} <= set(case["allowed_actions"])
    [event] = _events(shop, case["id"], "label_held")
    assert event["actor_role"] == "system" and event["data"] == {
        "label_id": label_id(shop, case["id"]),
        "reason": "over_ceiling",
        "carrier": "Simulated Post",
        "service": "Ground",
        "amount": HEAVY_RATE,
        "currency": "EUR",
        "ceiling": TSHIRT_CEILING,
        "items_total": 1999,
        "case_currency": "EUR",
    }
    # the storefront (and so the customer) sees the label wait, not the merchant's ceiling
    seen = shop.storefront.get(f"/v1/cases/{case['id']}").json()
    assert seen["label"]["status"] == "held" and seen["label"]["hold"] is None
    assert not [action for action in seen["allowed_actions"] if action.startswith("label/")]
    assert shop.storefront.get(f"/v1/cases/{case['id']}/label").json()["code"] == "label_not_ready"

    time.sleep(1)  # the worker (idle 0.05 s) has had many rounds meanwhile
    assert shop.agent.get(f"/admin/v1/cases/{case['id']}").json()["label"]["status"] == "held"
    assert purchases(shop.database_url, label_id(shop, case["id"])) == 0
    assert case["money"]["return_shipping"]["customer_share"] == 500, "the policy's flat label_cost still"


def test_twenty_agents_buying_a_held_label_at_once_buy_one(shop: Tenant) -> None:
    case = _held_return(shop)
    assert at_once(shop, f"/admin/v1/cases/{case['id']}/label/buy") == [200] + [409] * 19
    label = bought(shop, case["id"])["label"]
    assert (label["service"], label["amount"], label["currency"]) == ("Ground", HEAVY_RATE, "EUR")
    assert purchases(shop.database_url, label_id(shop, case["id"])) == 1
    seen = shop.agent.get(f"/admin/v1/cases/{case['id']}").json()
    assert seen["label"]["hold"]["approved_by"] == shop.agent_key_id()
    [approved] = _events(shop, case["id"], "label_approved")
    assert (approved["actor_id"], approved["actor_role"]) == (shop.agent_key_id(), "agent")
    assert (approved["data"]["amount"], approved["data"]["ceiling"]) == (HEAVY_RATE, TSHIRT_CEILING)
    again = shop.agent.post(f"/admin/v1/cases/{case['id']}/label/buy", json={})
    assert again.status_code == 409 and again.json()["code"] == "label_not_held"
    assert purchases(shop.database_url, label_id(shop, case["id"])) == 1


def test_a_declined_label_is_never_bought_and_the_customer_ships_the_item(shop: Tenant) -> None:
    case = _held_return(shop)
    path = f"/admin/v1/cases/{case['id']}/label/decline"
    stale = shop.agent.post(path, json={}, headers={"If-Match": f'"{case["version"] - 1}"'})
    assert stale.status_code == 412 and stale.json()["code"] == "version_conflict"
    assert shop.agent.get(f"/admin/v1/cases/{case['id']}").json()["label"]["status"] == "held", "nothing changed"
    declined = shop.agent.post(path, json={"note": "too dear"}, headers={"If-Match": f'"{case["version"]}"'})
    assert declined.status_code == 200, declined.text
    assert declined.json()["label"]["status"] == "cancelled" and declined.json()["label"]["hold"]["approved_by"] is None
    [event] = _events(shop, case["id"], "label_declined")
    assert event["actor_role"] == "agent" and event["data"]["note"] == "too dear"
    for decision in ("buy", "decline"):
        answer = shop.agent.post(f"/admin/v1/cases/{case['id']}/label/{decision}", json={})
        assert answer.status_code == 409 and answer.json()["code"] == "label_not_held"
    shipped = shop.storefront.post(f"/v1/cases/{case['id']}/return-shipment", json={"carrier": "dhl", "tracking_number": "T1"})
    assert shipped.status_code == 200 and shipped.json()["state"] == "in_transit"
    time.sleep(0.5)
    assert purchases(shop.database_url, label_id(shop, case["id"])) == 0


def test_a_held_label_is_bought_only_while_the_case_waits_for_the_item(shop: Tenant) -> None:
    case = _held_return(shop)
    shop.storefront.post(f"/v1/cases/{case['id']}/return-shipment", json={"carrier": "dhl", "tracking_number": "T2"})
    moved = shop.agent.get(f"/admin/v1/cases/{case['id']}").json()
    assert moved["state"] == "in_transit" and "label/buy" not in moved["allowed_actions"]
    late = shop.agent.post(f"/admin/v1/cases/{case['id']}/label/buy", json={})
    assert late.status_code == 409 and late.json()["code"] == "invalid_transition"
    assert "label/decline" in moved["allowed_actions"]

    cancelled = _held_return(shop)
    assert shop.storefront.post(f"/v1/cases/{cancelled['id']}/cancel").status_code == 200
    assert shop.agent.get(f"/admin/v1/cases/{cancelled['id']}").json()["label"]["status"] == "cancelled"
    for each in (case, cancelled):
        assert purchases(shop.database_url, label_id(shop, each["id"])) == 0


def test_a_buy_racing_the_cancel_leaves_no_label_bought_for_a_cancelled_case(shop: Tenant) -> None:
    """Attack: ten agents buy a held label while the storefront cancels the case ten times, all at
    once, so an approval may land just before the cancel and the worker buy for a case that is no
    longer waiting. The case row orders them: a buy after the cancel is refused, a label approved
    before it is dropped or voided, never left bought on a cancelled case.
    Origin: outside review of the #23 features, an attack the service withstood."""
    case = _held_return(shop)
    paths = [(shop.agent, f"/admin/v1/cases/{case['id']}/label/buy")] * 10
    paths += [(shop.storefront, f"/v1/cases/{case['id']}/cancel")] * 10

    def post(who_path: tuple[Any, str]) -> int:
        who, path = who_path
        with httpx.Client(base_url=shop.base_url, headers=who.headers, timeout=30) as client:
            return client.post(path, json={}).status_code

    with ThreadPoolExecutor(len(paths)) as pool:
        statuses = list(pool.map(post, paths))
    assert statuses[:10].count(200) <= 1 and statuses[10:].count(200) == 1, statuses
    settled = eventually(
        lambda: (c := shop.agent.get(f"/admin/v1/cases/{case['id']}").json())["label"]["status"] in ("cancelled", "voided") and c
    )
    assert settled["state"] == "cancelled"
    time.sleep(1.0)  # a worker still holding the label has had its turn
    after = shop.agent.get(f"/admin/v1/cases/{case['id']}").json()
    assert after["label"]["status"] in ("cancelled", "voided"), after["label"]
    if purchases(shop.database_url, label_id(shop, case["id"])):
        assert after["label"]["status"] == "voided", "one bought for the cancelled case is voided"


def test_an_absolute_cap_and_another_currency_hold_a_label_too(shop: Tenant) -> None:
    capped = _held_return(shop, {**SETTINGS, "label_ceiling": {"max_amount": {"EUR": 900}}})
    # 800 g FR → DE, Ground: 9.80, within half the t-shirt (9.99) but over the 9.00 cap
    assert (capped["label"]["hold"]["amount"], capped["label"]["hold"]["ceiling"]) == (980, 900)

    dollars = _held_return(shop, SETTINGS, currency="USD")  # a USD order, a label in EUR (to Germany)
    hold = dollars["label"]["hold"]
    assert (hold["reason"], hold["amount"], hold["currency"], hold["ceiling"]) == ("other_currency", 980, "EUR", 0)
    for each in (capped, dollars):
        assert purchases(shop.database_url, label_id(shop, each["id"])) == 0


def test_the_preference_picks_among_the_rates_within_the_ceiling(shop: Tenant) -> None:
    fastest = {**SETTINGS, "default_parcel": {"weight_g": 800}, "parcels": {}, "carrier_preferences": {"prefer": "fastest"}}
    _settings(shop, fastest)
    case = bought(shop, shop.open_case(shop.put_order(shipping_address=CUSTOMER_ADDRESS)["order_id"]).json()["id"])
    # Express (24.50) and Priority (15.68) are over half the t-shirt (9.99): the fastest within is Ground
    assert (case["label"]["service"], case["label"]["amount"]) == ("Ground", 980)
    _settings(shop, {**fastest, "label_ceiling": {"percent_of_items": None}})  # no limit: as before ceilings
    case = bought(shop, shop.open_case(shop.put_order(shipping_address=CUSTOMER_ADDRESS)["order_id"]).json()["id"])
    assert (case["label"]["service"], case["label"]["amount"]) == ("Express", 2450)


GOOD_CEILING = {"percent_of_items": 40, "max_amount": {"EUR": 1500, "JPY": 2000}, "other_currency": "max_amount"}


def test_the_ceiling_is_stored_and_defaults_to_half_the_items(shop: Tenant) -> None:
    assert shop.agent.get("/admin/v1/shipping-settings").json()["label_ceiling"] == {
        "percent_of_items": 50,
        "max_amount": {},
        "other_currency": "hold",
    }
    _settings(shop, {**SETTINGS, "label_ceiling": GOOD_CEILING})
    assert shop.agent.get("/admin/v1/shipping-settings").json()["label_ceiling"] == GOOD_CEILING


@pytest.mark.parametrize(
    ("ceiling", "field"),
    [
        ({"percent_of_items": 101}, "label_ceiling.percent_of_items"),
        ({"percent_of_items": -1}, "label_ceiling.percent_of_items"),
        ({"percent_of_items": 12.5}, "label_ceiling.percent_of_items"),
        ({"percent_of_items": "50"}, "label_ceiling.percent_of_items"),
        ({"max_amount": {"eur": 100}}, "label_ceiling.max_amount"),
        ({"max_amount": {"XYZ": 100}}, "label_ceiling.max_amount.XYZ"),
        ({"max_amount": {"EUR": -1}}, "label_ceiling.max_amount"),
        ({"max_amount": {"EUR": 10**14}}, "label_ceiling.max_amount"),
        ({"max_amount": {"EUR": 1.5}}, "label_ceiling.max_amount"),
        ({"other_currency": "convert"}, "label_ceiling.other_currency"),
        ({"other_currency": "max_amount"}, "label_ceiling.other_currency"),  # and no amount to compare with
        ({"per_cent": 50}, "label_ceiling"),
        (None, "label_ceiling"),
    ],
)
def test_bad_ceiling_settings_are_a_problem_and_store_nothing(shop: Tenant, ceiling: object, field: str) -> None:
    _settings(shop, {**SETTINGS, "label_ceiling": GOOD_CEILING})
    answer = shop.admin.put("/admin/v1/shipping-settings", json={**SETTINGS, "label_ceiling": ceiling})
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    problem = answer.json()
    assert problem["code"] == "validation_error" and problem["errors"][0]["field"].startswith(field), problem
    assert shop.agent.get("/admin/v1/shipping-settings").json()["label_ceiling"] == GOOD_CEILING, "nothing stored"


# --------------------------------------------------------------------------- EasyPost


@pytest.fixture
def easypost_shop(easypost_service: tuple[str, str]) -> Iterator[Tenant]:
    tenant = Tenant(*easypost_service)
    yield tenant
    tenant.close()


@pytest.fixture
def issue_rates(fake: FakeEasyPost) -> Iterator[None]:
    """EasyPost quoting what issue #23's label cost: 6,750,010.00 USD for a 1,000 kg parcel."""
    usual, fake.rates = fake.rates, [("UPS", "Ground", "6750010.00", "USD", 5)]
    yield
    fake.rates = usual


def test_easypost_holds_a_label_over_the_ceiling_and_buys_it_once_for_20_agents(
    easypost_shop: Tenant, fake: FakeEasyPost
) -> None:
    # EasyPost's cheapest rate, 7.29 EUR, is over a 5.00 EUR cap
    case = _held_return(easypost_shop, {**EASYPOST_SETTINGS, "label_ceiling": {"max_amount": {"EUR": 500}}})
    hold = case["label"]["hold"]
    assert (hold["reason"], hold["carrier"], hold["amount"], hold["ceiling"]) == ("over_ceiling", "USPS", 729, 500)
    reference = label_id(easypost_shop, case["id"])
    time.sleep(0.5)
    assert easypost_purchases(fake, reference) == 0
    assert at_once(easypost_shop, f"/admin/v1/cases/{case['id']}/label/buy") == [200] + [409] * 19
    assert bought(easypost_shop, case["id"])["label"]["amount"] == 729
    assert easypost_purchases(fake, reference) == 1


def test_easypost_the_issue_label_waits_and_is_declined(easypost_shop: Tenant, fake: FakeEasyPost, issue_rates: None) -> None:
    lines = [{"line_id": "l1", "sku": "SCARF", "title": "Scarf", "quantity": 1, "unit_price": 2500}]
    settings = {**EASYPOST_SETTINGS, "default_parcel": {"weight_g": 1_000_000}}
    case = _held_return(easypost_shop, settings, lines=lines, payment=payment(2500))
    hold = case["label"]["hold"]
    assert (hold["reason"], hold["amount"], hold["currency"], hold["ceiling"]) == ("other_currency", 675001000, "USD", 0)
    declined = easypost_shop.agent.post(f"/admin/v1/cases/{case['id']}/label/decline", json={})
    assert declined.status_code == 200 and declined.json()["label"]["status"] == "cancelled"
    time.sleep(0.5)
    assert easypost_purchases(fake, label_id(easypost_shop, case["id"])) == 0
