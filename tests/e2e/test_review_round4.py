"""The fourth outside review's attacks over HTTP, on the shared service: reason ``other`` and the
agent's responsibility decision, amounts per currency, ETag/If-Match, the console's additions and
the reports. Each finding's test says what was wrong and what is right; all are fixed, and the
attacks the service always repelled are here too."""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import msgspec
import pytest

from tests.e2e.test_report_additions import agents_may_read_reports  # noqa: F401 - the service opening reports to agents
from tests.support.flows import failed_refund
from tests.support.tenants import Tenant, _with_database, payment
from tests.support.waiting import eventually

OTHER_L1 = [{"line_id": "l1", "quantity": 1, "reason": "other", "note": "the colour is not what I expected"}]
RECEIVE_L1 = {"items": [{"line_id": "l1", "quantity": 1, "condition": "as_new"}]}


def _rewrite_case(tenant: Tenant, case_id: str, change: Any) -> None:
    """Change the stored case below HTTP, as data written by an earlier release looks."""

    async def work(db: Any) -> None:
        async with db.transaction() as repos:
            stored = await repos.get_case(tenant.merchant_id, case_id, for_update=True)
            change(stored)
            await repos.save_case(stored, stored.version)

    _with_database(tenant.database_url, work)


def _as_opened_under_the_old_defaults(case: Any) -> None:
    """Before amounts were per currency, version 0 (the built-in defaults) priced the label at 500
    minor units of whatever currency the order had; a case opened then says so, and its decision
    has no ``prices`` (the amounts a decision records came with the fix)."""
    case.decision = msgspec.structs.replace(case.decision, policy_version=0, prices={})


def _period() -> dict[str, str]:
    now = datetime.now(UTC)
    return {"from": (now - timedelta(days=1)).isoformat(), "to": (now + timedelta(days=1)).isoformat()}


# ----------------------------------------------------------------------------- findings


def test_a_case_opened_under_the_old_defaults_in_a_now_unpriced_currency_can_still_be_received(tenant: Tenant) -> None:
    """Wrong: a case opened before amounts were per currency under the built-in defaults (policy
    version 0, which then priced the label at 500 in *any* currency) in a currency today's
    defaults leave unpriced (ZAR, KWD, …) can never be received: receipt re-evaluates the money
    under "version 0", which now means today's defaults, and answers 422
    ``policy_currency_unpriced``, a code the contract gives only to preview and case creation.
    The item is back at the warehouse and the customer can never be refunded; the same holds for
    a stored legacy policy that left the label out ("take today's per-currency defaults").
    Right: a later change of the defaults never rewrites an open case; receipt settles it with
    the amounts it was decided under (ZAR 500 here) and pays the refund."""
    old_defaults = {"return_shipping": {"label_cost": {"ZAR": 500}}, "exchange_shipping": {"cost": {"ZAR": 1000}},
                    "auto_approve": {"max_amount": {"ZAR": 10_000}}}
    assert tenant.admin.put("/admin/v1/policy", json={"rules": old_defaults}).status_code == 200
    order = tenant.put_order(currency="ZAR")
    case = tenant.open_case(order["order_id"]).json()
    assert case["state"] == "approved" and case["money"]["refund_total"] == 1999 - 500
    _rewrite_case(tenant, case["id"], _as_opened_under_the_old_defaults)

    received = tenant.agent.post(f"/admin/v1/cases/{case['id']}/receive", json=RECEIVE_L1)
    assert received.status_code == 200, received.text  # today: 422 policy_currency_unpriced
    assert [r["amount"] for r in received.json()["refunds"]] == [1999 - 500]


def test_a_pre_change_other_case_in_a_now_unpriced_currency_can_still_be_approved(tenant: Tenant) -> None:
    """Wrong: the same as above on approval: an ``other`` case opened under the old defaults in
    ZAR and waiting for review cannot be approved at all, with or without a decision, since
    deciding responsibility works the money out again under "version 0" as it is today:
    ``POST /admin/v1/cases/{id}/approve`` answers 422 ``policy_currency_unpriced`` and the only
    way out for the agent is to reject a case nobody found wrong. Right: 200, the money worked out
    with the amounts the case was quoted under."""
    old_defaults = {"return_shipping": {"label_cost": {"ZAR": 500}}, "exchange_shipping": {"cost": {"ZAR": 1000}},
                    "auto_approve": {"max_amount": {"ZAR": 10_000}}}
    assert tenant.admin.put("/admin/v1/policy", json={"rules": old_defaults}).status_code == 200
    order = tenant.put_order(currency="ZAR")
    case = tenant.open_case(order["order_id"], items=OTHER_L1).json()
    assert case["state"] == "pending_review"
    _rewrite_case(tenant, case["id"], _as_opened_under_the_old_defaults)
    approved = tenant.agent.post(
        f"/admin/v1/cases/{case['id']}/approve", json={"responsibility": [{"line_id": "l1", "responsibility": "customer"}]}
    )
    assert approved.status_code == 200, approved.text
    assert approved.json()["money"]["refund_total"] == 1999 - 500


