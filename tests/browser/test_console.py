"""The agent console in a real browser (the system Chromium, driven by Playwright) against the
real service on 127.0.0.1. Skipped, saying why, where Chromium is not installed.

``RETURNS_SCREENSHOTS=1`` makes the tests that show the main pages write them to
docs/screenshots/ (the committed set comes from such a run); by default nothing is written."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.support.flows import failed_refund
from tests.support.images import encode, photo
from tests.support.labels import CUSTOMER_ADDRESS, MERCHANT_BUYS_LABELS, bought, held
from tests.support.tenants import Tenant

pytestmark = pytest.mark.skipif(
    shutil.which("chromium") is None, reason="no Chromium on this machine: apt-get install chromium (.ci/run does)"
)
XSS = "<img src=x onerror=alert(1)>"
AXE = Path(__file__).parent / "vendor" / "axe.min.js"
SCREENSHOTS = Path(__file__).parents[2] / "docs" / "screenshots"
STATES = (
    "requested",
    "pending_review",
    "info_requested",
    "approved",
    "rejected",
    "in_transit",
    "received",
    "refund_pending",
    "refunded",
    "replacement_shipped",
    "diagnosing",
    "quote_pending",
    "repairing",
    "shipped_back",
    "closed",
    "cancelled",
)
REASONS = (
    "changed_mind",
    "wrong_size",
    "ordered_by_mistake",
    "better_price_elsewhere",
    "defective",
    "damaged_in_transit",
    "wrong_item",
    "not_as_described",
    "arrived_late",
    "missing_parts",
)
ENGLISH_WORDS = (
    "Pending review",
    "Approved",
    "Refund pending",
    "Requested",
    "Defective",
    "Changed mind",
    "Photo evidence",
    "Return window",
    "Case opened",
    "Agent",
    "overdue",
    "due in",
    "Queue",
)
MONTHS = r"\b(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)[a-z]*\b"
# every text node's words, each on one line: a word whose Range has rects on two lines was broken
BROKEN_WORDS = """() => {
  const broken = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const parent = node.parentElement;
    if (!parent || parent.closest('[hidden], script, style, option') || !parent.offsetParent) continue;
    for (const match of node.textContent.matchAll(/\\S+/g)) {
      const range = document.createRange();
      range.setStart(node, match.index);
      range.setEnd(node, match.index + match[0].length);
      const tops = new Set([...range.getClientRects()].filter((r) => r.width > 0).map((r) => Math.round(r.top)));
      if (tops.size > 1) broken.push(match[0]);
    }
  }
  return broken;
}"""
WIDER_THAN_PAGE = """() => [...document.querySelectorAll('body *')].filter((e) => e.offsetParent &&
  e.getBoundingClientRect().right > document.documentElement.clientWidth + 1).map((e) => e.tagName + '#' + e.id + '.' + e.className)"""


def _signed_in(browser, base_url: str, key: str, **options):
    context = browser.new_context(**options)
    page = context.new_page()
    alerts: list[str] = []
    page.on("dialog", lambda dialog: (alerts.append(dialog.message), dialog.dismiss()))
    page.alerts = alerts
    page.goto(base_url + "/console")
    page.fill("#api-key", key)
    page.press("#api-key", "Enter")
    return page


@pytest.fixture
def page(browser, base_url: str, tenant: Tenant):
    page = _signed_in(browser, base_url, tenant.keys["agent"])
    page.wait_for_selector("#queue:not([hidden]) #queue-table tbody tr, #queue-status:has-text('No cases')")
    yield page
    page.context.close()


def _defect_case(tenant: Tenant, quantity: int = 1) -> dict:
    order = tenant.put_order()
    case = tenant.open_case(
        order["order_id"],
        customer_note=f"it broke {XSS}",
        items=[{"line_id": "l1", "quantity": quantity, "reason": "defective", "note": XSS}],
    ).json()
    uploaded = tenant.storefront.post(
        f"/v1/cases/{case['id']}/photos", files={"file": ("p.jpg", encode(photo(seed=42 + quantity), "JPEG"), "image/jpeg")}
    )
    assert uploaded.status_code == 201
    return case


def _open(page, case_id: str) -> None:
    """From wherever the page is: the queue, then the case's row link."""
    page.goto(page.url.split("#")[0] + "#/")
    page.wait_for_selector(f'tr[data-case="{case_id}"] a')
    page.click(f'tr[data-case="{case_id}"] a')
    page.wait_for_selector(f'#case-id:text("{case_id}")')


