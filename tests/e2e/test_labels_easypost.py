"""Return labels through EasyPost, over HTTP against a running service configured with
``EASYPOST_API_KEY`` and the fake EasyPost server's base (the real ``easypost`` SDK between them):
approve → the label bought once at EasyPost (also when 20 agents approve at once, when the buy's
answer is lost, and when the worker is killed while EasyPost buys it) → its real rate in the
money → tracking webhooks signed as EasyPost signs them, in any order and repeated, move the case
forward only → a bad, moved or re-signed signature answers 400 and changes nothing."""

# ruff: noqa: F811 - the fixtures of tests/support/easypost_labels.py, imported by name

from __future__ import annotations

import io
import os
import random
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pypdf
import pytest

from tests.fakes.easypost_server import FakeEasyPost, signature, signed
from tests.support.easypost_labels import (  # noqa: F401 - the running service
    SECRET,
    SETTINGS,
    easypost_service,
    fake,
    purchases,
    service_settings,
)
from tests.support.labels import (
    CUSTOMER_ADDRESS,
    approve_at_once,
    bought,
    case_for_review,
    label_id,
    worker_process,
)
from tests.support.server import fresh_service
from tests.support.tenants import Tenant
from tests.support.waiting import eventually

LEASE_SECONDS = 2  # a killed worker's label is taken over after this


@contextmanager
def _own_service(fake: FakeEasyPost, data_dir: Any, **changes: Any) -> Iterator[Tenant]:
    """A service of the test's own (its own database), and a merchant on it with shipping settings."""
    with fresh_service(**service_settings(fake, data_dir, **changes)) as (url, database_url):
        shop = Tenant(url, database_url)
        try:
            assert shop.admin.put("/admin/v1/shipping-settings", json=SETTINGS).status_code == 200
            yield shop
        finally:
            shop.close()


@pytest.fixture
def shop(easypost_service: tuple[str, str]) -> Iterator[Tenant]:
    tenant = Tenant(*easypost_service)
    assert tenant.admin.put("/admin/v1/shipping-settings", json=SETTINGS).status_code == 200
    yield tenant
    tenant.close()


def _approved_case(shop: Tenant) -> dict[str, Any]:
    case = shop.open_case(shop.put_order(shipping_address=CUSTOMER_ADDRESS)["order_id"]).json()
    assert case["state"] == "approved" and case["label"]["status"] == "pending", case
    return case


# --------------------------------------------------------------------------- buying once


def test_approval_buys_one_label_at_easypost_and_its_rate_is_in_the_money(shop: Tenant, fake: FakeEasyPost) -> None:
    case = _approved_case(shop)
    flat = case["money"]["return_shipping"]["customer_share"]
    case = bought(shop, case["id"])
    label = case["label"]
    assert (label["carrier"], label["service"], label["amount"], label["currency"]) == ("USPS", "Priority", 729, "EUR")
    assert case["money"]["return_shipping"]["customer_share"] == 729 != flat
    assert case["money"]["refund_total"] == 1999 - 729
    reference = label_id(shop, case["id"])
    assert purchases(fake, reference) == 1
    [shipment] = [s for s in fake.shipments.values() if s["reference"] == reference]
    assert label["tracking_code"] == shipment["tracking_code"]
    assert shipment["from_address"]["street1"] == "Rue de Rivoli 5" and shipment["to_address"]["city"] == "Hamburg"

    pdf = shop.storefront.get(f"/v1/cases/{case['id']}/label")
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    assert len(pypdf.PdfReader(io.BytesIO(pdf.content)).pages) == 1
    png = shop.storefront.get(f"/v1/cases/{case['id']}/label", params={"format": "png"})
    assert png.status_code == 200 and png.content.startswith(b"\x89PNG")
    qr = shop.storefront.get(f"/v1/cases/{case['id']}/label", params={"format": "qr"})  # USPS offers one
    assert qr.status_code == 200 and qr.content.startswith(b"\x89PNG") and qr.content != png.content


def test_twenty_concurrent_approvals_buy_one_label(shop: Tenant, fake: FakeEasyPost) -> None:
    case = case_for_review(shop, CUSTOMER_ADDRESS)
    assert approve_at_once(shop, case["id"]) == [200] + [409] * 19
    case = bought(shop, case["id"])
    assert case["label"]["amount"] == 729 and case["money"]["refund_total"] == 30000 - 729
    assert purchases(fake, label_id(shop, case["id"])) == 1