def test_a_case_opened_under_the_old_defaults_keeps_its_label_at_receipt(tenant: Tenant) -> None:
    """Wrong: a JPY return auto-approved before amounts were per currency was quoted (and
    approved on) a 500 JPY label under the defaults, version 0. Received today, its money is
    worked out again under what version 0 means now (800 JPY), so the customer is refunded
    300 JPY less than the approved case said, with nobody having changed anything on it (CAD,
    AUD, SGD, HKD, … cases move likewise). Right: the case keeps the amounts of the policy it was
    decided under (docs/policies.md: "a later policy change never rewrites an open case"): a
    1499 JPY refund."""
    order = tenant.put_order(currency="JPY")
    case = tenant.open_case(order["order_id"]).json()
    assert case["state"] == "approved" and case["money"]["return_shipping"]["customer_share"] == 800

    def quoted_before(stored: Any) -> None:
        _as_opened_under_the_old_defaults(stored)
        shares = msgspec.structs.replace(stored.money.return_shipping, customer_share=500)
        stored.money = msgspec.structs.replace(stored.money, return_shipping=shares, refund_total=1999 - 500)

    _rewrite_case(tenant, case["id"], quoted_before)
    received = tenant.agent.post(f"/admin/v1/cases/{case['id']}/receive", json=RECEIVE_L1)
    assert received.status_code == 200, received.text
    assert received.json()["money"]["return_shipping"]["customer_share"] == 500
    assert [r["amount"] for r in received.json()["refunds"]] == [1999 - 500]


@pytest.mark.parametrize(
    ("body", "media_type"),
    [
        (b'{"currency": ["EUR"], "rules": {"return_shipping": {"label_cost": 700}}}', "application/json"),
        (b'{"currency": {"EUR": 1}, "rules": {}}', "application/json"),
        (b'currency = ["EUR"]\n[rules.return_shipping]\nlabel_cost = 700\n', "application/toml"),
    ],
    ids=["json list", "json object", "toml array"],
)
def test_a_policy_whose_currency_is_not_a_string_is_a_422(tenant: Tenant, body: bytes, media_type: str) -> None:
    """Wrong: ``PUT /admin/v1/policy`` with a document whose top-level ``currency`` is a list or
    an object answers 500 ``internal_error`` (``currency not in KNOWN_CURRENCIES`` on an
    unhashable value). Right: 422 ``validation_error`` naming ``currency``, nothing installed."""
    answer = tenant.admin.put("/admin/v1/policy", content=body, headers={"content-type": media_type})
    assert answer.status_code == 422, answer.text
    assert [e["field"] for e in answer.json()["errors"]] == ["currency"]
    assert tenant.agent.get("/admin/v1/policy").json()["version"] == 0


@pytest.mark.parametrize(
    "if_match",
    [b'"\xb2"', b'W/"\xb9"', ('"' + "7" * 5000 + '"').encode()],
    ids=["superscript two", "weak superscript one", "5000 digits"],
)
def test_an_if_match_that_is_no_version_is_a_422_not_a_500(tenant: Tenant, if_match: bytes) -> None:
    """Wrong: ``If-Match: "²"`` (a Latin-1 superscript, which HTTP headers may carry) passes
    ``str.isdigit()`` but ``int()`` refuses it, and a 5000-digit version passes ``isdigit`` but
    passes Python's 4300-digit conversion limit: both answer 500 ``internal_error`` on every one of
    the 11 agent actions. Right: 422 ``validation_error`` naming ``If-Match`` (the 5000 digits
    could equally be a 412: no case is at that version), nothing changed."""
    order = tenant.put_order()
    case = tenant.open_case(order["order_id"], items=OTHER_L1).json()
    answer = tenant.agent.post(f"/admin/v1/cases/{case['id']}/notes", json={"text": "x"}, headers={"If-Match": if_match})
    assert answer.status_code in (412, 422), answer.text
    assert tenant.agent.get(f"/admin/v1/cases/{case['id']}").json()["version"] == case["version"]