def _make_overdue(database_url: str, merchant_id: str, case_id: str, hours: float) -> None:
    """An old case, as a shift finds it: its SLA ran out ``hours`` ago."""
    import asyncpg

    async def run() -> None:
        at = datetime.now(UTC) - timedelta(hours=hours)
        conn = await asyncpg.connect(database_url)
        try:
            await conn.execute(
                "UPDATE cases SET sla_due_at = $3, doc = jsonb_set(doc, '{sla_due_at}', to_jsonb($4::text))"
                " WHERE merchant_id = $1 AND id = $2",
                merchant_id,
                case_id,
                at,
                at.isoformat().replace("+00:00", "Z"),
            )
        finally:
            await conn.close()

    with ThreadPoolExecutor(1) as thread:  # Playwright's loop runs in this thread
        thread.submit(asyncio.run, run()).result()


def _screenshot(page, name: str, *, full_page: bool = True) -> None:
    if os.environ.get("RETURNS_SCREENSHOTS"):
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=full_page)


def test_sign_in_find_open_see_decision_and_photo_then_approve(page, tenant: Tenant) -> None:
    case = _defect_case(tenant)
    _open(page, case["id"])
    assert page.text_content("#case-state") == "Pending review"
    assert "T-shirt" in page.text_content("#order-lines") and "Mug" in page.text_content("#order-lines")
    assert "1 photo" in page.text_content('#all-outcomes li[data-rule="photo_evidence"]')
    button = page.wait_for_selector("#photos button img")
    page.wait_for_selector("#photos img[src^='blob:']")
    button.click()
    page.wait_for_selector("#viewer[open]")
    page.wait_for_selector("#viewer-image[src^='blob:']")
    assert (
        page.evaluate(
            "new Promise((done) => { const image = document.querySelector('#viewer-image');"
            " image.decode().then(() => done(image.naturalWidth)); })"
        )
        > 320
    )
    page.click("#viewer button")
    _screenshot(page, "case")

    page.fill('form[data-action="approve"] input[name="note"]', "looks defective")
    page.click('form[data-action="approve"] button[type=submit]')
    page.wait_for_selector('#case-state:text("Approved")')
    assert tenant.agent.get(f"/admin/v1/cases/{case['id']}").json()["state"] == "approved"
    assert page.text_content('#details dd[data-field="approval_note"]') == "looks defective"
    assert "needs review" not in page.text_content("#decision-summary")
    timeline = page.text_content("#timeline")
    assert "Approved" in timeline and "“looks defective”" in timeline and "{" not in timeline


def test_the_whole_flow_with_the_keyboard_only(page, tenant: Tenant) -> None:
    case = _defect_case(tenant)
    page.press("#filters button", "Enter")  # the queue again, now with the new case
    page.wait_for_selector(f'tr[data-case="{case["id"]}"] a')
    page.focus("#language")
    for _ in range(60):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.closest('tr')?.dataset.case") == case["id"]:
            break
    else:
        pytest.fail("Tab never reached the case's row")
    page.keyboard.press("Enter")
    page.wait_for_selector(f'#case-id:text("{case["id"]}")')
    assert page.url.endswith(f"#/cases/{case['id']}")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "next"
    assert page.text_content("#next") == "Approve"
    page.keyboard.press("Space")
    assert page.evaluate("document.activeElement.name") == "note"
    page.keyboard.type("checked by keyboard")
    page.keyboard.press("Enter")
    page.wait_for_selector('#case-state:text("Approved")')
    page.wait_for_selector('.result.done:text("Done.")')
    assert tenant.agent.get(f"/admin/v1/cases/{case['id']}").json()["state"] == "approved"


def test_reload_and_back_on_a_case_page(page, tenant: Tenant, base_url: str) -> None:
    case = _defect_case(tenant)
    _open(page, case["id"])
    page.reload()
    page.wait_for_selector(f'#case-id:text("{case["id"]}")')
    assert page.is_visible("#case") and not page.is_visible("#queue")
    page.go_back()
    page.wait_for_selector("#queue:not([hidden])")
    assert page.url.startswith(base_url + "/console")
    page.go_forward()
    page.wait_for_selector(f'#case-id:text("{case["id"]}")')
    other = _signed_in(page.context.browser, base_url, tenant.keys["agent"])  # a deep link, in a new tab
    other.goto(f"{base_url}/console#/cases/{case['id']}")
    other.wait_for_selector(f'#case-id:text("{case["id"]}")')
    other.context.close()