def test_a_lost_answer_and_a_failing_easypost_buy_once(shop: Tenant, fake: FakeEasyPost) -> None:
    fake.fail_next(2, status=503, on="/buy")  # EasyPost down twice: nothing bought, tried again later
    fake.drop_connection_next(after_commit=True, on="/buy")  # then bought, and the answer lost
    case = bought(shop, _approved_case(shop)["id"])
    assert purchases(fake, label_id(shop, case["id"])) == 1
    assert case["label"]["amount"] == 729


# --------------------------------------------------------------------------- a worker killed during the buy


def _worker(fake: FakeEasyPost, database_url: str) -> subprocess.Popen[bytes]:
    return worker_process(
        database_url,
        RETURNS_WORKER_IDLE_SECONDS="0.05",
        EASYPOST_API_KEY="EZTK_e2e",
        RETURNS_EASYPOST_API_BASE=fake.api_base,
        RETURNS_TRACKING_POLL_AFTER_SECONDS="3600",
        RETURNS_LABEL_LEASE_SECONDS=str(LEASE_SECONDS),
    )


def test_kill_9_while_easypost_buys_then_a_new_worker_buys_nothing_more(
    fake: FakeEasyPost, tmp_path_factory: pytest.TempPathFactory
) -> None:
    with _own_service(fake, tmp_path_factory.mktemp("restart"), run_worker=False) as shop:
        case = _approved_case(shop)
        reference = label_id(shop, case["id"])
        fake.delay_next(30, after_commit=True, on="/buy")  # bought at EasyPost, the answer held back
        doomed = _worker(fake, shop.database_url)
        try:
            eventually(lambda: purchases(fake, reference) == 1, timeout=30)
            os.kill(doomed.pid, signal.SIGKILL)
            doomed.wait(timeout=10)
        finally:
            if doomed.poll() is None:
                doomed.kill()
        assert shop.storefront.get(f"/v1/cases/{case['id']}").json()["label"]["status"] == "pending"
        successor = _worker(fake, shop.database_url)
        try:
            taken_over = bought(shop, case["id"], timeout=30)
        finally:
            successor.send_signal(signal.SIGTERM)
            successor.wait(timeout=15)
        assert purchases(fake, reference) == 1
        assert taken_over["label"]["amount"] == 729 and taken_over["money"]["refund_total"] == 1999 - 729


# --------------------------------------------------------------------------- tracking webhooks


def _post(shop: Tenant, payload: bytes, headers: dict[str, str]) -> httpx.Response:
    return httpx.post(f"{shop.base_url}/webhooks/easypost", content=payload, headers=headers, timeout=30)


def _scan_event(fake: FakeEasyPost, tracking_code: str, status: str, at: datetime) -> dict[str, Any]:
    """A ``tracker.updated`` event that carries this scan alone (events may come in any order)."""
    event = fake.scan(tracking_code, status, at=at)
    event["result"]["tracking_details"] = event["result"]["tracking_details"][-1:]
    return event


def _history(shop: Tenant, case_id: str) -> list[tuple[str, str]]:
    events = shop.agent.get(f"/admin/v1/cases/{case_id}/events").json()["items"]
    return [(e["type"], e["actor_role"]) for e in events if e["type"] in ("ship", "delivered", "receive")]


def test_scans_in_any_order_and_repeated_move_the_case_forward_only(shop: Tenant, fake: FakeEasyPost) -> None:
    case = bought(shop, _approved_case(shop)["id"])
    code = case["label"]["tracking_code"]
    start = datetime.now(UTC) - timedelta(hours=3)
    moving, out, delivered = (
        signed(_scan_event(fake, code, status, start + timedelta(hours=hour)), SECRET)
        for hour, status in ((1, "in_transit"), (2, "out_for_delivery"), (3, "delivered"))
    )

    first = _post(shop, *delivered)  # the delivery scan comes first
    assert first.status_code == 200 and first.json() == {"received": True, "duplicate": False}
    after_delivery = shop.agent.get(f"/admin/v1/cases/{case['id']}").json()
    assert after_delivery["state"] == "in_transit" and after_delivery["delivered_at"]
    assert _history(shop, case["id"]) == [("ship", "carrier"), ("delivered", "carrier")]

    late = [moving, out, delivered, moving]
    random.Random(17).shuffle(late)
    seen = {delivered[0]}
    for payload, headers in late:  # an event not seen yet is taken (200), one seen before is a replay (400)
        answer = _post(shop, payload, headers)
        expected = (400, "replayed_event") if payload in seen else (200, None)
        assert (answer.status_code, answer.json().get("code")) == expected, answer.text
        seen.add(payload)
    replayed = _post(shop, *delivered)  # the very request again: refused, though it changes nothing anyway
    assert replayed.status_code == 400 and replayed.json()["code"] == "replayed_event", replayed.text
    now = shop.agent.get(f"/admin/v1/cases/{case['id']}").json()
    assert (now["state"], now["version"], now["delivered_at"]) == (
        "in_transit",
        after_delivery["version"],
        after_delivery["delivered_at"],
    )
    assert _history(shop, case["id"]) == [("ship", "carrier"), ("delivered", "carrier")]
    queue = shop.agent.get("/admin/v1/cases", params={"delivered": "true"}).json()["items"]
    assert case["id"] in [c["id"] for c in queue]


