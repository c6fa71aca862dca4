"""Which rate a merchant's preferences buy, the most a label may cost unattended, how big the box
is, and the simulated carrier's price rule: pure functions, no database."""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec
import pytest

from adapters.carriers.simulated import quote
from domain.cases import SYSTEM, Case, CaseItem, CaseType, Reason
from domain.decision import CaseMoney, Decision, Payer, ShippingShares
from domain.orders import Address, Customer, Order, OrderLine, Payment
from service.labels import ceiling_for, choose_rate, parcel_for, unattended
from service.ports import (
    CarrierPreferences,
    CarrierRate,
    LabelCeiling,
    LabelHold,
    LabelRequest,
    Parcel,
    ReturnLabel,
    ShippingSettings,
)

RATES = [
    CarrierRate("r1", "UPS", "Ground", 700, "EUR", 5),
    CarrierRate("r2", "UPS", "Express", 1900, "EUR", 1),
    CarrierRate("r3", "DHL", "Parcel", 650, "EUR", 3),
    CarrierRate("r4", "DHL", "Express", 1500, "EUR", 1),
    CarrierRate("r5", "Post", "Letter", 300, "EUR", None),
]


@pytest.mark.parametrize(
    ("preferences", "chosen"),
    [
        (CarrierPreferences(), "r5"),
        (CarrierPreferences(carriers=["UPS", "DHL"]), "r3"),
        (CarrierPreferences(services=["Express"]), "r4"),
        (CarrierPreferences(prefer="fastest"), "r4"),  # the cheapest of the fastest
        (CarrierPreferences(carriers=["UPS"], prefer="fastest"), "r2"),
        (CarrierPreferences(carriers=["Post"], prefer="fastest"), "r5"),  # no delivery days: still a rate
        (CarrierPreferences(carriers=["FedEx"]), None),
    ],
)
def test_the_preferences_pick_the_rate(preferences: CarrierPreferences, chosen: str | None) -> None:
    rate = choose_rate(RATES, preferences)
    assert (rate.rate_id if rate else None) == chosen


def _money(items_total: int, currency: str = "EUR") -> CaseMoney:
    return CaseMoney(currency, items_total, 0, ShippingShares(Payer.CUSTOMER, 0, 0), 0, 0, 0, 0)


@pytest.mark.parametrize(
    ("ceiling", "currency", "ceiling_amount"),
    [
        (LabelCeiling(), "EUR", 999),  # half of 19.99, rounded down
        (LabelCeiling(percent_of_items=100), "EUR", 1999),
        (LabelCeiling(percent_of_items=0), "EUR", 0),
        (LabelCeiling(max_amount={"EUR": 500}), "EUR", 500),  # the lower of the two
        (LabelCeiling(max_amount={"EUR": 5000}), "EUR", 999),
        (LabelCeiling(percent_of_items=None, max_amount={"EUR": 5000}), "EUR", 5000),
        (LabelCeiling(percent_of_items=None), "EUR", None),  # nothing limits it
        (LabelCeiling(), "USD", 0),  # another currency: never compared with the items' value
        (LabelCeiling(percent_of_items=None), "USD", 0),
        (LabelCeiling(max_amount={"USD": 700}), "USD", 0),  # priced, but the policy holds other currencies
        (LabelCeiling(max_amount={"USD": 700}, other_currency="max_amount"), "USD", 700),
        (LabelCeiling(max_amount={"JPY": 700}, other_currency="max_amount"), "USD", 0),
    ],
)
def test_the_ceiling_compares_in_one_currency(ceiling: LabelCeiling, currency: str, ceiling_amount: int | None) -> None:
    assert ceiling_for(ceiling, currency, _money(1999)) == ceiling_amount


