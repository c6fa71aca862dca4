"""Reads that see one moment: an answer assembled from several statements (the case, then its
refunds, photos and label) never mixes two commits. A writer changes a case's label and its money
together in one transaction, again and again, while the storefront, the agent, the customer's
portal and the queue read the case: no answer shows a label amount that its money does not carry.

Origin: issue #28 (a fresh clone's CI showed the label bought at 7.29 while the case's money still
charged the flat 5.00: the view read the case before the worker's commit and the label after it)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import msgspec

from adapters.postgres.database import PostgresDatabase
from tests.support.labels import bought, case_for_review
from tests.support.tenants import Tenant

RETURN_ADDRESS = {"name": "Shop Returns", "street1": "Lagerstr. 1", "city": "Hamburg", "zip": "20095", "country": "DE"}
CUSTOMER_ADDRESS = {"name": "Ann Lee", "street1": "Rue de Rivoli 5", "city": "Paris", "zip": "75001", "country": "FR"}
SECONDS = 4.0
READERS = 4


async def _flip(database_url: str, merchant_id: str, case_id: str, stop: threading.Event) -> int:
    """The label's amount and the customer's share of it set together, in one transaction each
    time, through the repositories the service writes with; answers the commits made."""
    db = await PostgresDatabase.connect(database_url, min_size=1, max_size=1)
    commits = 0
    try:
        while not stop.is_set():
            async with db.transaction() as repos:
                label = await repos.get_case_label(merchant_id, case_id, for_update=True)
                case = await repos.get_case(merchant_id, case_id, for_update=True)
                assert label is not None and label.amount is not None
                amount = label.amount + 1
                shipping = msgspec.structs.replace(case.money.return_shipping, customer_share=amount)
                case.money = msgspec.structs.replace(case.money, return_shipping=shipping)
                await repos.update_label(msgspec.structs.replace(label, amount=amount))
                await repos.save_case(case, case.version)
            commits += 1
    finally:
        await db.close()
    return commits


def _torn(case: dict[str, Any]) -> bool:
    return case["label"]["amount"] != case["money"]["return_shipping"]["customer_share"]


def test_no_case_view_shows_a_label_its_money_does_not_carry(tenant: Tenant) -> None:
    settings = {"label_buyer": "merchant", "return_address": RETURN_ADDRESS, "default_parcel": {"weight_g": 800}}
    assert tenant.admin.put("/admin/v1/shipping-settings", json=settings).status_code == 200
    case = case_for_review(tenant, CUSTOMER_ADDRESS)
    assert tenant.agent.post(f"/admin/v1/cases/{case['id']}/approve", json={}).status_code == 200
    case = bought(tenant, case["id"])
    assert not _torn(case), "the worker's own purchase is in the money"
    link = tenant.storefront.post("/v1/portal-links", json={"order_id": case["order_id"], "customer_id": case["customer_id"]})
    assert link.status_code == 201, link.text
    auth = {"Authorization": f"Bearer {link.json()['token']}"}
    reads: dict[str, Callable[[httpx.Client], list[dict[str, Any]]]] = {
        "storefront": lambda c: [c.get(f"/v1/cases/{case['id']}", headers=tenant.storefront.headers).json()],
        "agent": lambda c: [c.get(f"/admin/v1/cases/{case['id']}", headers=tenant.agent.headers).json()],
        "portal": lambda c: [c.get(f"/v1/cases/{case['id']}", headers=auth).json()],
        "queue": lambda c: c.get("/admin/v1/cases", headers=tenant.agent.headers, params={"order_id": case["order_id"]}).json()[
            "items"
        ],
    }
    stop = threading.Event()
    seen: dict[str, list[int]] = {name: [0, 0] for name in reads}  # [reads, torn]

    def read(name: str) -> None:
        with httpx.Client(base_url=tenant.base_url, timeout=30) as client:
            while not stop.is_set():
                for view in reads[name](client):
                    seen[name][0] += 1
                    seen[name][1] += _torn(view)

    with ThreadPoolExecutor(READERS + 1) as pool:
        writer = pool.submit(asyncio.run, _flip(tenant.database_url, tenant.merchant_id, case["id"], stop))
        readers = [pool.submit(read, name) for name in reads]
        time.sleep(SECONDS)
        stop.set()
        commits = writer.result()
        for reader in readers:
            reader.result()
    assert commits > 100 and all(count > 20 for count, _ in seen.values()), (commits, seen)
    assert {name: torn for name, (_, torn) in seen.items()} == dict.fromkeys(reads, 0), seen