def test_customer_text_is_shown_as_text_and_runs_nothing(page, tenant: Tenant) -> None:
    case = _defect_case(tenant)
    _open(page, case["id"])
    assert page.text_content("#customer-note") == f"it broke {XSS}"
    assert XSS in page.text_content("#items")
    assert page.query_selector('img[src="x"]') is None
    page.wait_for_timeout(300)
    assert page.alerts == []
    csp = page.evaluate("fetch('/console').then(r => r.headers.get('content-security-policy'))")
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp


def test_receive_a_short_shipment_after_confirming(page, tenant: Tenant) -> None:
    case = _defect_case(tenant, quantity=2)
    tenant.agent.post(f"/admin/v1/cases/{case['id']}/approve", json={})
    _open(page, case["id"])
    form = 'form[data-action="receive"]'
    page.fill(f'{form} input[name="quantity:l1"]', "1")
    page.select_option(f'{form} select[name="condition:l1"]', "defective")
    page.click(f"{form} button[type=submit]")
    assert page.text_content(f"{form} button[type=submit]") == "Confirm: these items arrived"
    assert tenant.agent.get(f"/admin/v1/cases/{case['id']}").json()["state"] == "approved", "nothing before the confirmation"
    page.click(f"{form} button[type=submit]")
    page.wait_for_selector('.result.done:text("Done.")')
    assert page.text_content("#case-state") in ("Refund pending", "Refunded", "Closed")
    assert "1 (Defective)" in page.text_content("#items")
    after = tenant.agent.get(f"/admin/v1/cases/{case['id']}").json()
    assert after["items"][0]["received_quantity"] == 1
    assert after["refunds"][0]["amount"] == 1999 + 495


def test_a_stale_edit_is_told_beside_its_action(page, tenant: Tenant) -> None:
    case = _defect_case(tenant)
    _open(page, case["id"])
    tenant.agent.post(f"/admin/v1/cases/{case['id']}/notes", json={"text": "someone else was here"})
    page.fill('form[data-action="approve"] input[name="note"]', "fine")
    page.click('form[data-action="approve"] button[type=submit]')
    error = page.wait_for_selector('form[data-action="approve"] .result.error')
    assert "reload" in error.text_content().lower()
    assert not page.is_visible("#notice")
    assert page.evaluate("document.querySelectorAll('#case .result.error').length") == 1
    page.click('form[data-action="approve"] .result button')
    page.wait_for_selector('#notes li:has-text("someone else was here")')
    assert tenant.agent.get(f"/admin/v1/cases/{case['id']}").json()["state"] == "pending_review"

    page.fill('form[data-action="reject"] input[name="reason"]', "not defective")
    page.click('form[data-action="reject"] button[type=submit]')
    assert "confirm" in page.text_content('form[data-action="reject"] button[type=submit]').lower()
    assert tenant.agent.get(f"/admin/v1/cases/{case['id']}").json()["state"] == "pending_review"


def test_done_stays_until_the_next_action(page, tenant: Tenant) -> None:
    case = _defect_case(tenant)
    _open(page, case["id"])
    page.fill('form[data-action="notes"] input[name="text"]', "called the customer")
    page.click('form[data-action="notes"] button[type=submit]')
    done = page.wait_for_selector('form[data-action="notes"] .result.done')
    page.wait_for_timeout(1500)
    assert done.is_visible() and done.text_content() == "Done."
    page.click("#assign-me")
    page.wait_for_selector('form[data-action="assign"] .result.done')
    assert not page.is_visible('form[data-action="notes"] .result.done'), "the next action's word replaces it"
    assert tenant.agent.get(f"/admin/v1/cases/{case['id']}").json()["assignee"] == tenant.agent_key_id()
    assert page.text_content('#details dd[data-field="assignee"]').startswith("me")