def test_the_reasons_report_counts_the_agent_s_responsibility_decision(tenant: Tenant) -> None:
    """Wrong: an agent approves an ``other`` item as the merchant's (``responsibility:
    merchant``, or by default), and the case pays as for ``defective`` (label and original
    shipping on the merchant); yet ``GET /finance/v1/reports/reasons`` (and its ``by_day``) still
    lists the item as ``responsibility: unknown`` and leaves it out of
    ``merchant_responsible_share``: the Reports page's "merchant-responsible share" chart
    understates what the merchant was found responsible for, by every decided ``other`` item.
    Right: a decided item counts with the decision (here: share 1.0, ``merchant``); only an
    undecided one is ``unknown``."""
    order = tenant.put_order()
    case = tenant.open_case(order["order_id"], items=OTHER_L1).json()
    approved = tenant.agent.post(
        f"/admin/v1/cases/{case['id']}/approve", json={"responsibility": [{"line_id": "l1", "responsibility": "merchant"}]}
    ).json()
    assert approved["money"]["return_shipping"]["payer"] == "merchant"
    report = tenant.finance.get("/finance/v1/reports/reasons", params={**_period(), "by_day": "true"}).json()
    assert report["items"] == 1
    assert report["by_sku"][0]["reasons"][0]["responsibility"] == "merchant"
    assert report["merchant_responsible_share"] == 1.0
    assert report["by_day"][0]["merchant_responsible_share"] == 1.0


def test_the_reasons_report_lists_a_customer_decision_and_an_undecided_item_apart(tenant: Tenant) -> None:
    """One ``other`` T-shirt decided the customer's, one still waiting: two rows of the same SKU
    and reason, ``customer`` and ``unknown``, and no merchant share."""
    order = tenant.put_order()
    decided, waiting = (tenant.open_case(order["order_id"], items=OTHER_L1).json() for _ in range(2))
    assert tenant.agent.post(f"/admin/v1/cases/{decided['id']}/approve",
                             json={"responsibility": [{"line_id": "l1", "responsibility": "customer"}]}).status_code == 200
    report = tenant.finance.get("/finance/v1/reports/reasons", params=_period()).json()
    assert sorted((r["reason"], r["responsibility"], r["items"]) for r in report["by_sku"][0]["reasons"]) == [
        ("other", "customer", 1), ("other", "unknown", 1)
    ]
    assert (report["items"], report["merchant_responsible_share"]) == (2, 0.0)
    assert waiting["state"] == "pending_review"


def test_a_storefront_action_with_a_stale_if_match_changes_nothing(tenant: Tenant) -> None:
    """Wrong: the contract gives every answer that is one case, storefront ones included, an
    ``ETag`` "the value to send back as If-Match", but the storefront's actions (cancel,
    return-shipment, quote accept/decline, survey) never read it: a storefront that read the case
    at version 2, while an agent approved it meanwhile, sends ``POST /v1/cases/{id}/cancel`` with
    ``If-Match: "2"`` and the approved case is cancelled anyway (200). RFC 9110 §13.1.1 says a
    false If-Match must not perform the method. Right: 412 ``version_conflict``, the case still
    approved (or: the ETag/If-Match promise scoped to the agent API in the contract)."""
    order = tenant.put_order()
    case = tenant.open_case(order["order_id"], items=OTHER_L1).json()
    seen = tenant.storefront.get(f"/v1/cases/{case['id']}")
    assert seen.headers["etag"] == f'"{case["version"]}"'
    assert tenant.agent.post(f"/admin/v1/cases/{case['id']}/approve", json={}).status_code == 200
    cancel = tenant.storefront.post(f"/v1/cases/{case['id']}/cancel", headers={"If-Match": seen.headers["etag"]})
    assert cancel.status_code == 412, cancel.text
    assert tenant.agent.get(f"/admin/v1/cases/{case['id']}").json()["state"] == "approved"


def test_if_match_star_and_lists_mean_what_rfc_9110_says(tenant: Tenant) -> None:
    """Low: the contract refuses anything but one version with 422, so ``If-Match: *`` ("only if
    the case exists", what generic HTTP clients and proxies send) and a list that names the
    current version (``"1", "2"``) are errors instead of matches (RFC 9110 §13.1.1: the condition
    is true when any listed tag matches, ``*`` when a current representation exists). Right: both
    apply the change; a list naming no current version is 412."""
    order = tenant.put_order()
    case = tenant.open_case(order["order_id"], items=OTHER_L1).json()
    path = f"/admin/v1/cases/{case['id']}/notes"
    star = tenant.agent.post(path, json={"text": "a"}, headers={"If-Match": "*"})
    assert star.status_code == 200, star.text
    listed = tenant.agent.post(path, json={"text": "b"}, headers={"If-Match": f'"1", "{star.json()["version"]}"'})
    assert listed.status_code == 200, listed.text
    stale = tenant.agent.post(path, json={"text": "c"}, headers={"If-Match": '"1", "2"'})
    assert stale.status_code == 412, stale.text


