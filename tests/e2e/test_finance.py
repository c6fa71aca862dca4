"""Finance over HTTP against the service configured for Stripe (the fake server): the ledger and
its CSV, reconciliation with every class of difference, and the reports."""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from tests.fakes.stripe_server import FakeStripe
from tests.support.flows import received_return
from tests.support.tenants import Tenant
from tests.support.waiting import eventually


def _settled(shop: Tenant, case_id: str) -> dict:
    return eventually(lambda: (c := shop.agent.get(f"/admin/v1/cases/{case_id}").json())["state"] == "closed" and c)


def _period() -> dict[str, str]:
    now = datetime.now(UTC)
    return {"from": (now - timedelta(hours=1)).isoformat(), "to": (now + timedelta(hours=1)).isoformat()}


def test_reconciliation_sorts_every_difference_and_the_totals_add_up(shop: Tenant, stripe_fake: FakeStripe) -> None:
    cases = [_settled(shop, received_return(shop, stripe_fake, amount)["id"]) for amount in (1001, 2002, 3003, 4004)]
    refunds = [case["refunds"][0] for case in cases]
    account = stripe_fake.account()
    # at the gateway: one of ours is absent, one has another amount, one another status…
    del account.refunds[refunds[1]["gateway_refund_id"]]
    account.refunds[refunds[2]["gateway_refund_id"]]["amount"] = 2000
    account.refunds[refunds[3]["gateway_refund_id"]]["status"] = "failed"
    # …and one was made in Stripe's dashboard, outside the service
    outside = stripe_fake.add_external_refund(f"pi_{shop.merchant_id}_1001", 77)

    made = shop.finance.post("/finance/v1/reconciliations", json=_period())
    assert made.status_code == 201, made.text
    report = made.json()

    def ids(name: str) -> list[tuple[str, str]]:
        return [(e["refund_id"], e["gateway_refund_id"]) for e in report[name]]

    assert ids("matched") == [(refunds[0]["id"], refunds[0]["gateway_refund_id"])]
    assert ids("missing_at_gateway") == [(refunds[1]["id"], refunds[1]["gateway_refund_id"])]
    assert ids("amount_mismatch") == [(refunds[2]["id"], refunds[2]["gateway_refund_id"])]
    assert report["amount_mismatch"][0]["our_amount"] == 3003 - 500 and report["amount_mismatch"][0]["gateway_amount"] == 2000
    assert ids("status_mismatch") == [(refunds[3]["id"], refunds[3]["gateway_refund_id"])]
    assert (
        report["status_mismatch"][0]["our_status"] == "succeeded" and report["status_mismatch"][0]["gateway_status"] == "failed"
    )
    assert [e["gateway_refund_id"] for e in report["unknown_at_gateway"]] == [outside["id"]]

    eur = report["totals"]["EUR"]
    ours = sum(r["amount"] for r in refunds)
    theirs = sum(r["amount"] for r in account.refunds.values() if r["payment_intent"].startswith(f"pi_{shop.merchant_id}"))
    assert eur["our_amount"] == ours == 501 + 1502 + 2503 + 3504
    assert eur["gateway_amount"] == theirs == 501 + 2000 + 3504 + 77
    classes = ("matched", "missing_at_gateway", "unknown_at_gateway", "amount_mismatch", "status_mismatch")
    assert sum(eur[c]["our_amount"] for c in classes) == eur["our_amount"]
    assert sum(eur[c]["gateway_amount"] for c in classes) == eur["gateway_amount"]
    assert [eur[c]["count"] for c in classes] == [1, 1, 1, 1, 1]

    again = shop.finance.get(f"/finance/v1/reconciliations/{report['id']}").json()
    assert again == report
    rerun = shop.finance.post("/finance/v1/reconciliations", json=_period()).json()
    assert rerun["id"] != report["id"] and rerun["totals"] == report["totals"]
    assert shop.agent.post("/finance/v1/reconciliations", json=_period()).status_code == 403
    bad = shop.finance.post("/finance/v1/reconciliations", json={"from": _period()["to"], "to": _period()["from"]})
    assert bad.status_code == 422
    assert shop.finance.get("/finance/v1/reconciliations/rec_nope").status_code == 404


def test_ledger_pages_filters_and_csv(shop: Tenant, stripe_fake: FakeStripe) -> None:
    cases = [_settled(shop, received_return(shop, stripe_fake, amount)["id"]) for amount in (1100, 1200, 1300)]
    ours = [case["refunds"][0] for case in cases]
    seen, cursor = [], None
    while True:
        page = shop.finance.get("/finance/v1/refunds", params={"limit": 2, **({"cursor": cursor} if cursor else {})}).json()
        seen += page["items"]
        if not (cursor := page["next_cursor"]):
            break
    assert [r["id"] for r in seen] == [r["id"] for r in ours]
    assert seen[0]["customer_id"] == cases[0]["customer_id"] and seen[0]["reason"] == "changed_mind"
    assert shop.finance.get("/finance/v1/refunds", params={"status": "failed"}).json()["items"] == []
    assert shop.finance.get("/finance/v1/refunds", params={"currency": "JPY"}).json()["items"] == []
    assert shop.finance.get("/finance/v1/refunds", params={"status": "lost"}).status_code == 422

    exported = shop.finance.get("/finance/v1/refunds.csv")
    assert exported.status_code == 200 and exported.headers["content-type"].startswith("text/csv")
    assert exported.text.startswith("refund_id,case_id,order_id,customer_id,reason,status,currency,amount,amount_minor")
    assert "\r\n" in exported.text
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert [(r["refund_id"], r["amount"], int(r["amount_minor"])) for r in rows] == [
        (r["id"], f"{r['amount'] // 100}.{r['amount'] % 100:02d}", r["amount"]) for r in ours
    ]
    assert shop.storefront.get("/finance/v1/refunds.csv").status_code == 403


