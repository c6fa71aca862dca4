"""What the agent console asks of the admin API beyond the queue's old filters: a search box
(``q``), the cases that need attention first (``attention``), and who the caller is (``/me``)."""

from __future__ import annotations

from tests.support.flows import failed_refund
from tests.support.tenants import Tenant


def _ids(tenant: Tenant, **params: str) -> list[str]:
    answer = tenant.agent.get("/admin/v1/cases", params=params)
    assert answer.status_code == 200, answer.text
    return [case["id"] for case in answer.json()["items"]]


def test_search_finds_a_case_by_its_id_order_customer_or_email(tenant: Tenant) -> None:
    mine = tenant.put_order(customer={"id": "cus_search", "email": "Ada@Example.com"})
    other = tenant.put_order()
    case = tenant.open_case(mine["order_id"]).json()
    tenant.open_case(other["order_id"])
    for q in (case["id"], mine["order_id"], "cus_search", "ada@example.COM", f"  {case['id']} "):
        assert _ids(tenant, q=q) == [case["id"]], q
    assert _ids(tenant, q="nobody@example.com") == []
    too_long = tenant.agent.get("/admin/v1/cases", params={"q": "x" * 201})
    assert too_long.status_code in {400, 422}
    assert too_long.headers["content-type"].startswith("application/problem+json")


def test_attention_keeps_the_cases_whose_refund_failed_until_it_is_retried(tenant: Tenant) -> None:
    quiet = tenant.open_case(tenant.put_order()["order_id"]).json()
    failed = failed_refund(tenant)
    assert _ids(tenant, attention="true") == [failed["id"]]
    assert quiet["id"] in _ids(tenant, attention="false") and failed["id"] not in _ids(tenant, attention="false")
    refund = next(r for r in failed["refunds"] if r["status"] == "failed")
    assert tenant.agent.post(f"/admin/v1/refunds/{refund['id']}/retry").status_code == 201
    # the retry is in flight (and this amount is declined again: then it needs attention once more)
    assert failed["id"] not in _ids(tenant, attention="true") or any(
        r["status"] == "failed" and r["retried_by"] is None
        for r in tenant.agent.get(f"/admin/v1/cases/{failed['id']}").json()["refunds"]
    )


def test_me_names_the_calling_key(tenant: Tenant) -> None:
    me = tenant.agent.get("/admin/v1/me")
    assert me.status_code == 200 and me.json() == {"key_id": tenant.agent_key_id(), "role": "agent"}
    assert tenant.storefront.get("/admin/v1/me").status_code == 403