def test_an_agents_approval_lets_the_rate_it_saw_be_bought_at_no_more() -> None:
    now = datetime.now(UTC)
    home = Address("Shop", "Dock 1", "Hamburg", "20095", "DE")
    rate = CarrierRate("r2", "UPS", "Express", 1900, "EUR", 1)
    label = ReturnLabel(
        "m", "lbl", "case", "simulated", "pending", LabelRequest(home, home, Parcel(800), CarrierPreferences()), now
    )
    money = _money(1999)
    assert not unattended(label, rate, money), "over half the items' value"
    held = LabelHold(rate, 999, 1999, "EUR")
    assert not unattended(msgspec.structs.replace(label, hold=held), rate, money), "held, not approved"
    approved = msgspec.structs.replace(label, hold=msgspec.structs.replace(held, approved_by="key_agent", approved_at=now))
    assert unattended(approved, rate, money)
    assert not unattended(approved, msgspec.structs.replace(rate, amount=1901), money), "dearer than the agent saw"
    assert not unattended(approved, msgspec.structs.replace(rate, rate_id="r4"), money), "another rate"
    assert unattended(approved, msgspec.structs.replace(rate, rate_id="r5", amount=900), money), "within the ceiling anyway"


def _order_and_case(*items: tuple[str, int]) -> tuple[Order, Case]:
    now = datetime.now(UTC)
    lines = [
        OrderLine("l1", "TEE", "Tee", 3, 1000, "apparel"),
        OrderLine("l2", "LAMP", "Lamp", 1, 5000, "lamps"),
        OrderLine("l3", "MUG", "Mug", 2, 800, None),
    ]
    order = Order(
        "m",
        "o",
        "EUR",
        now,
        now,
        Customer("c"),
        lines,
        0,
        Payment("stripe", "pi", 9000),
        shipping_address=Address("Ann", "1 Main", "Paris", "75001", "FR"),
    )
    money = _money(0)
    case = Case.open(
        case_id="case",
        merchant_id="m",
        order_id="o",
        customer_id="c",
        case_type=CaseType.RETURN,
        items=[CaseItem(line, "SKU", quantity, 1000, Reason.CHANGED_MIND) for line, quantity in items],
        resolution=None,
        decision=Decision(1, True, False, False, True, []),
        money=money,
        actor=SYSTEM,
        at=now,
    )
    return order, case


def test_the_parcel_weighs_every_item_in_the_size_of_the_largest() -> None:
    settings = ShippingSettings(
        default_parcel=Parcel(weight_g=500),
        parcels={"apparel": Parcel(300, 300, 200, 50), "lamps": Parcel(2000, 400, 400, 600)},
    )
    assert parcel_for(settings, *_order_and_case(("l1", 2))) == Parcel(600, 300, 200, 50)
    assert parcel_for(settings, *_order_and_case(("l1", 1), ("l2", 1), ("l3", 2))) == Parcel(3300, 400, 400, 600)
    assert parcel_for(settings, *_order_and_case(("l3", 1))) == Parcel(500)  # no category: the default


def test_the_simulated_price_rule() -> None:
    home = Address("Shop", "Dock 1", "Hamburg", "20095", "DE")
    paris, berlin = Address("Ann", "1 Rue", "Paris", "75001", "FR"), Address("Bo", "2 Str", "Berlin", "10115", "DE")
    tokyo = Address("Jun", "3-1", "Tokyo", "100-0001", "JP")
    abroad = quote("s", paris, home, Parcel(800))
    assert [(r.service, r.amount, r.currency, r.delivery_days) for r in abroad] == [
        ("Ground", 980, "EUR", 5),
        ("Priority", 1568, "EUR", 2),
        ("Express", 2450, "EUR", 1),
    ]
    assert quote("s", berlin, home, Parcel(800))[0].amount == 490  # at home: half
    assert quote("s", berlin, home, Parcel(2500))[0].amount == 400 + 3 * 90  # per started kilogram
    assert quote("s", berlin, home, Parcel(100, 500, 400, 300))[0].amount == 400 + 12 * 90  # volume weight 12 kg
    assert quote("s", home, tokyo, Parcel(800))[0] == CarrierRate("rate_s_ground", "Simulated Post", "Ground", 1470, "JPY", 5)
