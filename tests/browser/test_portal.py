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
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from service.config import Settings
from tests.browser.test_console import AXE, BROKEN_WORDS, WIDER_THAN_PAGE, _screenshot
from tests.support.database import fresh_database
from tests.support.images import encode, photo
from tests.support.labels import CUSTOMER_ADDRESS, MERCHANT_BUYS_LABELS, bought
from tests.support.server import free_port, serve
from tests.support.smtp import Inbox, smtp_server
from tests.support.tenants import Tenant, payment
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
    return tenant.put_order(lines=lines or THREE_LINES, customer=customer, payment=payment(8693))


def _link(tenant: Tenant, order: dict, language: str = "en") -> str:
    made = tenant.storefront.post(
        "/v1/portal-links", json={"order_id": order["order_id"], "customer_id": order["customer"]["id"], "language": language}
    )
    assert made.status_code == 201, made.text
    return made.json()["url"]


def _page(browser, url: str, **options):
    context = browser.new_context(**options)
    page = context.new_page()
    alerts: list[str] = []
    page.on("dialog", lambda dialog: (alerts.append(dialog.message), dialog.dismiss()))
    page.alerts = alerts
    page.goto(url)
    return page


def _draft(page, picks: dict[str, tuple[int, str, str]], photos: int = 0) -> None:
    """On the order page: pick lines {line_id: (quantity, reason, note)}, add photos, continue to the quote."""
    page.wait_for_selector("#order:not([hidden]) #lines li")
    page.wait_for_function("() => [...document.querySelectorAll('#lines .avail')].every((e) => !e.textContent.endsWith('…'))")
    for line_id, (quantity, reason, note) in picks.items():
        item = f'#lines li[data-line="{line_id}"]'
        page.check(f"{item} input[name=pick]")
        page.select_option(f"{item} select[name=quantity]", str(quantity))
        page.select_option(f"{item} select[name=reason]", reason)
        if note:
            page.fill(f"{item} input[name=note]", note)
    for seed in range(photos):
        page.set_input_files(
            "#photo-input",
            files=[{"name": f"p{seed}.jpg", "mimeType": "image/jpeg", "buffer": encode(photo(seed=50 + seed), "JPEG")}],
        )
    page.click("#draft button[type=submit]")
    page.wait_for_selector("#quote:not([hidden])")


def _cases(tenant: Tenant, order: dict) -> list[dict]:
    return tenant.storefront.get("/v1/cases", params={"order_id": order["order_id"]}).json()["items"]


@pytest.mark.parametrize("device", ["desktop", "phone"])
def test_a_return_of_two_of_three_lines_with_a_photo_from_a_storefront_link(browser, tenant: Tenant, device: str) -> None:
    tenant.admin.put("/admin/v1/mail-settings", json={"return_address": RETURN_ADDRESS})
    order = _order(tenant)
    page = _page(browser, _link(tenant, order), **(PHONE if device == "phone" else DESKTOP))
    page.wait_for_selector("#order:not([hidden]) #lines li")
    assert "t=" not in page.url and page.url.endswith("/portal#/"), "the token left the address bar"
    assert page.evaluate("sessionStorage.getItem('portal_token')").startswith("pt1.")
    assert order["order_id"] in page.text_content("#order-title")
    page.wait_for_function("() => document.querySelector('#lines li[data-line=\"l1\"] .avail')?.textContent.includes('Return')")
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
    assert [(i["line_id"], i["quantity"], i["reason"]) for i in case["items"]] == [
        ("l1", 2, "defective"),
        ("l2", 1, "changed_mind"),
    ]
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