@pytest.mark.parametrize("resolution", ["refund", "store_credit"])
def test_an_override_is_not_paid_for_items_that_never_came_back(tenant: Tenant, resolution: str) -> None:
    """Wrong: an agent approves an ``other`` return of two T-shirts (decided the customer's) with
    a goodwill ``money_override`` of 40.00 EUR for both; the parcel arrives empty
    (``receive`` with ``{line_id: l1, quantity: 0, condition: missing}``). The receipt's money
    says ``items_total: 0``, yet ``refund_total`` stays 4000 and a 40.00 EUR refund (or store-
    credit grant) goes out at once, for goods that never came back; without the override the
    same receipt pays nothing and the case is left to the agent to close. The receipt event only
    notes "the agent's approved figure stands". Right: an override approved for items that then
    arrive short does not pay for the missing ones: at most the override less the value of what
    is missing (here nothing is paid), or the receipt holds the money for the agent to confirm."""
    order = tenant.put_order()
    case = tenant.open_case(order["order_id"], resolution=resolution,
                            items=[{"line_id": "l1", "quantity": 2, "reason": "other", "note": "both faded"}]).json()
    approved = tenant.agent.post(f"/admin/v1/cases/{case['id']}/approve", json={
        "responsibility": [{"line_id": "l1", "responsibility": "customer"}],
        "money_override": {"refund_total": 4000, "reason": "goodwill for both"},
    })
    assert approved.status_code == 200, approved.text
    received = tenant.agent.post(f"/admin/v1/cases/{case['id']}/receive",
                                 json={"items": [{"line_id": "l1", "quantity": 0, "condition": "missing"}]}).json()
    assert received["money"]["items_total"] == 0
    paid = sum(r["amount"] for r in received["refunds"]) + received["money"]["store_credit_total"]
    assert paid == 0, received["money"]  # today: 4000 paid for nothing returned


@pytest.mark.parametrize(("override", "paid", "note"), [(4000, 1999 - 500, "set aside"), (1000, 1000, "stands, below")])
def test_an_override_with_one_of_two_items_back_pays_at_most_the_policy_s_figure(
    tenant: Tenant, override: int, paid: int, note: str
) -> None:
    """One T-shirt of two comes back: the policy's figure on it (19.99 less the label) is paid,
    capped by the override; the receipt's event says which figure applied and why."""
    order = tenant.put_order()
    case = tenant.open_case(order["order_id"], items=[{"line_id": "l1", "quantity": 2, "reason": "other", "note": "x"}]).json()
    assert tenant.agent.post(f"/admin/v1/cases/{case['id']}/approve", json={
        "responsibility": [{"line_id": "l1", "responsibility": "customer"}],
        "money_override": {"refund_total": override, "reason": "goodwill"},
    }).status_code == 200
    received = tenant.agent.post(f"/admin/v1/cases/{case['id']}/receive", json=RECEIVE_L1).json()
    assert [r["amount"] for r in received["refunds"]] == [paid], received["money"]
    events = tenant.agent.get(f"/admin/v1/cases/{case['id']}/events").json()["items"]
    (receipt,) = [e for e in events if e["type"] == "receive"]
    assert any(note in n for n in receipt["data"]["money_notes"]), receipt["data"]


def test_a_store_credit_bonus_does_not_use_up_what_was_captured(tenant: Tenant) -> None:
    """Wrong (older than this merge, found combining store credit with a second case): with a
    100 % store-credit bonus, a customer returns the 19.99 T-shirt for credit (14.99 after the
    label, plus 14.99 bonus: 29.98 credit), then the mug (15.00) arrives as the wrong item. The
    order captured 39.94; what the customer takes back in money or value is 14.99, but the
    bonus is counted as if captured money had been paid back, so the merchant's own mistake is
    refunded 9.96 instead of 19.95 (``captured_limit``: "capped from 19.95 EUR to 9.96 EUR").
    Right: only what the case pays back of the customer's money counts against the capture (the
    credit without its bonus), and the wrong-item case is quoted 19.95 EUR."""
    assert tenant.admin.put("/admin/v1/policy", json={"rules": {"store_credit_bonus": {"percent": 100}}}).status_code == 200
    order = tenant.put_order(payment=payment(1999 + 1500 + 495))
    credit = tenant.open_case(order["order_id"], resolution="store_credit").json()
    assert credit["money"]["store_credit_total"] == 2 * (1999 - 500)
    wrong = tenant.open_case(order["order_id"], items=[{"line_id": "l2", "quantity": 1, "reason": "wrong_item"}]).json()
    assert wrong["money"]["refund_total"] == 1500 + 495, wrong["money"]