def test_a_full_history_event_as_easypost_sends_it_moves_the_case_in_order(shop: Tenant, fake: FakeEasyPost) -> None:
    case = bought(shop, _approved_case(shop)["id"])
    code = case["label"]["tracking_code"]
    fake.scan(code, "in_transit", at=datetime.now(UTC) - timedelta(hours=1))
    event = fake.scan(code, "delivered")  # every earlier scan rides along
    assert _post(shop, *signed(event, SECRET)).json() == {"received": True, "duplicate": False}
    moved = shop.agent.get(f"/admin/v1/cases/{case['id']}").json()
    assert moved["state"] == "in_transit" and moved["delivered_at"]
    assert _history(shop, case["id"]) == [("ship", "carrier"), ("delivered", "carrier")]


def test_bad_moved_or_re_signed_signatures_are_400_and_change_nothing(shop: Tenant, fake: FakeEasyPost) -> None:
    case = bought(shop, _approved_case(shop)["id"])
    code = case["label"]["tracking_code"]
    payload, headers = signed(fake.scan(code, "in_transit"), SECRET)
    other_payload, _ = signed(fake.scan(code, "delivered"), SECRET)
    forged = payload.replace(b'"in_transit"', b'"delivered"')
    attempts = {
        "altered body": (forged, headers),
        "signature moved onto another body": (other_payload, headers),
        "re-signed with another secret": (forged, {**headers, "X-Hmac-Signature": signature(forged, "not-the-secret")}),
        "no signature": (payload, {"Content-Type": "application/json"}),
        "not EasyPost's form": (payload, {**headers, "X-Hmac-Signature": signature(payload, SECRET).split("=", 1)[1]}),
    }
    before = shop.agent.get(f"/admin/v1/cases/{case['id']}").json()
    for name, (body, sent) in attempts.items():
        answer = _post(shop, body, sent)
        assert answer.status_code == 400 and answer.json()["code"] == "invalid_signature", (name, answer.text)
    unreadable = b'{"description": "tracker.updated", "result": 7}'
    answer = _post(shop, unreadable, {"X-Hmac-Signature": signature(unreadable, SECRET)})
    assert answer.status_code == 400 and answer.json()["code"] == "invalid_event"
    after = shop.agent.get(f"/admin/v1/cases/{case['id']}").json()
    assert (after["state"], after["version"], after["delivered_at"]) == ("approved", before["version"], None)
    assert _history(shop, case["id"]) == []
    # the genuine request still works, once
    assert _post(shop, payload, headers).json() == {"received": True, "duplicate": False}
    assert shop.agent.get(f"/admin/v1/cases/{case['id']}").json()["state"] == "in_transit"


def test_a_scan_polled_from_a_quiet_tracker_and_its_webhook_later_are_one_scan(
    fake: FakeEasyPost, tmp_path_factory: pytest.TempPathFactory
) -> None:
    with _own_service(fake, tmp_path_factory.mktemp("poll"), tracking_poll_after_seconds=0.2) as shop:
        case = bought(shop, _approved_case(shop)["id"])
        event = fake.scan(case["label"]["tracking_code"], "in_transit")  # its webhook is late
        moved = eventually(lambda: (c := shop.agent.get(f"/admin/v1/cases/{case['id']}").json())["state"] == "in_transit" and c)
        assert _history(shop, case["id"]) == [("ship", "carrier")]
        assert _post(shop, *signed(event, SECRET)).json() == {"received": True, "duplicate": True}
        assert shop.agent.get(f"/admin/v1/cases/{case['id']}").json()["version"] == moved["version"]
