"""Every agent flow walked to its end over HTTP, and the storefront's webhooks received by a
real receiver on 127.0.0.1."""

from __future__ import annotations

from tests.support.receiver import receiving
from tests.support.tenants import Tenant
from tests.support.waiting import eventually

SHIP = {"carrier": "dhl", "tracking_number": "JD0001"}


def _agent(tenant: Tenant, case_id: str, action: str, body: dict | None = None, **headers: str) -> dict:
    response = tenant.agent.post(f"/admin/v1/cases/{case_id}/{action}", json=body or {}, headers=headers)
    assert response.status_code == 200, (action, response.text)
    return response.json()


def _exchange(tenant: Tenant, replacement_price: int) -> dict:
    order = tenant.put_order()
    response = tenant.open_case(
        order["order_id"],
        type="exchange",
        resolution=None,
        items=[
            {
                "line_id": "l1",
                "quantity": 1,
                "reason": "wrong_size",
                "replacement_sku": "TSHIRT-L",
                "replacement_unit_price": replacement_price,
            }
        ],
    )
    assert response.status_code == 201, response.text
    return response.json()


def test_exchange_for_a_cheaper_replacement_refunds_the_difference(tenant: Tenant) -> None:
    case = _exchange(tenant, replacement_price=1499)
    # customer-responsible exchange: shipping 10.00 split 5.00 / 5.00
    assert case["money"]["return_shipping"] == {"payer": "split", "customer_share": 500, "merchant_share": 500}
    assert case["money"]["refund_total"] == 1999 - 1499 - 500 == 0
    case = _exchange(tenant, replacement_price=999)
    assert case["money"]["refund_total"] == 1999 - 999 - 500 == 500
    assert case["state"] == "approved"
    received = _agent(tenant, case["id"], "receive", {"items": [{"line_id": "l1", "quantity": 1, "condition": "as_new"}]})
    assert received["state"] == "received" and received["refunds"][0]["amount"] == 500
    shipped = _agent(tenant, case["id"], "ship-replacement", {"carrier": "ups", "tracking_number": "1ZREPL"})
    assert shipped["state"] == "replacement_shipped"
    assert shipped["shipments"][-1] == {**shipped["shipments"][-1], "direction": "replacement", "tracking_number": "1ZREPL"}
    closed = _agent(tenant, case["id"], "close", {"note": "delivered"})
    assert closed["state"] == "closed"
    eventually(lambda: tenant.agent.get(f"/admin/v1/cases/{case['id']}").json()["refunds"][0]["status"] == "succeeded")


def test_exchange_for_a_dearer_replacement_asks_the_difference(tenant: Tenant) -> None:
    case = _exchange(tenant, replacement_price=2999)
    assert case["money"]["difference_due"] == 2999 - 1999 + 500
    assert case["money"]["refund_total"] == 0
    received = _agent(tenant, case["id"], "receive", {"items": [{"line_id": "l1", "quantity": 1, "condition": "as_new"}]})
    assert received["refunds"] == [] and received["money"]["difference_due"] == 1500
    _agent(tenant, case["id"], "ship-replacement", SHIP)
    assert _agent(tenant, case["id"], "close")["state"] == "closed"


def _repair(tenant: Tenant, delivered_days_ago: int) -> dict:
    from datetime import UTC, datetime, timedelta

    delivered = datetime.now(UTC) - timedelta(days=delivered_days_ago)
    order = tenant.put_order(placed_at=(delivered - timedelta(days=2)).isoformat(), delivered_at=delivered.isoformat())
    response = tenant.open_case(
        order["order_id"],
        type="repair",
        resolution=None,
        issue_description="zip broken",
        items=[{"line_id": "l1", "quantity": 1, "reason": "defective"}],
    )
    assert response.status_code == 201, response.text
    return response.json()


