"""The customer's returns portal in a real browser (the system Chromium, driven by Playwright)
against the real service on 127.0.0.1, on a desktop and on a 390 px phone: from a link the
storefront made, a return of 2 of 3 lines with a photo, its quote, one case however often
"send" is tapped, the status page and its next steps, the survey, Chinese, customer text as
text, the lookup by order number and e-mail, and axe on every page.

``RETURNS_SCREENSHOTS=1`` writes the phone's pages to docs/screenshots/ (as test_console.py does)."""

from __future__ import annotations

import base64
import json
import re
import shutil
from pathlib import Path

import httpx
import pytest

from tests.browser.test_console import AXE, BROKEN_WORDS, WIDER_THAN_PAGE, _screenshot
from tests.support.images import encode, photo
from tests.support.tenants import Tenant
from tests.support.waiting import eventually

pytestmark = pytest.mark.skipif(
    shutil.which("chromium") is None, reason="no Chromium on this machine: apt-get install chromium (.ci/run does)"
)
PORTAL = Path(__file__).parents[2] / "service" / "portal_web"
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob:; connect-src 'self'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
XSS_TITLE = "Mug <img src=x onerror=alert(1)>"
XSS_NOTE = "<script>alert(2)</script> chipped"
PHONE = {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 2, "is_mobile": True, "has_touch": True}
DESKTOP = {"viewport": {"width": 1280, "height": 900}}
THREE_LINES = [
    {"line_id": "l1", "sku": "TSHIRT-M", "title": "T-shirt", "quantity": 2, "unit_price": 1999, "category": "apparel"},
    {"line_id": "l2", "sku": "MUG", "title": "Mug", "quantity": 1, "unit_price": 1500},
    {"line_id": "l3", "sku": "CAP", "title": "Cap", "quantity": 1, "unit_price": 1200},
]
RETURN_ADDRESS = "Returns dept.\nHauptstraße 1\n10115 Berlin"


def _order(tenant: Tenant, lines: list[dict] | None = None, language: str | None = None) -> dict:
    customer = {"id": f"cus_{tenant.merchant_id}", "email": "c@example.com", **({"language": language} if language else {})}
    return tenant.put_order(lines=lines or THREE_LINES, customer=customer,
                            payment={"gateway": "stripe", "reference": "pi_1", "captured_amount": 8693})


def _link(tenant: Tenant, order: dict, language: str = "en") -> str:
    made = tenant.storefront.post("/v1/portal-links", json={
        "order_id": order["order_id"], "customer_id": order["customer"]["id"], "language": language})
    assert made.status_code == 201, made.text
    return made.json()["url"]


def _page(browser, url: str, **options):  # noqa: ANN001, ANN202
    context = browser.new_context(**options)
    page = context.new_page()
    alerts: list[str] = []
    page.on("dialog", lambda dialog: (alerts.append(dialog.message), dialog.dismiss()))
    page.alerts = alerts
    page.goto(url)
    return page


def _draft(page, picks: dict[str, tuple[int, str, str]], photos: int = 0) -> None:  # noqa: ANN001
    """On the order page: pick lines {line_id: (quantity, reason, note)}, add photos, continue to the quote."""
    page.wait_for_selector("#order:not([hidden]) #lines li")
    page.wait_for_function("() => !document.querySelector('#lines .avail').textContent.endsWith('…')")
    for line_id, (quantity, reason, note) in picks.items():
        item = f'#lines li[data-line="{line_id}"]'
        page.check(f"{item} input[name=pick]")
        page.select_option(f"{item} select[name=quantity]", str(quantity))
        page.select_option(f"{item} select[name=reason]", reason)
        if note:
            page.fill(f"{item} input[name=note]", note)
    for seed in range(photos):
        page.set_input_files("#photo-input", files=[{"name": f"p{seed}.jpg", "mimeType": "image/jpeg",
                                                     "buffer": encode(photo(seed=50 + seed), "JPEG")}])
    page.click("#draft button[type=submit]")
    page.wait_for_selector("#quote:not([hidden])")