def test_a_double_tap_or_a_retry_after_a_lost_answer_opens_one_case(browser, tenant: Tenant) -> None:
    order = _order(tenant)
    page = _page(browser, _link(tenant, order))
    _draft(page, {"l3": (1, "changed_mind", "")})
    keys: list[str] = []
    page.on(
        "request",
        lambda r: keys.append(r.headers.get("idempotency-key")) if r.method == "POST" and r.url.endswith("/v1/cases") else None,
    )

    def lose_the_first_answer(route) -> None:
        if len(keys) == 1:
            route.fetch()  # the service opens the case...
            route.abort("connectionreset")  # ...and its answer never reaches the phone
        else:
            route.continue_()

    page.route("**/v1/cases", lose_the_first_answer)
    page.click("#submit")
    page.wait_for_selector("#submit-result.error")
    assert "could not reach" in page.text_content("#submit-result")
    assert len(_cases(tenant, order)) == 1
    page.evaluate("() => { const send = document.querySelector('#submit'); send.click(); send.click(); }")  # a double tap
    page.wait_for_selector("#case:not([hidden]) #case-state")
    assert len(_cases(tenant, order)) == 1, "one case however often it was sent"
    assert len(keys) == 2 and keys[0] == keys[1] and len(keys[0]) == 32, keys

    page.click("#back-to-order")  # a new draft is a new request, with a key of its own
    _draft(page, {"l2": (1, "changed_mind", "")})
    page.dblclick("#submit")
    page.wait_for_selector("#case:not([hidden]) #case-state")
    assert len(_cases(tenant, order)) == 2 and len(set(keys)) == 2
    page.context.close()


def _english_left(page) -> list[str]:
    """Latin words on screen, less what came from the shop or the customer (marked translate=no)."""
    return page.evaluate("""() => {
      const copy = document.body.cloneNode(true);
      for (const node of copy.querySelectorAll('[hidden], [translate=no], #language')) node.remove();
      return copy.textContent.match(/[A-Za-z]{2,}/g) || [];
    }""")


def test_the_chinese_portal_has_no_untranslated_text(browser, tenant: Tenant) -> None:
    order = _order(tenant, language="zh-CN")
    page = _page(browser, _link(tenant, order, "zh-CN"), **PHONE)
    page.wait_for_selector('h1:text("退货服务")')
    _draft(page, {"l1": (1, "wrong_size", ""), "l2": (1, "defective", "")}, photos=0)
    assert _english_left(page) == []
    page.click("#change")
    page.check('#draft input[name=type][value="exchange"]')
    page.wait_for_selector('#lines li[data-line="l1"] input[name=replacement_sku]:visible')
    assert _english_left(page) == [] and "可以：" in page.text_content('#lines li[data-line="l1"] .avail')
    page.go_forward()  # the quote of the draft as it was sent for
    page.click("#quote:not([hidden]) #submit")
    page.wait_for_selector('#case-state:text("我们正在审核您的申请")')
    assert _english_left(page) == []
    assert "年" in page.text_content("#timeline time")
    assert page.evaluate(WIDER_THAN_PAGE) == []
    page.set_input_files("#more-photos", files=[{"name": "p.jpg", "mimeType": "image/jpeg", "buffer": b"not a picture"}])
    page.click('form[data-action="photos"] button[type=submit]')
    assert (
        page.wait_for_selector('form[data-action="photos"] .result:not(:empty)').text_content()
        == "无法识别此文件，请换一张照片。"
    )
    assert _english_left(page) == []
    page.select_option("#language", "en")
    page.wait_for_selector('#case-state:text("We are looking at your request")')
    page.context.close()


def test_customer_text_is_shown_as_text_under_a_strict_policy(browser, tenant: Tenant, base_url: str) -> None:
    lines = [dict(THREE_LINES[0]), {**THREE_LINES[1], "title": XSS_TITLE}]
    order = _order(tenant, lines=lines)
    page = _page(browser, _link(tenant, order))
    _draft(page, {"l2": (1, "other", XSS_NOTE)})
    assert XSS_TITLE in page.text_content("#quote-items") and XSS_NOTE in page.text_content("#quote-items")
    page.click("#submit")
    page.wait_for_selector("#case:not([hidden]) #case-state")
    assert XSS_TITLE in page.text_content("#case-items") and XSS_NOTE in page.text_content("#case-items")
    page.click("#back-to-order")
    page.wait_for_selector('#lines li[data-line="l2"]')
    assert XSS_TITLE in page.text_content("#lines")
    page.wait_for_timeout(300)
    assert page.query_selector('img[src="x"]') is None and page.alerts == []

    answer = httpx.get(base_url + "/portal")
    assert answer.headers["content-security-policy"] == CSP
    assert answer.headers["referrer-policy"] == "no-referrer"
    for path in ("/portal/portal.js", "/portal/portal.css", "/portal/i18n/zh.json"):
        assert httpx.get(base_url + path).headers["content-security-policy"] == CSP
    assert httpx.get(base_url + "/portal/i18n/fr.json").status_code == 404
    assert httpx.get(base_url + "/portal/../service/api/portal_pages.py").status_code == 404
    html = (PORTAL / "index.html").read_text()
    assert re.search(r"\son\w+\s*=", html) is None and " style=" not in html
    assert re.findall(r"<script[^>]*>", html) == ['<script src="/console/ui.js" defer>', '<script src="/portal/portal.js" defer>']
    script = (PORTAL / "portal.js").read_text() + (PORTAL.parent / "console" / "ui.js").read_text()
    assert not re.search(r"innerHTML|outerHTML|insertAdjacentHTML|document\.write|\beval\(|new Function", script)
    page.context.close()