def test_in_warranty_repair(tenant: Tenant) -> None:
    case = _repair(tenant, delivered_days_ago=100)
    warranty = next(o for o in case["decision"]["outcomes"] if o["rule"] == "repair_warranty")
    assert warranty["result"] == "pass"
    _agent(tenant, case["id"], "approve", {"overrides": [{"rule": "photo_evidence", "reason": "inspected at the counter"}]})
    assert (
        _agent(tenant, case["id"], "receive", {"items": [{"line_id": "l1", "quantity": 1, "condition": "defective"}]})["state"]
        == "diagnosing"
    )
    repairing = _agent(tenant, case["id"], "repair/diagnose", {"finding": "zip teeth", "in_warranty": True})
    assert repairing["state"] == "repairing" and repairing["diagnosis"]["in_warranty"] is True
    assert _agent(tenant, case["id"], "repair/complete", {"note": "new zip"})["state"] == "repairing"
    assert _agent(tenant, case["id"], "ship-back", SHIP)["state"] == "shipped_back"
    closed = _agent(tenant, case["id"], "close")
    assert closed["state"] == "closed" and closed["refunds"] == [] and closed["money"]["difference_due"] == 0
    events = [e["type"] for e in tenant.agent.get(f"/admin/v1/cases/{case['id']}/events").json()["items"]]
    assert events[-6:] == ["receive", "start_diagnosis", "repair_in_warranty", "repair_completed", "ship_back", "close"]


def test_out_of_warranty_repair_with_the_quote_declined(tenant: Tenant) -> None:
    case = _repair(tenant, delivered_days_ago=400)
    warranty = next(o for o in case["decision"]["outcomes"] if o["rule"] == "repair_warranty")
    assert warranty["result"] == "info" and "outside" in warranty["detail"]
    _agent(tenant, case["id"], "approve", {"overrides": [{"rule": "photo_evidence", "reason": "inspected at the counter"}]})
    _agent(tenant, case["id"], "receive", {"items": [{"line_id": "l1", "quantity": 1, "condition": "defective"}]})
    no_quote = tenant.agent.post(f"/admin/v1/cases/{case['id']}/repair/diagnose", json={"finding": "motor", "in_warranty": False})
    assert no_quote.status_code == 422 and no_quote.json()["errors"][0]["field"] == "quote_amount"
    quoted = _agent(tenant, case["id"], "repair/diagnose", {"finding": "motor", "in_warranty": False, "quote_amount": 4500})
    assert quoted["state"] == "quote_pending" and quoted["diagnosis"]["quote_amount"] == 4500
    declined = tenant.storefront.post(f"/v1/cases/{case['id']}/quote/decline").json()
    assert declined["state"] == "shipped_back" and declined["money"]["difference_due"] == 0
    assert tenant.storefront.post(f"/v1/cases/{case['id']}/quote/accept").status_code == 409
    assert _agent(tenant, case["id"], "close")["state"] == "closed"


def test_out_of_warranty_repair_with_the_quote_accepted(tenant: Tenant) -> None:
    case = _repair(tenant, delivered_days_ago=400)
    _agent(tenant, case["id"], "approve", {"overrides": [{"rule": "photo_evidence", "reason": "inspected at the counter"}]})
    _agent(tenant, case["id"], "receive", {"items": [{"line_id": "l1", "quantity": 1, "condition": "defective"}]})
    _agent(tenant, case["id"], "repair/diagnose", {"finding": "motor", "in_warranty": False, "quote_amount": 4500})
    accepted = tenant.storefront.post(f"/v1/cases/{case['id']}/quote/accept").json()
    assert accepted["state"] == "repairing" and accepted["money"]["difference_due"] == 4500