def test_with_a_store_credit_bonus_the_capture_still_caps_the_order_s_other_cases(tenant: Tenant) -> None:
    """The bonus is left out of what was paid back, never what was: the credit's 14.99 of the
    customer's money counts, so a second case is capped at the 10.01 the 25.00 capture has left."""
    assert tenant.admin.put("/admin/v1/policy", json={"rules": {"store_credit_bonus": {"percent": 100}}}).status_code == 200
    order = tenant.put_order(payment=payment(2500))
    credit = tenant.open_case(order["order_id"], resolution="store_credit").json()
    assert (credit["money"]["store_credit_total"], credit["money"]["store_credit_bonus"]) == (2 * 1499, 1499)
    wrong = tenant.open_case(order["order_id"], items=[{"line_id": "l2", "quantity": 1, "reason": "wrong_item"}]).json()
    assert wrong["money"]["refund_total"] == 2500 - 1499, wrong["money"]


def test_the_summary_by_sku_counts_a_retried_case_s_items_once(tenant: Tenant) -> None:
    """Wrong (older than this merge; the report agents may now read too): a lamp (25.13) comes
    back, its refund fails and an agent retries it. ``GET /finance/v1/reports/summary?
    group_by=sku`` then says 2 items worth 50.26 came back for SKU ``A``: the query joins each of
    the case's refunds (the failed one and its retry) to the case's items and sums them once per
    refund. At month end the "value of returned goods" grows with every retry. Right: one lamp,
    25.13 (``refunds`` may well say 2)."""
    case = failed_refund(tenant)
    failed = next(r for r in case["refunds"] if r["status"] == "failed")
    assert tenant.agent.post(f"/admin/v1/refunds/{failed['id']}/retry").status_code == 201
    rows = tenant.finance.get("/finance/v1/reports/summary", params={**_period(), "group_by": "sku"}).json()["rows"]
    assert [(r["key"], r["items"], r["item_value"]) for r in rows] == [("A", 1, 2513)], rows


def test_the_storefront_never_sees_the_agents_internal_notes(tenant: Tenant) -> None:
    """Wrong (older than this merge, found reading the ETag'd storefront answers): ``POST
    /admin/v1/cases/{id}/notes`` is documented as "an internal note for other agents; customers
    never see it", yet ``GET /v1/cases/{id}`` and ``GET /v1/cases?order_id=`` with the
    storefront's key answer the case with ``notes: [{author, text, at}]`` (and the agent's
    ``assignee`` key id, the fraud ``flags``, a reused photo's ``matches_case_id`` naming another
    customer's case): whatever an agent writes about the customer reaches the storefront that
    shows the case to that customer. Right: the storefront's view of a case leaves out the
    notes (and the other agent-only fields); the agent API keeps them."""
    order = tenant.put_order()
    case = tenant.open_case(order["order_id"], items=OTHER_L1).json()
    secret = "internal: looks like wardrobing, third time this month"
    assert tenant.agent.post(f"/admin/v1/cases/{case['id']}/notes", json={"text": secret}).status_code == 200
    assert secret in tenant.agent.get(f"/admin/v1/cases/{case['id']}").text
    for answer in (tenant.storefront.get(f"/v1/cases/{case['id']}"),
                   tenant.storefront.get("/v1/cases", params={"order_id": order["order_id"]})):
        assert answer.status_code == 200
        assert secret not in answer.text, answer.json()