def test_reports_summary_and_reason_trends(shop: Tenant, stripe_fake: FakeStripe) -> None:
    closed = [_settled(shop, received_return(shop, stripe_fake, amount)["id"]) for amount in (2100, 2200)]
    for case, rating in zip(closed, (5, 2), strict=True):
        assert shop.storefront.post(f"/v1/cases/{case['id']}/survey", json={"rating": rating}).status_code == 200
    order = shop.put_order()
    shop.open_case(order["order_id"], items=[{"line_id": "l1", "quantity": 1, "reason": "defective"}])
    period = _period()

    by_currency = shop.finance.get("/finance/v1/reports/summary", params={**period, "group_by": "currency"}).json()
    assert by_currency["rows"] == [
        {
            "key": "EUR",
            "currency": "EUR",
            "refunds": 2,
            "succeeded": 2,
            "failed": 0,
            "refunded": 1600 + 1700,
            "in_flight": 0,
            "items": None,
            "item_value": None,
            "failed_amount": 0,
        }
    ]
    by_day = shop.finance.get("/finance/v1/reports/summary", params={**period, "group_by": "day"}).json()["rows"]
    assert sum(r["refunded"] for r in by_day) == 3300
    by_reason = shop.finance.get("/finance/v1/reports/summary", params={**period, "group_by": "reason"}).json()["rows"]
    assert [(r["key"], r["refunds"]) for r in by_reason] == [("changed_mind", 2)]
    by_type = shop.finance.get("/finance/v1/reports/summary", params={**period, "group_by": "type"}).json()["rows"]
    assert [(r["key"], r["refunded"]) for r in by_type] == [("return", 3300)]
    by_sku = shop.finance.get("/finance/v1/reports/summary", params={**period, "group_by": "sku"}).json()["rows"]
    assert [(r["key"], r["items"], r["item_value"]) for r in by_sku] == [("A", 2, 2100 + 2200)]
    assert shop.finance.get("/finance/v1/reports/summary", params={**period, "group_by": "colour"}).status_code == 422

    reasons = shop.finance.get("/finance/v1/reports/reasons", params=period).json()
    assert reasons["items"] == 3 and reasons["merchant_responsible_share"] == round(1 / 3, 4)
    by_sku = {row["sku"]: row for row in reasons["by_sku"]}
    assert [(r["reason"], r["items"]) for r in by_sku["A"]["reasons"]] == [("changed_mind", 2)]
    assert by_sku["TSHIRT-M"]["merchant_responsible_share"] == 1.0
    assert reasons["csat"] == {"surveys": 2, "average_rating": 3.5, "satisfied_share": 0.5}


def _stored_reconciliations(shop: Tenant) -> int:
    async def count() -> int:
        conn = await asyncpg.connect(shop.database_url)
        try:
            return await conn.fetchval("SELECT count(*) FROM reconciliations WHERE merchant_id = $1", shop.merchant_id)
        finally:
            await conn.close()

    return asyncio.run(count())


@pytest.mark.parametrize(
    ("fault", "status", "code", "retry_after"),
    [
        # the SDK tries a dropped connection three times (two retries): all three fail
        (lambda fake: fake.drop_connection_next(3), 503, "gateway_unavailable", "30"),
        (lambda fake: fake.fail_next(1, status=500, should_retry=False), 503, "gateway_unavailable", "30"),
        (lambda fake: fake.fail_next(1, status=429, should_retry=False, retry_after=7), 503, "gateway_unavailable", "7"),
        (lambda fake: fake.fail_next(1, status=401, should_retry=False), 502, "gateway_error", None),
    ],
    ids=["unreachable", "500", "rate-limited", "refused-401"],
)
def test_reconciliation_with_the_gateway_failing_names_the_gateway_and_stores_nothing(
    shop: Tenant,
    stripe_fake: FakeStripe,
    fault: Callable[[FakeStripe], None],
    status: int,
    code: str,
    retry_after: str | None,
) -> None:
    """It was a 422 on ``from``: the request was fine, the gateway was not."""
    _settled(shop, received_return(shop, stripe_fake, 1500)["id"])
    fault(stripe_fake)
    answer = shop.finance.post("/finance/v1/reconciliations", json=_period())
    assert (answer.status_code, answer.json()["code"]) == (status, code), answer.text
    assert answer.headers["content-type"] == "application/problem+json" and "errors" not in answer.json()
    assert answer.headers.get("retry-after") == retry_after
    assert _stored_reconciliations(shop) == 0, "no half report"
    again = shop.finance.post("/finance/v1/reconciliations", json=_period())
    assert again.status_code == 201 and len(again.json()["matched"]) == 1, again.text