def _token_with(token: str, **claims: object) -> str:
    """The token with other claims and its old signature: the service refuses it."""
    prefix, key, body, signature = token.split(".")
    decoded = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    changed = base64.urlsafe_b64encode(json.dumps({**decoded, **claims}).encode()).rstrip(b"=").decode()
    return f"{prefix}.{key}.{changed}.{signature}"


def test_an_expired_or_altered_link_offers_the_lookup_which_answers_alike(browser, tenant: Tenant, base_url: str) -> None:
    order = _order(tenant)
    token = _link(tenant, order).split("#t=")[1]
    page = _page(browser, f"{base_url}/portal#t={_token_with(token, exp=1_000_000_000)}")
    page.wait_for_selector("#lookup:not([hidden]) #lookup-expired:not([hidden])")
    assert page.input_value("#lookup-merchant") == tenant.merchant_id and not page.is_visible("#lookup-merchant")
    assert page.input_value("#lookup-order") == order["order_id"]
    assert page.evaluate("sessionStorage.getItem('portal_token')") is None

    page.goto(f"{base_url}/portal#t={_token_with(token, o='o_someone_elses')}")  # altered: the service answers 401
    page.wait_for_selector("#lookup:not([hidden]) #lookup-expired:not([hidden])")
    assert "o_someone_elses" not in page.text_content("body")

    fresh = _page(browser, f"{base_url}/portal?m={tenant.merchant_id}")
    fresh.wait_for_selector("#lookup:not([hidden])")
    assert not fresh.is_visible("#lookup-expired") and not fresh.is_visible("#lookup-merchant")
    answers = []
    for order_id, email in (
        (order["order_id"], "c@example.com"),
        ("o_missing", "c@example.com"),
        (order["order_id"], "x@example.com"),
    ):
        fresh.fill("#lookup-order", order_id)
        fresh.fill("#lookup-email", email)
        fresh.evaluate("() => { document.querySelector('#lookup-result').textContent = ''; }")
        fresh.click("#lookup-form button[type=submit]")
        answers.append(fresh.wait_for_selector("#lookup-result:not(:empty)").text_content())
    assert len(set(answers)) == 1 and "link is on its way" in answers[0], answers
    for _ in range(6):  # the service allows a few lookups an hour per e-mail
        fresh.evaluate("() => { document.querySelector('#lookup-result').textContent = ''; }")
        fresh.click("#lookup-form button[type=submit]")
        if "try again later" in fresh.wait_for_selector("#lookup-result:not(:empty)").text_content():
            break
    else:
        pytest.fail("the lookup was never rate-limited")
    page.context.close()
    fresh.context.close()


def _closed_case(tenant: Tenant, order: dict) -> dict:
    """A return of the cap, approved, received and refunded: closed, its survey due."""
    case = tenant.open_case(order["order_id"], items=[{"line_id": "l3", "quantity": 1, "reason": "arrived_late"}]).json()
    if case["state"] != "approved":
        assert tenant.agent.post(f"/admin/v1/cases/{case['id']}/approve", json={}).status_code == 200
    received = tenant.agent.post(
        f"/admin/v1/cases/{case['id']}/receive", json={"items": [{"line_id": "l3", "quantity": 1, "condition": "as_new"}]}
    )
    assert received.status_code == 200, received.text
    return eventually(lambda: (c := tenant.storefront.get(f"/v1/cases/{case['id']}").json())["state"] == "closed" and c)