def test_an_empty_parcel_refunds_nothing_not_the_original_shipping(tenant: Tenant) -> None:
    """Wrong: an ``other`` case approved without a decision is the merchant's, so its money
    includes the order's original shipping (4.95). The parcel arrives empty (``receive`` with
    ``{line_id: l1, quantity: 0, condition: missing}``): items are worth 0, but the receipt still
    refunds ``original_shipping_refund`` and a 4.95 EUR refund goes out at once, using up the
    order's one shipping refund. Since approval now makes every undecided ``other`` item the
    merchant's, anyone can collect the shipping with an empty box and a vague reason. Right: with
    nothing back, nothing is paid (``refund_total`` 0) and the case waits for the agent to close
    it, as the contract says for a receipt where everything is missing."""
    order = tenant.put_order()
    case = tenant.open_case(order["order_id"], items=OTHER_L1).json()
    approved = tenant.agent.post(f"/admin/v1/cases/{case['id']}/approve", json={}).json()
    assert approved["money"]["original_shipping_refund"] == 495
    received = tenant.agent.post(f"/admin/v1/cases/{case['id']}/receive",
                                 json={"items": [{"line_id": "l1", "quantity": 0, "condition": "missing"}]}).json()
    assert received["money"]["items_total"] == 0
    assert received["money"]["refund_total"] == 0 and received["refunds"] == [], received["money"]
    # the order's one shipping refund is still there for a parcel that does come back
    second = tenant.open_case(order["order_id"], items=[{"line_id": "l2", "quantity": 1, "reason": "wrong_item"}]).json()
    assert second["money"]["original_shipping_refund"] == 495, second["money"]


def test_an_exchange_s_undecided_share_is_what_the_customer_may_be_charged(tenant: Tenant) -> None:
    """Low: ``undecided_share`` is there so a storefront can tell the customer what "may be
    deducted once we have looked" (contract). On an ``other`` exchange it is the whole exchange
    shipping (10.00 EUR by default), but deciding the customer responsible charges them
    ``customer_percent`` of it (5.00 EUR; the merchant pays the rest), so every storefront
    following the contract overstates the customer's risk by 2×. Right: the share the customer
    would pay if found responsible (500), the merchant's part being nobody's question."""
    order = tenant.put_order()
    item = {**OTHER_L1[0], "replacement_sku": "TSHIRT-L"}
    preview = tenant.storefront.post("/v1/cases/preview", json={"order_id": order["order_id"], "type": "exchange",
                                                                 "items": [item]}).json()
    case = tenant.open_case(order["order_id"], type="exchange", resolution=None, items=[item]).json()
    decided = tenant.agent.post(
        f"/admin/v1/cases/{case['id']}/approve", json={"responsibility": [{"line_id": "l1", "responsibility": "customer"}]}
    ).json()
    charged = decided["money"]["return_shipping"]["customer_share"]
    assert charged == 500
    assert preview["money"]["return_shipping"]["undecided_share"] == charged


# ----------------------------------------------------------------------------- what held


def test_twenty_concurrent_approvals_with_different_decisions_one_wins(tenant: Tenant) -> None:
    """Twenty agents approve one ``other`` case at once, each deciding differently: one wins, the
    rest answer 409; the case's money, its items and its one approval event agree with the winner."""
    order = tenant.put_order()
    items = [*OTHER_L1, {"line_id": "l2", "quantity": 1, "reason": "other", "note": "chipped?"}]
    case = tenant.open_case(order["order_id"], items=items).json()

    def approve(index: int) -> tuple[int, list[dict[str, str]], dict]:
        decided = [{"line_id": "l1", "responsibility": "customer" if index % 2 else "merchant"},
                   {"line_id": "l2", "responsibility": "customer" if index % 3 else "merchant"}]
        with httpx.Client(base_url=tenant.base_url, headers=tenant.agent.headers, timeout=60) as client:
            answer = client.post(f"/admin/v1/cases/{case['id']}/approve", json={"responsibility": decided})
        return answer.status_code, decided, answer.json()

    with ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(approve, range(20)))
    assert Counter(status for status, _, _ in answers) == Counter({200: 1, 409: 19})
    (_, decided, won), = [a for a in answers if a[0] == 200]
    now = tenant.agent.get(f"/admin/v1/cases/{case['id']}").json()
    assert now["money"] == won["money"]
    assert [i["responsibility"] for i in now["items"]] == [d["responsibility"] for d in decided]
    events = tenant.agent.get(f"/admin/v1/cases/{case['id']}/events").json()["items"]
    approvals = [e for e in events if e["type"] == "approve"]
    assert len(approvals) == 1
    assert [(d["line_id"], d["responsibility"]) for d in approvals[0]["data"]["responsibility"]] == [
        (d["line_id"], d["responsibility"]) for d in decided
    ]
    merchant = any(d["responsibility"] == "merchant" for d in decided)
    assert now["money"]["refund_total"] == 3499 + (495 if merchant else -500)