def test_an_override_needs_a_reason_and_is_audited(tenant: Tenant) -> None:
    order = tenant.put_order()
    case = tenant.open_case(order["order_id"], items=[{"line_id": "l1", "quantity": 1, "reason": "defective"}]).json()
    assert case["decision"]["requires_photos"] is True
    blocked = tenant.agent.post(f"/admin/v1/cases/{case['id']}/approve", json={})
    assert blocked.status_code == 422 and blocked.json()["code"] == "policy_violation"
    no_reason = tenant.agent.post(f"/admin/v1/cases/{case['id']}/approve", json={"overrides": [{"rule": "photo_evidence"}]})
    assert no_reason.status_code == 422 and no_reason.json()["code"] == "validation_error"
    unknown = tenant.agent.post(
        f"/admin/v1/cases/{case['id']}/approve", json={"overrides": [{"rule": "nope", "reason": "because"}]}
    )
    assert unknown.status_code == 422
    too_much = tenant.agent.post(
        f"/admin/v1/cases/{case['id']}/approve",
        json={
            "overrides": [{"rule": "photo_evidence", "reason": "video call"}],
            "money_override": {"refund_total": 999_999, "reason": "goodwill"},
        },
    )
    assert too_much.status_code == 422 and too_much.json()["code"] == "refund_exceeds_captured"
    approved = _agent(
        tenant,
        case["id"],
        "approve",
        {
            "note": "saw it on a video call",
            "overrides": [{"rule": "photo_evidence", "reason": "customer showed the defect on a video call"}],
            "money_override": {"refund_total": 2200, "reason": "goodwill for the trouble"},
        },
    )
    assert approved["state"] == "approved" and approved["money"]["refund_total"] == 2200
    photo = next(o for o in approved["decision"]["outcomes"] if o["rule"] == "photo_evidence")
    assert photo["result"] == "review"  # the original outcome stays; the override is beside it
    assert photo["override_reason"] == "customer showed the defect on a video call"
    assert photo["overridden_by"] == tenant.agent_key_id()
    event = tenant.agent.get(f"/admin/v1/cases/{case['id']}/events").json()["items"][-1]
    assert event["type"] == "approve" and event["actor_role"] == "agent"
    assert event["data"]["overrides"] == [{"rule": "photo_evidence", "reason": "customer showed the defect on a video call"}]
    assert event["data"]["original_outcomes"][0]["result"] == "review"
    assert event["data"]["money_override"] == {"refund_total": 2200, "reason": "goodwill for the trouble"}
    assert event["data"]["original_refund_total"] == 1999 + 495


def test_queue_assignment_notes_and_if_match(tenant: Tenant) -> None:
    order = tenant.put_order()
    case = tenant.open_case(order["order_id"], items=[{"line_id": "l1", "quantity": 1, "reason": "other", "note": "?"}]).json()
    assigned = _agent(tenant, case["id"], "assign", {"assignee": "ana"}, **{"If-Match": f'"{case["version"]}"'})
    stale = tenant.agent.post(
        f"/admin/v1/cases/{case['id']}/notes", json={"text": "x"}, headers={"If-Match": f'"{case["version"]}"'}
    )
    assert stale.status_code == 412 and stale.json()["code"] == "version_conflict"
    noted = _agent(tenant, case["id"], "notes", {"text": "called the customer <b>twice</b>"})
    assert noted["notes"][0]["text"] == "called the customer <b>twice</b>"
    assert noted["version"] == assigned["version"] + 1
    mine = tenant.agent.get("/admin/v1/cases", params={"assignee": "ana"}).json()["items"]
    assert [c["id"] for c in mine] == [case["id"]]
    assert tenant.agent.get("/admin/v1/cases", params={"assignee": "bob"}).json()["items"] == []
    assert tenant.agent.get("/admin/v1/cases", params={"type": "repair"}).json()["items"] == []
    assert tenant.agent.get("/admin/v1/cases", params={"flagged": "false"}).json()["items"][0]["id"] == case["id"]


