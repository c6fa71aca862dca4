"""A shipped exchange nobody closed closes by itself in the running service: its worker finds it,
closes it as the system and the storefront's webhook hears ``case.survey_requested``; a fresh one
waits. The service runs with the default wait (14 days) and its worker looking often; the old
case's shipping is moved 15 days back in its audit trail, where the wait is read from."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest

from adapters.postgres.database import PostgresDatabase
from service.config import Settings
from tests.fakes.resolver import ScriptedResolver
from tests.support.database import fresh_database
from tests.support.flows import EXCHANGE
from tests.support.receiver import receiving
from tests.support.server import serve
from tests.support.tenants import Tenant, _with_database
from tests.support.waiting import eventually

SHIP = {"carrier": "dhl", "tracking_number": "JD0001"}


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    from service.bootstrap import build_app

    with fresh_database() as database_url:
        settings = Settings(
            database_url=database_url,
            data_dir=tmp_path_factory.mktemp("auto_close"),
            log_format="json",
            worker_idle_seconds=0.05,
            worker_poll_every_seconds=0.1,
            webhook_allow_internal_targets=True,
        )
        app = build_app(settings, resolver=ScriptedResolver({"localhost": ["127.0.0.1"]}))
        with serve(app) as url:
            yield url, database_url


def _shipped_exchange(shop: Tenant) -> str:
    order = shop.put_order()
    case = shop.open_case(order["order_id"], **EXCHANGE).json()
    for action, body in (
        (
            "receive",
            {"items": [{"line_id": "l1", "quantity": 1, "condition": "as_new"}]},
        ),
        ("ship-replacement", SHIP),
    ):
        response = shop.agent.post(f"/admin/v1/cases/{case['id']}/{action}", json=body)
        assert response.status_code == 200, response.text
    return case["id"]


def _shipped_days_ago(shop: Tenant, case_id: str, days: int) -> None:
    async def move(db: PostgresDatabase) -> None:
        async with db.pool.acquire() as conn:
            moved = await conn.execute(
                "UPDATE case_events SET at = at - $3::interval WHERE merchant_id = $1 AND case_id = $2",
                shop.merchant_id,
                case_id,
                timedelta(days=days),
            )
        assert moved != "UPDATE 0"

    _with_database(shop.database_url, move)


def test_a_shipped_exchange_closes_by_itself_and_asks_for_the_survey(
    service: tuple[str, str],
) -> None:
    shop = Tenant(*service)
    try:
        with receiving() as receiver:
            receiver.secret = shop.admin.put("/admin/v1/webhook-endpoints", json={"url": receiver.url}).json()["secret"]
            fresh = _shipped_exchange(shop)
            old = _shipped_exchange(shop)
            _shipped_days_ago(shop, old, 15)
            eventually(lambda: shop.storefront.get(f"/v1/cases/{old}").json()["state"] == "closed")
            close = shop.agent.get(f"/admin/v1/cases/{old}/events").json()["items"][-1]
            assert (close["type"], close["actor_role"], close["to_state"]) == (
                "close",
                "system",
                "closed",
            )
            eventually(lambda: "case.survey_requested" in {e["type"] for e in receiver.of_case(old)})
            assert receiver.bad_signatures == 0
            assert shop.storefront.get(f"/v1/cases/{fresh}").json()["state"] == "replacement_shipped"
            assert "case.survey_requested" not in {e["type"] for e in receiver.of_case(fresh)}
            # the survey it asked for can be answered, once
            answered = shop.storefront.post(f"/v1/cases/{old}/survey", json={"rating": 5})
            assert answered.status_code == 200 and answered.json()["allowed_actions"] == []
    finally:
        shop.close()
