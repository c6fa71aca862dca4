"""Data for the reports, made through the real API: returns of several SKUs, reasons and
currencies, refunds paid by the simulated gateway, surveys; then moved back in time (the only
step below HTTP: the service stamps cases and refunds with its own clock)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from tests.support.images import encode, photo
from tests.support.tenants import Tenant, _with_database, payment
from tests.support.waiting import eventually

if TYPE_CHECKING:
    from adapters.postgres.database import PostgresDatabase

LINES = [
    {"line_id": "l1", "sku": "TSHIRT-M", "title": "T-shirt", "quantity": 3, "unit_price": 1999},
    {"line_id": "l2", "sku": "MUG", "title": "Mug", "quantity": 2, "unit_price": 1500},
    {"line_id": "l3", "sku": "CAP", "title": "Cap", "quantity": 1, "unit_price": 1200},
]
# (days ago, currency, [(line, quantity, reason)], survey rating or None)
RETURNS = [
    (0, "EUR", [("l1", 1, "wrong_size"), ("l2", 1, "damaged_in_transit")], 5),
    (1, "EUR", [("l1", 2, "defective")], 2),
    (1, "JPY", [("l3", 1, "changed_mind")], None),
    (3, "EUR", [("l2", 1, "changed_mind"), ("l3", 1, "not_as_described")], 4),
]


def period(days: int = 7) -> dict[str, str]:
    """The last ``days`` UTC days up to the end of today, as the reports page asks for them."""
    end = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
    return {"from": (end - timedelta(days=days)).isoformat(), "to": end.isoformat()}


def seed(tenant: Tenant) -> list[dict]:
    """Every return of ``RETURNS``, received and closed (refunded), rated where it says, dated
    back by its days; answers the closed cases."""
    closed = []
    for days_ago, currency, items, rating in RETURNS:
        captured = sum(line["quantity"] * line["unit_price"] for line in LINES) + 495
        order = tenant.put_order(currency=currency, lines=LINES, payment=payment(captured))
        body = [{"line_id": line, "quantity": quantity, "reason": reason} for line, quantity, reason in items]
        case = tenant.open_case(order["order_id"], items=body).json()
        if case["state"] == "pending_review":  # merchant-responsible reasons want a photo
            photo_file = ("p.jpg", encode(photo(seed=len(closed)), "JPEG"), "image/jpeg")
            tenant.storefront.post(f"/v1/cases/{case['id']}/photos", files={"file": photo_file})
            approved = tenant.agent.post(f"/admin/v1/cases/{case['id']}/approve", json={})
            assert approved.status_code == 200, approved.text
        arrived = [{"line_id": line, "quantity": quantity, "condition": "as_new"} for line, quantity, _ in items]
        received = tenant.agent.post(f"/admin/v1/cases/{case['id']}/receive", json={"items": arrived})
        assert received.status_code == 200, received.text
        case = eventually(lambda c=case: _closed(tenant, c["id"]))
        if rating is not None:
            assert tenant.storefront.post(f"/v1/cases/{case['id']}/survey", json={"rating": rating}).status_code == 200
        _with_database(tenant.database_url, lambda db, c=case, d=days_ago: _backdate(db, c["id"], d))
        closed.append(case)
    return closed


def _closed(tenant: Tenant, case_id: str) -> dict | None:
    """The case once its refund is paid and it is closed."""
    case = tenant.agent.get(f"/admin/v1/cases/{case_id}").json()
    return case if case["state"] == "closed" else None


async def _backdate(db: PostgresDatabase, case_id: str, days: int) -> None:
    """Move a case and its refunds ``days`` back."""
    shift = timedelta(days=days)
    async with db.pool.acquire() as conn:
        await conn.execute("UPDATE cases SET created_at = created_at - $2::interval WHERE id = $1", case_id, shift)
        await conn.execute("UPDATE refunds SET created_at = created_at - $2::interval WHERE case_id = $1", case_id, shift)