def test_the_return_label_is_on_the_case_page_and_downloads(page, tenant: Tenant) -> None:
    assert tenant.admin.put("/admin/v1/shipping-settings", json=MERCHANT_BUYS_LABELS).status_code == 200
    order = tenant.put_order(shipping_address=CUSTOMER_ADDRESS)
    case = tenant.open_case(order["order_id"], items=[{"line_id": "l1", "quantity": 1, "reason": "changed_mind"}]).json()
    if case["state"] != "approved":
        assert tenant.agent.post(f"/admin/v1/cases/{case['id']}/approve", json={}).status_code == 200
    label = bought(tenant, case["id"])["label"]
    _open(page, case["id"])
    shown = page.wait_for_selector('#label [data-label="bought"]').text_content()
    assert label["tracking_code"] in shown and label["carrier"] in shown and shown.startswith("bought")
    with page.expect_download() as download:
        page.click("#label-download")
    pdf = Path(download.value.path()).read_bytes()
    assert pdf.startswith(b"%PDF") and pdf == tenant.agent.get(f"/admin/v1/cases/{case['id']}/label").content


def test_a_label_held_over_its_ceiling_says_why_and_the_agent_buys_it(page, tenant: Tenant) -> None:
    heavy = {**MERCHANT_BUYS_LABELS, "default_parcel": {"weight_g": 1_000_000}}  # 1,000 kg: 1,808.00 EUR
    assert tenant.admin.put("/admin/v1/shipping-settings", json=heavy).status_code == 200
    order = tenant.put_order(shipping_address=CUSTOMER_ADDRESS)
    case = tenant.open_case(order["order_id"], items=[{"line_id": "l1", "quantity": 1, "reason": "changed_mind"}]).json()
    held(tenant, case["id"])
    _open(page, case["id"])
    shown = page.wait_for_selector('#label [data-label="held"]').text_content()
    assert shown.startswith("waiting for an agent (over the ceiling)"), shown
    assert "cheapest rate Simulated Post Ground €1,808.00, over the ceiling of €9.99" in shown, shown
    assert "Return label held: over the ceiling" in page.text_content("#timeline")
    assert page.text_content("#next") == "Buy the label anyway"
    buy = 'form[data-action="label/buy"] button[type=submit]'
    page.click(buy)
    assert page.text_content(buy) == "Confirm: buy this label over the ceiling"
    page.click(buy)
    assert bought(tenant, case["id"])["label"]["amount"] == 180800
    page.wait_for_selector('form[data-action="label/buy"]', state="hidden")
    _open(page, case["id"])
    shown = page.wait_for_selector('#label [data-label="bought"]').text_content()
    assert f"approved over the ceiling by {tenant.agent_key_id()}" in shown, shown
    page.select_option("#language", "zh")
    page.wait_for_selector('#label [data-label="bought"]:has-text("已购买")')
    assert "已由" in page.text_content("#label") and "批准超出上限" in page.text_content("#label")
    page.select_option("#language", "en")
    page.wait_for_selector('header h1 a:text("Returns console")')


def test_a_failed_refund_is_badged_and_first_in_the_queue(page, tenant: Tenant, database_url: str) -> None:
    old = _defect_case(tenant)
    _make_overdue(database_url, tenant.merchant_id, old["id"], hours=3)
    failed = failed_refund(tenant)
    page.press("#filters button", "Enter")
    page.wait_for_selector(f'tr[data-case="{failed["id"]}"]')
    rows = page.query_selector_all("#queue-table tbody tr")
    assert rows[0].get_attribute("data-case") == failed["id"]
    assert "Refund failed" in rows[0].text_content()
    assert "overdue 3 hr" in page.text_content(f'tr[data-case="{old["id"]}"]')
    _screenshot(page, "queue")
    page.check("#filter-attention")
    page.click("#filters button")
    page.wait_for_selector(f'#queue-table tbody tr:only-child[data-case="{failed["id"]}"]')
    assert page.get_attribute("#queue-table tbody tr", "data-case") == failed["id"]

    page.click(f'tr[data-case="{failed["id"]}"] a')
    page.wait_for_selector("#refunds li.attention button.primary")
    assert page.text_content("#case-flags") == "Needs attention"
    assert "declined" in page.text_content("#refunds li.attention")
    page.click("#refunds li.attention button")
    page.wait_for_selector('.result.done:text("Done.")')
    assert any(r["retried_by"] for r in tenant.agent.get(f"/admin/v1/cases/{failed['id']}").json()["refunds"])