def test_survey_once_after_close_and_store_credit_ledger(tenant: Tenant) -> None:
    tenant.admin.put("/admin/v1/policy", json={"rules": {"store_credit_bonus": {"percent": 10}}})
    order = tenant.put_order()
    case = tenant.open_case(order["order_id"], resolution="store_credit").json()
    early = tenant.storefront.post(f"/v1/cases/{case['id']}/survey", json={"rating": 5})
    assert early.status_code == 409
    closed = _agent(tenant, case["id"], "receive", {"items": [{"line_id": "l1", "quantity": 1, "condition": "as_new"}]})
    assert closed["state"] == "closed"
    assert closed["money"]["store_credit_total"] == 1499 + 150 and closed["money"]["store_credit_bonus"] == 150
    credit = tenant.storefront.get(f"/v1/customers/{order['customer']['id']}/store-credit").json()
    assert credit["balances"] == [{"currency": "EUR", "amount": 1649}]
    assert [(g["case_id"], g["amount"], g["bonus"]) for g in credit["grants"]] == [(case["id"], 1649, 150)]
    bad = tenant.storefront.post(f"/v1/cases/{case['id']}/survey", json={"rating": 6})
    assert bad.status_code == 422
    rated = tenant.storefront.post(f"/v1/cases/{case['id']}/survey", json={"rating": 4, "comment": "quick"})
    assert rated.status_code == 200 and rated.json()["survey"]["rating"] == 4
    again = tenant.storefront.post(f"/v1/cases/{case['id']}/survey", json={"rating": 1})
    assert again.status_code == 409 and again.json()["code"] == "survey_already_answered", again.text
    assert "answered" in again.json()["detail"] and "surveyed" not in again.json()["detail"]
    assert tenant.storefront.get(f"/v1/cases/{case['id']}").json()["survey"]["rating"] == 4, "the first answer stands"


def test_webhooks_reach_a_receiver_signed_and_survive_its_downtime(tenant: Tenant) -> None:
    with receiving() as receiver:
        endpoint = tenant.admin.put("/admin/v1/webhook-endpoints", json={"url": receiver.url}).json()
        receiver.secret = endpoint["secret"]
        assert endpoint["secret"].startswith("whsec_")
        listed = tenant.admin.get("/admin/v1/webhook-endpoints").json()["items"]
        assert listed[0]["url"] == receiver.url and listed[0]["secret"] is None
        assert tenant.agent.get("/admin/v1/webhook-endpoints").status_code == 403

        order = tenant.put_order()
        case = tenant.open_case(order["order_id"]).json()
        eventually(lambda: len(receiver.of_case(case["id"])) == 2)
        assert [(e["type"], e["data"]["to_state"]) for e in receiver.of_case(case["id"])] == [
            ("case.created", "requested"),
            ("case.updated", "approved"),
        ]

        receiver.up = False  # the storefront is down for a while
        _agent(tenant, case["id"], "receive", {"items": [{"line_id": "l1", "quantity": 1, "condition": "as_new"}]})
        eventually(lambda: receiver.refused >= 3)
        receiver.up = True
        expected = {
            ("case.updated", "received"),
            ("case.updated", "refund_pending"),
            ("case.updated", "refunded"),
            ("case.updated", "closed"),
            ("case.survey_requested", "closed"),
            ("refund.succeeded", None),
        }
        eventually(lambda: expected <= {(e["type"], e["data"].get("to_state")) for e in receiver.of_case(case["id"])})
        assert receiver.bad_signatures == 0
        ids = [e["id"] for e in receiver.of_case(case["id"])]
        assert len(ids) == len(set(ids)) == 8, "every event once the receiver is back"
        refund_event = next(e for e in receiver.of_case(case["id"]) if e["type"] == "refund.succeeded")
        assert refund_event["data"]["amount"] == 1499

        deliveries = tenant.admin.get("/admin/v1/webhook-deliveries", params={"limit": 100}).json()["items"]
        assert any(d["status_code"] == 503 for d in deliveries)
        assert sum(1 for d in deliveries if d["status_code"] == 204) == 8
