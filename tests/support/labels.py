"""What the return-label tests do over HTTP whatever the carrier (simulated or EasyPost): find a
case's label id, wait for its label to be bought (or held over its ceiling), approve a case or
decide on its label from 20 agents at once, and run ``returns worker`` processes to kill."""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from tests.support.tenants import Tenant, payment
from tests.support.waiting import eventually

CUSTOMER_ADDRESS = {"name": "Ann Lee", "street1": "Rue de Rivoli 5", "city": "Paris", "zip": "75001", "country": "FR"}
RETURN_ADDRESS = {"name": "Shop Returns", "street1": "Lagerstr. 1", "city": "Hamburg", "zip": "20095", "country": "DE"}
# the fewest settings that make the service buy labels (the browser tests')
MERCHANT_BUYS_LABELS = {
    "label_buyer": "merchant",
    "return_address": RETURN_ADDRESS,
    "default_parcel": {"weight_g": 800},
}


def label_id(shop: Tenant, case_id: str) -> str:
    """Our id of the case's label: the carrier's shipment carries it as its reference."""
    events = shop.agent.get(f"/admin/v1/cases/{case_id}/events").json()["items"]
    return next(e["data"]["label_id"] for e in events if e["type"] == "label_requested")


def label_reached(shop: Tenant, case_id: str, status: str, timeout: float = 15.0, *, agent: bool = False) -> dict[str, Any]:
    """The case (as the storefront sees it, or an agent), once its label is ``status``."""
    path = f"/admin/v1/cases/{case_id}" if agent else f"/v1/cases/{case_id}"

    def probe() -> dict[str, Any] | None:
        case = (shop.agent if agent else shop.storefront).get(path).json()
        return case if (case["label"] or {}).get("status") == status else None

    return eventually(probe, timeout=timeout)


def bought(shop: Tenant, case_id: str, timeout: float = 15.0) -> dict[str, Any]:
    """The case, once its label is bought."""
    return label_reached(shop, case_id, "bought", timeout)


def held(shop: Tenant, case_id: str) -> dict[str, Any]:
    """The case as an agent sees it (with why), once its label waits for an agent (over its ceiling)."""
    return label_reached(shop, case_id, "held", agent=True)


def case_for_review(shop: Tenant, shipping_address: dict[str, str]) -> dict[str, Any]:
    """A case over the auto-approval amount (a 300.00 TV): an agent approves it; the customer is
    responsible, so pays the label."""
    order = shop.put_order(
        shipping_address=shipping_address,
        lines=[{"line_id": "l1", "sku": "TV", "title": "TV", "quantity": 1, "unit_price": 30000, "category": "tv"}],
        payment=payment(30000),
    )
    case = shop.open_case(order["order_id"]).json()
    assert case["state"] == "pending_review", case
    return case


def at_once(shop: Tenant, path: str, agents: int = 20) -> list[int]:
    """The statuses of ``agents`` agents' POSTs of ``{}`` to ``path`` sent at the same time, sorted."""

    def post(_: int) -> int:
        with httpx.Client(base_url=shop.base_url, headers=shop.agent.headers, timeout=30) as client:
            return client.post(path, json={}).status_code

    with ThreadPoolExecutor(agents) as pool:
        return sorted(pool.map(post, range(agents)))


def approve_at_once(shop: Tenant, case_id: str, agents: int = 20) -> list[int]:
    """The statuses of ``agents`` approvals of the case sent at the same time, sorted."""
    return at_once(shop, f"/admin/v1/cases/{case_id}/approve", agents)


def worker_process(database_url: str, **settings: str) -> subprocess.Popen[bytes]:
    """A ``returns worker`` on that database with these settings (environment variables) and no
    other ``RETURNS_``, ``STRIPE_`` or ``EASYPOST_`` variable of the test's environment."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RETURNS_", "STRIPE_", "EASYPOST_"))}
    env.update(RETURNS_DATABASE_URL=database_url, RETURNS_LOG_FORMAT="json", **settings)
    return subprocess.Popen(
        [sys.executable, "-m", "service.cli", "worker"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