def test_a_policy_that_stops_pricing_a_currency_leaves_open_cases_alone(tenant: Tenant) -> None:
    """A ZAR ``other`` case opened under a policy pricing ZAR is approved and received after the
    merchant installed one that prices EUR alone: both steps keep to the case's version."""
    zar = {"return_shipping": {"label_cost": {"EUR": 500, "ZAR": 9000}}, "exchange_shipping": {"cost": {"EUR": 1000, "ZAR": 18_000}},
           "auto_approve": {"max_amount": {"EUR": 10_000, "ZAR": 200_000}}}
    assert tenant.admin.put("/admin/v1/policy", json={"rules": zar}).status_code == 200
    order = tenant.put_order(currency="ZAR", payment=payment(20_000),
                             lines=[{"line_id": "l1", "sku": "A", "title": "A", "quantity": 1, "unit_price": 15_000}])
    case = tenant.open_case(order["order_id"], items=OTHER_L1).json()
    assert case["money"]["return_shipping"]["undecided_share"] == 9000
    eur_only = {rule: {key: {"EUR": table["EUR"]} for key, table in params.items()} for rule, params in zar.items()}
    assert tenant.admin.put("/admin/v1/policy", json={"rules": eur_only}).status_code == 200
    approved = tenant.agent.post(
        f"/admin/v1/cases/{case['id']}/approve", json={"responsibility": [{"line_id": "l1", "responsibility": "customer"}]}
    )
    assert approved.status_code == 200, approved.text
    assert approved.json()["money"]["refund_total"] == 15_000 - 9000
    received = tenant.agent.post(f"/admin/v1/cases/{case['id']}/receive", json=RECEIVE_L1)
    assert received.status_code == 200, received.text
    assert [r["amount"] for r in received.json()["refunds"]] == [15_000 - 9000]


def test_search_and_attention_never_cross_merchants(tenant: Tenant, other_tenant: Tenant) -> None:
    """Another merchant's case id, the same order id, customer id and e-mail (any case) find
    only the caller's own cases; ``attention`` and ``/me`` answer for the caller alone."""
    customer = {"id": "cus_shared", "email": "Shared@Example.com"}
    theirs = other_tenant.put_order(customer=customer)
    their_case = other_tenant.open_case(theirs["order_id"], items=OTHER_L1).json()
    ours = tenant.put_order(theirs["order_id"], customer={"id": "cus_shared", "email": "shared@example.com"})
    our_case = tenant.open_case(ours["order_id"], items=OTHER_L1).json()
    for q in (their_case["id"], theirs["order_id"], "cus_shared", "SHARED@EXAMPLE.COM", "%", "_"):
        found = tenant.agent.get("/admin/v1/cases", params={"q": q}).json()["items"]
        assert {c["id"] for c in found} <= {our_case["id"]}, q
    assert tenant.agent.get("/admin/v1/cases", params={"q": their_case["id"]}).json()["items"] == []
    assert [c["id"] for c in tenant.agent.get("/admin/v1/cases", params={"attention": "false"}).json()["items"]] == [
        our_case["id"]
    ]
    assert tenant.agent.get("/admin/v1/me").json() == {"key_id": tenant.agent_key_id(), "role": "agent"}


def test_the_decided_money_is_what_is_refunded_with_an_override_and_a_second_case(tenant: Tenant) -> None:
    """Two cases on one order, the first ``other`` decided merchant's (so its shipping refund)
    with a lowered money override: the second (merchant-responsible too) gets no second shipping
    refund, each refund is its case's ``refund_total``, and together they stay within the capture."""
    order = tenant.put_order(payment=payment(1999 + 1500 + 495))
    first = tenant.open_case(order["order_id"], items=OTHER_L1).json()
    approved = tenant.agent.post(f"/admin/v1/cases/{first['id']}/approve", json={
        "responsibility": [{"line_id": "l1", "responsibility": "merchant"}],
        "money_override": {"refund_total": 1800, "reason": "part paid by phone"},
    }).json()
    assert approved["money"]["refund_total"] == 1800 and approved["money"]["original_shipping_refund"] == 495
    second = tenant.open_case(order["order_id"], items=[{"line_id": "l2", "quantity": 1, "reason": "damaged_in_transit"}]).json()
    assert second["money"]["original_shipping_refund"] == 0
    tenant.agent.post(f"/admin/v1/cases/{second['id']}/approve",
                      json={"overrides": [{"rule": "photo_evidence", "reason": "seen on the phone"}]})
    paid = []
    for case, line in ((first, "l1"), (second, "l2")):
        got = tenant.agent.post(f"/admin/v1/cases/{case['id']}/receive",
                                json={"items": [{"line_id": line, "quantity": 1, "condition": "as_new"}]}).json()
        assert [r["amount"] for r in got["refunds"]] == [got["money"]["refund_total"]]
        paid.append(got["money"]["refund_total"])
    assert paid == [1800, 1500] and sum(paid) <= 1999 + 1500 + 495
    eventually(lambda: all(r["status"] == "succeeded" for c in (first, second)
                           for r in tenant.agent.get(f"/admin/v1/cases/{c['id']}").json()["refunds"]))