def test_chinese_pages_have_no_english_state_reason_rule_or_date(page, tenant: Tenant, database_url: str) -> None:
    case = _defect_case(tenant)
    _make_overdue(database_url, tenant.merchant_id, case["id"], hours=5)
    tenant.agent.post(f"/admin/v1/cases/{case['id']}/notes", json={"text": "看过了"})
    page.select_option("#language", "zh")
    page.wait_for_selector('header h1 a:text("退货控制台")')
    page.wait_for_selector(f'tr[data-case="{case["id"]}"]')
    _scan_for_english(page)
    assert "已超时" in page.text_content(f'tr[data-case="{case["id"]}"]')
    page.click(f'tr[data-case="{case["id"]}"] a')
    page.wait_for_selector(f'#case-id:text("{case["id"]}")')
    page.wait_for_selector('#case-state:text("待审核")')
    _scan_for_english(page)
    assert page.text_content('form[data-action="approve"] button[type=submit]') == "批准"
    assert "年" in page.text_content("#timeline time")
    untranslated = (
        "[...document.querySelectorAll('#all-outcomes .detail')].filter((e) => e.lang === 'en').map((e) => e.textContent)"
    )
    assert page.evaluate(untranslated) == [], "every rule explanation of this case is in Chinese"
    assert "已收到 1 张照片（有缺陷）" in page.text_content('#all-outcomes li[data-rule="photo_evidence"]')
    _screenshot(page, "zh-CN")
    page.select_option("#language", "en")
    page.wait_for_selector('header h1 a:text("Returns console")')


def _scan_for_english(page) -> None:
    """The text an agent reads, less what people typed and the server's rule explanations (marked lang=en)."""
    text = page.evaluate("""() => {
      const copy = document.body.cloneNode(true);
      for (const node of copy.querySelectorAll('[hidden], [lang=en], option, #customer-note, #notes, #items td:nth-child(5), #language, code, #whoami, a[href^="#/cases"], [data-field]'))
        node.remove();
      return copy.innerText;
    }""")
    codes = [code for code in (*STATES, *REASONS) if re.search(rf"\b{code}\b", text)]
    assert codes == [], codes
    words = [word for word in ENGLISH_WORDS if word in text]
    assert words == [], words
    assert re.search(MONTHS, text) is None, re.search(MONTHS, text)


def test_a_phone_shows_cards_with_whole_words(browser, base_url: str, tenant: Tenant) -> None:
    case = _defect_case(tenant)
    phone = _signed_in(
        browser,
        base_url,
        tenant.keys["agent"],
        viewport={"width": 390, "height": 844},
        device_scale_factor=2,
        is_mobile=True,
        has_touch=True,
    )
    phone.wait_for_selector(f'tr[data-case="{case["id"]}"]')
    assert phone.evaluate("getComputedStyle(document.querySelector('#queue-table thead')).display") == "none"
    assert phone.evaluate(BROKEN_WORDS) == []
    assert phone.evaluate(WIDER_THAN_PAGE) == []
    _screenshot(phone, "phone", full_page=False)
    phone.goto(f"{base_url}/console#/cases/{case['id']}")
    phone.wait_for_selector(f'#case-id:text("{case["id"]}")')
    assert phone.evaluate(BROKEN_WORDS) == []
    assert phone.evaluate(WIDER_THAN_PAGE) == []
    bar = phone.evaluate(
        "(() => { const r = document.querySelector('#next').getBoundingClientRect(); return [r.top, r.bottom]; })()"
    )
    assert bar[0] > 0 and bar[1] <= 844, "the next step is on screen, not three screens down"
    _screenshot(phone, "phone-case", full_page=False)
    phone.select_option("#language", "zh")
    phone.wait_for_selector('#case-state:text("待审核")')
    assert phone.evaluate("getComputedStyle(document.querySelector('#case-gets')).wordBreak") == "keep-all"
    assert phone.evaluate(WIDER_THAN_PAGE) == []
    phone.context.close()