def test_the_one_click_rating_lands_on_the_survey_and_counts_in_csat(browser, tenant: Tenant) -> None:
    order = _order(tenant)
    case = _closed_case(tenant, order)
    page = _page(browser, f"{_link(tenant, order)}&case={case['id']}&do=survey&rating=4", **PHONE)
    page.wait_for_selector('form[data-action="survey"] input[value="4"]:checked')
    assert page.evaluate("document.activeElement.textContent") == "Send my rating"
    assert page.url.endswith(f"/portal#/cases/{case['id']}")
    assert "Refund sent" in page.text_content("#timeline") and "€16.95: sent" in page.text_content("#case-refunds")
    page.fill("#survey-comment", "quick, thanks")
    page.click('form[data-action="survey"] button[type=submit]')
    page.wait_for_selector("#survey-thanks")
    assert tenant.storefront.get(f"/v1/cases/{case['id']}").json()["survey"]["rating"] == 4
    csat = tenant.finance.get("/finance/v1/reports/reasons").json()["csat"]
    assert csat["surveys"] == 1 and csat["average_rating"] == 4.0
    page.context.close()


def test_an_information_request_is_answered_from_its_link(browser, tenant: Tenant) -> None:
    order = _order(tenant)
    case = tenant.open_case(order["order_id"], items=[{"line_id": "l1", "quantity": 1, "reason": "defective"}]).json()
    asked = tenant.agent.post(f"/admin/v1/cases/{case['id']}/request-info", json={"message": "Which size is the <b>tear</b>?"})
    assert asked.status_code == 200, asked.text
    page = _page(browser, f"{_link(tenant, order)}&case={case['id']}&do=info")
    page.wait_for_selector("#answer:focus")
    assert "Which size is the <b>tear</b>?" in page.text_content("#next-actions")
    page.fill("#answer", "About 3 cm")
    page.click('form[data-action="info"] button[type=submit]')
    page.wait_for_selector('#case-state:text("We are looking at your request")')
    assert tenant.agent.get(f"/admin/v1/cases/{case['id']}").json()["state"] == "pending_review"
    assert "You answered" in page.text_content("#timeline")
    page.context.close()


def test_the_return_label_is_downloaded_from_the_status_page(browser, tenant: Tenant) -> None:
    assert tenant.admin.put("/admin/v1/shipping-settings", json=MERCHANT_BUYS_LABELS).status_code == 200
    order = tenant.put_order(
        lines=THREE_LINES,
        shipping_address=CUSTOMER_ADDRESS,
        customer={"id": f"cus_{tenant.merchant_id}", "email": "c@example.com"},
        payment=payment(8693),
    )
    case = tenant.open_case(order["order_id"], items=[{"line_id": "l1", "quantity": 1, "reason": "changed_mind"}]).json()
    if case["state"] != "approved":
        assert tenant.agent.post(f"/admin/v1/cases/{case['id']}/approve", json={}).status_code == 200
    label = bought(tenant, case["id"])["label"]
    link = f"{_link(tenant, order)}&case={case['id']}&do=status"
    page = _page(browser, link, accept_downloads=True, **PHONE)  # under the page's own CSP
    page.wait_for_selector("#label-download")
    assert label["tracking_code"] in page.text_content(".label")
    with page.expect_download() as download:
        page.click("#label-download")
    pdf = Path(download.value.path()).read_bytes()
    assert pdf.startswith(b"%PDF") and pdf == tenant.storefront.get(f"/v1/cases/{case['id']}/label").content
    page.context.close()
    page = _page(browser, link, bypass_csp=True, **PHONE)  # the CSP set aside for axe's script only
    page.wait_for_selector("#label-download")
    page.add_script_tag(path=str(AXE))
    found = page.evaluate("axe.run(document).then(r => r.violations.map(v => [v.id, v.impact]))")
    assert [v for v in found if v[1] in ("critical", "serious")] == []
    page.context.close()