def test_concurrent_approvals_of_other_cases_refund_the_shipping_once(tenant: Tenant) -> None:
    """Three ``other`` cases on one order approved at once, each by default the merchant's: the
    order's original shipping is refunded on exactly one, and together they promise the capture."""
    captured = 2 * 1999 + 1500 + 495
    order = tenant.put_order(payment=payment(captured))
    lines = ("l1", "l1", "l2")
    cases = [tenant.open_case(order["order_id"], items=[{**OTHER_L1[0], "line_id": line}]).json() for line in lines]

    def approve(case: dict) -> dict:
        with httpx.Client(base_url=tenant.base_url, headers=tenant.agent.headers, timeout=60) as client:
            return client.post(f"/admin/v1/cases/{case['id']}/approve", json={}).json()["money"]

    with ThreadPoolExecutor(3) as pool:
        money = list(pool.map(approve, cases))
    assert sorted(m["original_shipping_refund"] for m in money) == [0, 0, 495]
    assert sum(m["refund_total"] for m in money) == captured


@pytest.mark.parametrize(
    ("body", "media_type"),
    [
        (b'{"rules": {"return_shipping": {"label_cost": {"EUR": true}}}}', "application/json"),
        (b'{"rules": {"return_shipping": {"label_cost": {"EUR": 1e3}}}}', "application/json"),
        (b'{"rules": {"return_shipping": {"label_cost": {"EUR": 100000000000000000000000000000}}}}', "application/json"),
        (b'{"rules": {"return_shipping": {"label_cost": {"EUR": null}}}}', "application/json"),
        (b'{"rules": {"return_shipping": {"label_cost": {"EUR": [500]}}}}', "application/json"),
        (b'{"currency": "EUR", "rules": {"return_shipping": {"label_cost": true}}}', "application/json"),
        (b'currency = "EUR"\n[rules.return_shipping]\nlabel_cost = 9223372036854775807\n', "application/toml"),
        (b"[rules.return_shipping]\nlabel_cost = {EUR = inf}\n", "application/toml"),
        (b"[rules.return_shipping]\nlabel_cost = {EUR = 1979-05-27}\n", "application/toml"),
    ],
    ids=["bool", "float", "10^29", "null", "list", "bare bool", "2^63-1", "inf", "date"],
)
def test_odd_amounts_in_a_policy_table_are_422s_naming_the_parameter(tenant: Tenant, body: bytes, media_type: str) -> None:
    answer = tenant.admin.put("/admin/v1/policy", content=body, headers={"content-type": media_type})
    assert answer.status_code == 422, answer.text
    assert [e["field"] for e in answer.json()["errors"]] == ["rules.return_shipping.label_cost"]
    assert tenant.agent.get("/admin/v1/policy").json()["version"] == 0


def test_an_agent_key_reads_no_finance_endpoint_but_the_reports_where_reports_are_opened(
    agents_may_read_reports: tuple[str, str],  # noqa: F811 - the fixture imported above
) -> None:
    """With RETURNS_REPORTS_FOR_AGENTS=1 an agent key reads both reports (``by_day`` included,
    its own merchant's cases only) and nothing else of finance's."""
    ours, theirs = Tenant(*agents_may_read_reports), Tenant(*agents_may_read_reports)
    try:
        theirs.open_case(theirs.put_order()["order_id"], items=OTHER_L1)
        ours.open_case(ours.put_order()["order_id"])
        report = ours.agent.get("/finance/v1/reports/reasons", params={**_period(), "by_day": "true"}).json()
        assert report["items"] == 1 and [r["reason"] for d in report["by_day"] for r in d["reasons"]] == ["changed_mind"]
        assert ours.agent.get("/finance/v1/reports/summary", params={**_period(), "group_by": "sku"}).status_code == 200
        for method, path in (("GET", "/finance/v1/refunds"), ("GET", "/finance/v1/refunds.csv"),
                             ("GET", "/finance/v1/reconciliations/rec_1"), ("POST", "/finance/v1/reconciliations")):
            answer = ours.agent.request(method, path, json=_period() if method == "POST" else None)
            assert answer.status_code == 403, (path, answer.text)
    finally:
        ours.close()
        theirs.close()