@pytest.mark.parametrize("language", ["en", "zh"])
def test_axe_finds_nothing_critical_or_serious(browser, base_url: str, tenant: Tenant, language: str) -> None:
    case = _defect_case(tenant)
    tenant.agent.post(f"/admin/v1/cases/{case['id']}/notes", json={"text": "a note"})
    axe = _signed_in(browser, base_url, tenant.keys["agent"], bypass_csp=True)
    axe.select_option("#language", language)
    axe.wait_for_selector(f'tr[data-case="{case["id"]}"]')
    for where in ("queue", "case"):
        if where == "case":
            axe.click(f'tr[data-case="{case["id"]}"] a')
            axe.wait_for_selector(f'#case-id:text("{case["id"]}")')
            axe.wait_for_selector("#photos img")
        axe.add_script_tag(path=str(AXE))
        found = axe.evaluate("axe.run(document).then(r => r.violations.map(v => [v.id, v.impact, v.nodes.length]))")
        bad = [v for v in found if v[1] in ("critical", "serious")]
        assert bad == [], (where, language, bad)
    axe.context.close()


def test_a_storefront_key_is_signed_out_with_a_reason(browser, base_url: str, tenant: Tenant) -> None:
    page = _signed_in(browser, base_url, tenant.keys["storefront"])
    # the sign-in form shows before the key is tried too: wait for the answer, not the form
    page.wait_for_selector('#notice:has-text("agent")')
    assert page.is_visible("#sign-in")
    assert page.evaluate("sessionStorage.getItem('key')") is None
    page.context.close()


def test_search_then_sign_out_forgets_the_key_and_reports_is_linked(page, tenant: Tenant) -> None:
    case = _defect_case(tenant)
    _defect_case(tenant)
    page.fill("#search", case["order_id"])
    page.press("#search", "Enter")
    page.wait_for_selector(f'#queue-table tbody tr:only-child[data-case="{case["id"]}"]')
    page.fill("#search", "nobody@example.com")
    page.press("#search", "Enter")
    page.wait_for_selector('#queue-status:text("No cases match.")')
    page.fill("#search", "")
    page.click('#counts button[data-state="pending_review"]')
    page.wait_for_selector(f'tr[data-case="{case["id"]}"]')
    assert page.input_value("#filter-state") == "pending_review"
    assert page.text_content("#counts")
    assert page.get_attribute("#reports-link", "href") == "/console/reports"
    assert tenant.keys["agent"] not in page.url
    page.click("#sign-out")
    page.wait_for_selector("#sign-in:not([hidden])")
    assert page.evaluate("sessionStorage.getItem('key')") is None


def test_a_network_error_is_said_where_the_list_was(page, tenant: Tenant) -> None:
    page.context.set_offline(True)
    page.click("#filters button")
    page.wait_for_selector("#queue-status.error")
    assert "did not answer" in page.text_content("#queue-status")
    page.context.set_offline(False)


def test_console_files_are_served_with_one_charset_and_the_policy(base_url: str) -> None:
    import httpx

    for path, kind in (("/console", "text/html"), ("/console/app.js", "text/javascript"), ("/console/app.css", "text/css")):
        answer = httpx.get(base_url + path)
        assert answer.status_code == 200 and answer.headers["content-type"] == f"{kind}; charset=utf-8"
        assert answer.headers["content-security-policy"].startswith("default-src 'none'")
    assert httpx.get(base_url + "/console/i18n/fr.json").status_code == 404
    assert httpx.get(base_url + "/console/../service/api/console.py").status_code == 404