@pytest.mark.parametrize("language", ["en", "zh-CN"])
def test_axe_finds_nothing_critical_or_serious_on_any_portal_page(browser, tenant: Tenant, base_url: str, language: str) -> None:
    tenant.admin.put("/admin/v1/mail-settings", json={"return_address": RETURN_ADDRESS})
    order = _order(tenant)
    closed = _closed_case(tenant, order)
    link = _link(tenant, order, language)
    page = _page(browser, f"{base_url}/portal?m={tenant.merchant_id}", bypass_csp=True)
    if language == "zh-CN":
        page.select_option("#language", "zh")
    page.wait_for_selector("#lookup:not([hidden])")

    def check(where: str) -> None:
        page.add_script_tag(path=str(AXE))
        found = page.evaluate("axe.run(document).then(r => r.violations.map(v => [v.id, v.impact, v.nodes.length]))")
        bad = [v for v in found if v[1] in ("critical", "serious")]
        assert bad == [], (where, language, bad)

    check("lookup")
    page.goto(link)
    _draft(page, {"l1": (1, "defective", "torn"), "l2": (1, "changed_mind", "")})
    check("quote")
    page.click("#change")
    page.wait_for_selector("#order:not([hidden])")
    check("order")
    page.click("#draft button[type=submit]")
    page.wait_for_selector("#quote:not([hidden])")
    page.click("#submit")
    page.wait_for_selector("#case:not([hidden]) #case-state")
    opened = _cases(tenant, order)[0]
    approved = tenant.agent.post(
        f"/admin/v1/cases/{opened['id']}/approve",
        json={"overrides": [{"rule": "photo_evidence", "reason": "seen at the counter"}]},
    )
    assert approved.status_code == 200, approved.text
    page.reload()
    page.wait_for_selector('form[data-action="return-shipment"]')
    check("status")
    page.goto(f"{link}&case={closed['id']}&do=survey&rating=5")
    page.wait_for_selector('form[data-action="survey"]')
    check("survey")
    page.context.close()


def test_each_line_says_what_it_allows_and_the_choices_show_their_money(browser, tenant: Tenant) -> None:
    assert tenant.admin.put("/admin/v1/policy", json={"rules": {"store_credit_bonus": {"percent": 10}}}).status_code == 200
    lines = [THREE_LINES[0], {**THREE_LINES[1], "final_sale": True}, THREE_LINES[2]]
    order = _order(tenant, lines=lines)
    tenant.open_case(order["order_id"], items=[{"line_id": "l3", "quantity": 1, "reason": "changed_mind"}])
    page = _page(browser, _link(tenant, order))
    page.wait_for_function(
        "() => document.querySelector('#lines li[data-line=\"l2\"] .avail')?.textContent.includes('final sale')"
    )
    assert page.text_content('#lines li[data-line="l2"] .avail') == (
        "Possible: Repair · Return: final sale, only if it is faulty or not what you ordered · "
        "Exchange: final sale, only if it is faulty or not what you ordered"
    )
    assert page.text_content('#lines li[data-line="l3"] .avail') == "Already returned or in a request"
    assert page.is_disabled('#lines li[data-line="l3"] input[name=pick]')
    assert page.text_content("#bonus") == "includes a 10% bonus"

    page.check('#draft input[name=resolution][value="store_credit"]')
    _draft(page, {"l1": (1, "changed_mind", "")})
    money = page.text_content("#quote-money")
    # 19.99 less the 5.00 label the customer pays = 14.99, and 10% on top: 1.50
    assert (
        "You pay the €5.00 return label; it is deducted." in money and "€16.49 in store credit (with a €1.50 bonus)" in money
    ), money
    page.click("#change")
    page.check('#draft input[name=type][value="exchange"]')
    page.fill('#lines li[data-line="l1"] input[name=replacement_sku]', "TSHIRT-L")
    page.click("#draft button[type=submit]")
    page.wait_for_selector("#quote:not([hidden])")
    assert "You pay €5.00 of the €10.00 shipping." in page.text_content("#quote-money")
    assert "You pay €5.00 for the difference." in page.text_content("#quote-money")
    sent: list[dict] = []
    page.on("request", lambda r: sent.append(r.post_data_json) if r.method == "POST" and r.url.endswith("/v1/cases") else None)
    page.click("#submit")
    page.wait_for_selector("#case:not([hidden]) #case-state")
    assert sent == [
        {
            "order_id": order["order_id"],
            "type": "exchange",
            "items": [{"line_id": "l1", "quantity": 1, "reason": "changed_mind", "replacement_sku": "TSHIRT-L"}],
        }
    ]

    page.click("#back-to-order")  # the final-sale mug can still go back when it is faulty
    _draft(page, {"l2": (1, "changed_mind", "")})
    assert "final sale" in page.text_content("#quote-blocked") and not page.is_visible("#submit")
    page.click("#change")
    page.select_option('#lines li[data-line="l2"] select[name=reason]', "defective")
    page.click("#draft button[type=submit]")
    page.wait_for_selector("#quote:not([hidden]) #submit:visible")
    assert "A member of our team will look at your request" in page.text_content("#quote-notes")
    page.context.close()