def _cases(tenant: Tenant, order: dict) -> list[dict]:
    return tenant.storefront.get("/v1/cases", params={"order_id": order["order_id"]}).json()["items"]


@pytest.mark.parametrize("device", ["desktop", "phone"])
def test_a_return_of_two_of_three_lines_with_a_photo_from_a_storefront_link(
    browser, tenant: Tenant, device: str  # noqa: ANN001
) -> None:
    tenant.admin.put("/admin/v1/mail-settings", json={"return_address": RETURN_ADDRESS})
    order = _order(tenant)
    page = _page(browser, _link(tenant, order), **(PHONE if device == "phone" else DESKTOP))
    page.wait_for_selector("#order:not([hidden]) #lines li")
    assert "t=" not in page.url and page.url.endswith("/portal#/"), "the token left the address bar"
    assert page.evaluate("sessionStorage.getItem('portal_token')").startswith("pt1.")
    assert order["order_id"] in page.text_content("#order-title")
    page.wait_for_function("() => document.querySelector('#lines li[data-line=\"l1\"] .avail').textContent.includes('Return')")
    assert "Possible: Return, Exchange, Repair" in page.text_content('#lines li[data-line="l3"] .avail')
    if device == "phone":
        assert page.evaluate(WIDER_THAN_PAGE) == []
        assert page.evaluate(BROKEN_WORDS) == []
        _screenshot(page, "portal-phone-order", full_page=False)

    _draft(page, {"l1": (2, "defective", "seam torn"), "l2": (1, "changed_mind", "")}, photos=1)
    # a defective item makes the merchant responsible: no label to pay, the original shipping back too
    money = page.text_content("#quote-money")
    assert "€54.98" in money and "Free: the shop pays the €5.00 return shipping." in money
    assert "€59.93 back to your original payment" in money, money
    assert "2 × T-shirt" in page.text_content("#quote-items") and "Cap" not in page.text_content("#quote-items")
    if device == "phone":
        assert page.evaluate(WIDER_THAN_PAGE) == []
        _screenshot(page, "portal-phone-quote", full_page=True)
    page.click("#submit")
    page.wait_for_selector("#case:not([hidden]) #case-state")
    assert re.match(r".*#/cases/case_\w+$", page.url)

    [case] = _cases(tenant, order)
    assert [(i["line_id"], i["quantity"], i["reason"]) for i in case["items"]] == [("l1", 2, "defective"), ("l2", 1, "changed_mind")]
    assert len(case["photos"]) == 1, "the photo went with the request"
    assert page.text_content("#case-state") == "We are looking at your request"
    page.wait_for_selector("#case-photos img[src^='blob:']")
    assert "You sent your request" in page.text_content("#timeline") and "{" not in page.text_content("#timeline")

    approved = tenant.agent.post(f"/admin/v1/cases/{case['id']}/approve", json={"note": "internal: customer is nice"})
    assert approved.status_code == 200, approved.text
    page.reload()
    page.wait_for_selector('#case-state:text("Approved")')
    assert page.text_content("#next-actions address") == RETURN_ADDRESS
    assert "internal" not in page.text_content("#case")
    page.fill('form[data-action="return-shipment"] input[name=carrier]', "DHL")
    page.fill('form[data-action="return-shipment"] input[name=tracking_number]', "JD0001")
    page.click('form[data-action="return-shipment"] button[type=submit]')
    page.wait_for_selector('#case-state:text("On its way back to us")')
    assert "JD0001" in page.text_content("#next-actions")
    assert tenant.storefront.get(f"/v1/cases/{case['id']}").json()["state"] == "in_transit"
    if device == "phone":
        assert page.evaluate(WIDER_THAN_PAGE) == []
        _screenshot(page, "portal-phone-status", full_page=True)
    page.click("#back-to-order")
    page.wait_for_selector(f'#order-cases li[data-case="{case["id"]}"]')
    page.reload()
    page.wait_for_selector(f'#order-cases li[data-case="{case["id"]}"]')
    page.context.close()