def test_a_quote_is_typed_in_major_units_and_the_repair_is_described(page, tenant: Tenant) -> None:
    delivered = datetime.now(UTC) - timedelta(days=400)
    order = tenant.put_order(placed_at=(delivered - timedelta(days=2)).isoformat(), delivered_at=delivered.isoformat())
    case = tenant.open_case(
        order["order_id"],
        type="repair",
        resolution=None,
        issue_description="zip broken",
        items=[{"line_id": "l1", "quantity": 1, "reason": "defective"}],
    ).json()
    tenant.agent.post(
        f"/admin/v1/cases/{case['id']}/approve",
        json={"overrides": [{"rule": "photo_evidence", "reason": "inspected at the counter"}]},
    )
    tenant.agent.post(
        f"/admin/v1/cases/{case['id']}/receive", json={"items": [{"line_id": "l1", "quantity": 1, "condition": "defective"}]}
    )
    _open(page, case["id"])
    assert page.text_content('#details dd[data-field="issue_description"]') == "zip broken"
    assert page.text_content("#next") == "Diagnose"
    form = 'form[data-action="repair/diagnose"]'
    page.fill(f'{form} input[name="finding"]', "motor")
    page.fill(f'{form} input[name="quote_amount"]', "45.001")
    page.click(f"{form} button[type=submit]")
    assert "12.50" in page.wait_for_selector(f"{form} .result.error").text_content()
    assert tenant.agent.get(f"/admin/v1/cases/{case['id']}").json()["state"] == "diagnosing", "nothing stored"
    page.fill(f'{form} input[name="quote_amount"]', "45.00")
    page.click(f"{form} button[type=submit]")
    page.wait_for_selector('#case-state:text("Quote pending")')
    assert tenant.agent.get(f"/admin/v1/cases/{case['id']}").json()["diagnosis"]["quote_amount"] == 4500
    assert "€45.00" in page.text_content('#details dd[data-field="diagnosis"]')


def test_an_exchange_shows_its_replacement_and_approve_sends_a_money_override(page, tenant: Tenant) -> None:
    order = tenant.put_order()
    exchange = tenant.open_case(
        order["order_id"],
        type="exchange",
        resolution=None,
        items=[
            {
                "line_id": "l1",
                "quantity": 1,
                "reason": "wrong_size",
                "replacement_sku": "TSHIRT-L",
                "replacement_unit_price": 2199,
            }
        ],
    ).json()
    _open(page, exchange["id"])
    assert "TSHIRT-L (€21.99)" in page.text_content("#case-gets")
    assert "TSHIRT-L €21.99" in page.text_content('#details dd[data-field="replacement"]')

    case = _defect_case(tenant)
    _open(page, case["id"])
    sent: list[dict] = []
    page.on("request", lambda request: sent.append(request.post_data_json) if request.url.endswith("/approve") else None)
    form = 'form[data-action="approve"]'
    page.fill(f'{form} input[name="money_override"]', "10")
    page.click(f"{form} button[type=submit]")
    assert "reason" in page.wait_for_selector(f"{form} .result.error").text_content()
    page.fill(f'{form} input[name="money_override_reason"]', "goodwill, agreed by phone")
    page.click(f"{form} button[type=submit]")
    page.wait_for_selector('#case-state:text("Approved")')
    assert sent == [
        {"note": None, "overrides": [], "money_override": {"refund_total": 1000, "reason": "goodwill, agreed by phone"}}
    ]


def test_refund_without_return_and_who_is_responsible_are_decided_on_approval(page, tenant: Tenant) -> None:
    order = tenant.put_order()
    case = tenant.open_case(
        order["order_id"], items=[{"line_id": "l1", "quantity": 1, "reason": "other", "note": "not what the picture showed"}]
    ).json()
    assert case["money"]["return_shipping"]["payer"] == "undecided"
    _open(page, case["id"])
    form = 'form[data-action="approve"]'
    assert page.is_visible("#approve-responsibility") and page.is_visible("#approve-keep")
    sent: list[dict] = []
    page.on("request", lambda request: sent.append(request.post_data_json) if request.url.endswith("/approve") else None)
    page.select_option(f'{form} select[name="responsibility"]', "customer")
    page.check(f'{form} input[name="keep_item"]')
    page.click(f"{form} button[type=submit]")
    page.wait_for_selector('#case-state:text("Refund pending"), #case-state:text("Closed")')
    assert sent == [
        {"note": None, "overrides": [], "keep_item": True, "responsibility": [{"line_id": "l1", "responsibility": "customer"}]}
    ]
    paid = tenant.agent.get(f"/admin/v1/cases/{case['id']}").json()
    assert paid["money"]["refund_total"] == 1999 and paid["money"]["return_shipping"]["customer_share"] == 0

    exchange = tenant.open_case(
        order["order_id"],
        type="exchange",
        resolution=None,
        items=[{"line_id": "l2", "quantity": 1, "reason": "other", "note": "chipped", "replacement_sku": "MUG-2"}],
    ).json()
    _open(page, exchange["id"])
    assert page.is_visible(form) and page.is_visible("#approve-responsibility")
    assert not page.is_visible("#approve-keep")  # only a return is refunded without coming back