def test_a_repair_quote_is_accepted_and_a_request_cancelled_with_a_second_tap(browser, tenant: Tenant) -> None:
    delivered = datetime.now(UTC) - timedelta(days=400)
    order = tenant.put_order(
        lines=THREE_LINES,
        placed_at=(delivered - timedelta(days=2)).isoformat(),
        delivered_at=delivered.isoformat(),
        customer={"id": "cus_repair", "email": "r@example.com"},
    )
    repair = tenant.open_case(
        order["order_id"],
        type="repair",
        resolution=None,
        issue_description="zip broken",
        items=[{"line_id": "l1", "quantity": 1, "reason": "defective"}],
    ).json()
    path = f"/admin/v1/cases/{repair['id']}"
    tenant.agent.post(f"{path}/approve", json={"overrides": [{"rule": "photo_evidence", "reason": "seen at the counter"}]})
    tenant.agent.post(f"{path}/receive", json={"items": [{"line_id": "l1", "quantity": 1, "condition": "defective"}]})
    quoted = tenant.agent.post(
        f"{path}/repair/diagnose", json={"finding": "motor <b>worn</b>", "in_warranty": False, "quote_amount": 4500}
    )
    assert quoted.json()["state"] == "quote_pending", quoted.text
    page = _page(browser, f"{_link(tenant, order)}&case={repair['id']}&do=status")
    page.wait_for_selector('#case-state:text("A repair quote is waiting for your answer")')
    assert "motor <b>worn</b>" in page.text_content("#next-actions") and "Repair quote: €45.00" in page.text_content(
        "#next-actions"
    )
    page.click('button[data-action="quote/accept"]')
    page.wait_for_selector('#case-state:text("Your item is being repaired")')
    assert "You accepted the quote" in page.text_content("#timeline")

    other = tenant.open_case(
        order["order_id"],
        type="repair",
        resolution=None,
        issue_description="button loose",
        items=[{"line_id": "l2", "quantity": 1, "reason": "defective"}],
    ).json()
    page.goto(f"{_link(tenant, order)}&case={other['id']}&do=status")
    page.wait_for_selector("#cancel")
    page.click("#cancel")
    assert page.text_content("#cancel") == "Yes, cancel this request"
    assert tenant.storefront.get(f"/v1/cases/{other['id']}").json()["state"] != "cancelled", "nothing before the second tap"
    page.click("#cancel")
    page.wait_for_selector('#case-state:text("Cancelled")')
    assert tenant.storefront.get(f"/v1/cases/{other['id']}").json()["state"] == "cancelled"
    page.context.close()


# --------------------------------------------------------------------------- with the customer's e-mail


@pytest.fixture(scope="module")
def mail_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, Inbox]]:
    """A service of its own whose worker mails a real SMTP server on 127.0.0.1, and whose links
    point at itself (so the browser can open them)."""
    from service.bootstrap import build_app

    port = free_port()
    with smtp_server() as (inbox, smtp_url), fresh_database() as database_url:
        settings = Settings(
            database_url=database_url,
            data_dir=tmp_path_factory.mktemp("portal-mail"),
            log_format="json",
            smtp_url=smtp_url,
            public_url=f"http://127.0.0.1:{port}",
            worker_idle_seconds=0.05,
            worker_poll_every_seconds=0.2,
            mail_first_backoff_seconds=0.2,
        )
        with serve(build_app(settings), port=port) as url:
            yield url, database_url, inbox


