"""The agent console in a real browser (the system Chromium, driven by Playwright) against the
real service on 127.0.0.1. Skipped, saying why, where Chromium is not installed."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

from tests.support.images import encode, photo
from tests.support.tenants import Tenant

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = pytest.mark.skipif(
    shutil.which("chromium") is None, reason="no Chromium on this machine: apt-get install chromium (.ci/run does)"
)
XSS = "<img src=x onerror=alert(1)>"


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
        )
        yield browser
        browser.close()


@pytest.fixture
def page(browser, base_url: str, tenant: Tenant):  # noqa: ANN001, ANN201
    context = browser.new_context()
    page = context.new_page()
    alerts: list[str] = []
    page.on("dialog", lambda dialog: (alerts.append(dialog.message), dialog.dismiss()))
    page.alerts = alerts
    page.goto(base_url + "/console")
    page.fill("#api-key", tenant.keys["agent"])
    page.click("#sign-in-form button")
    page.wait_for_selector("#queue:not([hidden])")
    yield page
    context.close()


def _defect_case(tenant: Tenant, quantity: int = 1) -> dict:
    order = tenant.put_order()
    case = tenant.open_case(
        order["order_id"], customer_note=f"it broke {XSS}",
        items=[{"line_id": "l1", "quantity": quantity, "reason": "defective", "note": XSS}],
    ).json()
    uploaded = tenant.storefront.post(
        f"/v1/cases/{case['id']}/photos", files={"file": ("p.jpg", encode(photo(seed=42 + quantity), "JPEG"), "image/jpeg")}
    )
    assert uploaded.status_code == 201
    return case


def _open(page, case_id: str) -> None:  # noqa: ANN001
    page.click("#back") if page.is_visible("#back") else None
    page.click("#filters button")
    page.click(f'tr[data-case="{case_id}"]')
    page.wait_for_selector(f'#case-id:text("{case_id}")')


def test_sign_in_find_open_see_decision_and_photo_then_approve(page, tenant: Tenant) -> None:  # noqa: ANN001
    case = _defect_case(tenant)
    _open(page, case["id"])
    assert page.text_content("#case-state") == "pending_review"
    assert "T-shirt" in page.text_content("#order-lines") and "Mug" in page.text_content("#order-lines")
    assert page.is_visible('#outcomes tr[data-rule="photo_evidence"]')
    assert "1 photo" in page.text_content('#outcomes tr[data-rule="photo_evidence"]')
    image = page.wait_for_selector("#photos img")
    page.wait_for_function("document.querySelector('#photos img').naturalWidth > 0")
    image.click()
    page.wait_for_selector("#viewer[open]")
    page.wait_for_function("document.querySelector('#viewer-image').naturalWidth > 320")
    page.click("#viewer button")

    page.fill('form[data-action="approve"] input[name="note"]', "looks defective")
    page.click('form[data-action="approve"] button')
    page.wait_for_selector('#case-state:text("approved")')
    assert tenant.agent.get(f"/admin/v1/cases/{case['id']}").json()["state"] == "approved"
    assert "approve" in page.text_content("#timeline")


def test_customer_text_is_shown_as_text_and_runs_nothing(page, tenant: Tenant) -> None:  # noqa: ANN001
    case = _defect_case(tenant)
    _open(page, case["id"])
    assert page.text_content("#customer-note") == f"it broke {XSS}"
    assert XSS in page.text_content("#items")
    assert page.query_selector('img[src="x"]') is None
    page.wait_for_timeout(300)
    assert page.alerts == []
    csp = page.evaluate("fetch('/console').then(r => r.headers.get('content-security-policy'))")
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp


def test_receive_a_short_shipment(page, tenant: Tenant) -> None:  # noqa: ANN001
    case = _defect_case(tenant, quantity=2)
    tenant.agent.post(f"/admin/v1/cases/{case['id']}/approve", json={})
    _open(page, case["id"])
    page.fill('#receive-items input[name="quantity:l1"]', "1")
    page.select_option('#receive-items select[name="condition:l1"]', "defective")
    page.click('form[data-action="receive"] button')
    # the refund is due at once, and the worker may pay it before the page shows the case again
    for _ in range(300):
        if page.text_content("#case-state") in ("refund_pending", "refunded", "closed"):
            break
        page.wait_for_timeout(50)
    assert page.text_content("#case-state") in ("refund_pending", "refunded", "closed")
    assert "1 (defective)" in page.text_content("#items")
    after = tenant.agent.get(f"/admin/v1/cases/{case['id']}").json()
    assert after["items"][0]["received_quantity"] == 1
    assert after["refunds"][0]["amount"] == 1999 + 495


def test_a_stale_edit_says_reload_and_the_language_switches(page, tenant: Tenant) -> None:  # noqa: ANN001
    case = _defect_case(tenant)
    _open(page, case["id"])
    tenant.agent.post(f"/admin/v1/cases/{case['id']}/notes", json={"text": "someone else was here"})
    page.fill('form[data-action="reject"] input[name="reason"]', "not defective")
    page.click('form[data-action="reject"] button')
    page.wait_for_selector("#notice.error")
    assert "reload" in page.text_content("#notice").lower()
    page.click("#notice button")
    page.wait_for_selector('#notes li:has-text("someone else was here")')
    assert tenant.agent.get(f"/admin/v1/cases/{case['id']}").json()["state"] == "pending_review"

    page.select_option("#language", "zh")
    page.wait_for_selector('header h1:text("退货控制台")')
    assert page.text_content('form[data-action="approve"] button') == "批准"
    page.select_option("#language", "en")
    page.wait_for_selector('header h1:text("Returns console")')


def test_overdue_cases_are_marked_and_sign_out_forgets_the_key(page, tenant: Tenant, base_url: str) -> None:  # noqa: ANN001
    _defect_case(tenant)
    page.click("#filters button")
    page.wait_for_selector("#queue-table tbody tr")
    assert page.text_content("#counts")
    assert tenant.keys["agent"] not in page.url
    page.click("#sign-out")
    page.wait_for_selector("#sign-in:not([hidden])")
    assert page.evaluate("sessionStorage.getItem('key')") is None


def test_console_files_are_served_with_one_charset_and_the_policy(base_url: str) -> None:
    import httpx

    for path, kind in (("/console", "text/html"), ("/console/app.js", "text/javascript"), ("/console/app.css", "text/css")):
        answer = httpx.get(base_url + path)
        assert answer.status_code == 200 and answer.headers["content-type"] == f"{kind}; charset=utf-8"
        assert answer.headers["content-security-policy"].startswith("default-src 'none'")
    assert httpx.get(base_url + "/console/i18n/fr.json").status_code == 404
    assert httpx.get(base_url + "/console/../service/api/console.py").status_code == 404