def _mail(inbox: Inbox, case_id: str, kind: str) -> EmailMessage:
    return eventually(
        lambda: next((m for m in inbox.messages if m["X-Returns-Case"] == case_id and m["X-Returns-Kind"] == kind), None),
        timeout=30,
    )


def _links(mail: EmailMessage, base_url: str) -> list[str]:
    return [word for word in mail.get_body(("plain",)).get_content().split() if word.startswith(f"{base_url}/portal#t=")]


@pytest.mark.parametrize(("device", "language"), [("desktop", "en"), ("phone", "zh-CN")])
def test_from_a_link_to_the_refund_with_every_e_mail_and_the_rating_in_csat(
    browser, mail_service: tuple[str, str, Inbox], device: str, language: str
) -> None:
    base_url, database_url, inbox = mail_service
    tenant = Tenant(base_url, database_url)
    options = PHONE if device == "phone" else DESKTOP
    try:
        tenant.admin.put("/admin/v1/mail-settings", json={"return_address": RETURN_ADDRESS, "sender_name": "Shop"})
        order = _order(tenant, language=language)
        page = _page(browser, _link(tenant, order, language), **options)
        _draft(page, {"l1": (1, "defective", "seam torn"), "l3": (1, "arrived_late", "")}, photos=1)
        page.click("#submit")
        page.wait_for_selector("#case:not([hidden]) #case-state")
        [case] = _cases(tenant, order)
        assert len(case["items"]) == 2 and len(case["photos"]) == 1
        page.context.close()
        received = _mail(inbox, case["id"], "received")
        assert received["Content-Language"] == language and received["To"] == "c@example.com"

        assert tenant.agent.post(f"/admin/v1/cases/{case['id']}/approve", json={}).status_code == 200
        approved = _mail(inbox, case["id"], "approved")
        assert approved["Content-Language"] == language
        [status_link] = {link for link in _links(approved, base_url)}
        page = _page(browser, status_link, **options)  # the link in the e-mail, opened in a new browser
        page.wait_for_selector('form[data-action="return-shipment"]')
        assert page.url == f"{base_url}/portal#/cases/{case['id']}"
        assert page.text_content("#next-actions address") == RETURN_ADDRESS
        page.fill('form[data-action="return-shipment"] input[name=carrier]', "DHL")
        page.fill('form[data-action="return-shipment"] input[name=tracking_number]', "JD0002")
        page.click('form[data-action="return-shipment"] button[type=submit]')
        page.wait_for_function("() => !document.querySelector('form[data-action=\"return-shipment\"]')")
        page.context.close()
        assert tenant.storefront.get(f"/v1/cases/{case['id']}").json()["state"] == "in_transit"

        receipt = [
            {"line_id": "l1", "quantity": 1, "condition": "defective"},
            {"line_id": "l3", "quantity": 1, "condition": "as_new"},
        ]
        assert tenant.agent.post(f"/admin/v1/cases/{case['id']}/receive", json={"items": receipt}).status_code == 200
        refund_sent = _mail(inbox, case["id"], "refund_sent")
        survey = _mail(inbox, case["id"], "survey")
        assert refund_sent["Content-Language"] == survey["Content-Language"] == language
        ratings = {parse_qs(urlsplit(link).fragment).get("rating", [""])[0]: link for link in _links(survey, base_url)}
        assert set(ratings) >= {"1", "2", "3", "4", "5"}, ratings

        page = _page(browser, ratings["2"], **options)  # one click in the e-mail...
        page.wait_for_selector('form[data-action="survey"] input[value="2"]:checked')
        assert page.evaluate("document.activeElement.type") == "submit"
        page.keyboard.press("Enter")  # ...and one to send it
        page.wait_for_selector("#survey-thanks")
        page.context.close()
        assert tenant.storefront.get(f"/v1/cases/{case['id']}").json()["survey"]["rating"] == 2
        csat = tenant.finance.get("/finance/v1/reports/reasons").json()["csat"]
        assert csat == {"surveys": 1, "average_rating": 2.0, "satisfied_share": 0.0}
        kinds = sorted(m["X-Returns-Kind"] for m in inbox.messages if m["X-Returns-Case"] == case["id"])
        assert kinds == ["approved", "received", "refund_sent", "survey"], "one mail per step, none twice"
    finally:
        tenant.close()
