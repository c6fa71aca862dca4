"""A case's version travels as a strong ETag, ``"<version>"``, on every answer that is one case,
and comes back as ``If-Match`` (docs/contract.md), on the storefront's actions too: a stale one
changes nothing (412), one that is no version is a 422, ``*`` and lists mean what RFC 9110 says."""

from __future__ import annotations

import pytest

from tests.support.flows import OTHER_L1
from tests.support.tenants import Tenant


def test_the_etag_is_the_version_moves_with_each_action_and_guards_if_match(tenant: Tenant) -> None:
    order = tenant.put_order()
    opened = tenant.open_case(order["order_id"], items=[{"line_id": "l1", "quantity": 1, "reason": "other", "note": "why"}])
    assert opened.status_code == 201 and opened.headers["etag"] == f'"{opened.json()["version"]}"'
    case_id = opened.json()["id"]
    seen = tenant.agent.get(f"/admin/v1/cases/{case_id}")
    assert seen.headers["etag"] == f'"{seen.json()["version"]}"'
    assert tenant.storefront.get(f"/v1/cases/{case_id}").headers["etag"] == seen.headers["etag"]

    noted = tenant.agent.post(
        f"/admin/v1/cases/{case_id}/notes", json={"text": "one"}, headers={"If-Match": seen.headers["etag"]}
    )
    assert noted.status_code == 200, noted.text
    assert noted.headers["etag"] == f'"{noted.json()["version"]}"' != seen.headers["etag"]
    assert tenant.agent.get(f"/admin/v1/cases/{case_id}").headers["etag"] == noted.headers["etag"]

    stale = tenant.agent.post(
        f"/admin/v1/cases/{case_id}/notes", json={"text": "two"}, headers={"If-Match": seen.headers["etag"]}
    )
    assert stale.status_code == 412 and stale.json()["code"] == "version_conflict" and "etag" not in stale.headers
    weak = tenant.agent.post(f"/admin/v1/cases/{case_id}/approve", json={}, headers={"If-Match": "W/" + noted.headers["etag"]})
    assert weak.status_code == 200 and weak.json()["state"] == "approved", weak.text
    assert [note["text"] for note in weak.json()["notes"]] == ["one"]
    shipped = tenant.storefront.post(f"/v1/cases/{case_id}/return-shipment", json={"carrier": "dhl", "tracking_number": "T1"})
    assert shipped.headers["etag"] == f'"{shipped.json()["version"]}"' != weak.headers["etag"]


def test_answers_that_are_not_one_case_carry_no_etag(tenant: Tenant) -> None:
    order = tenant.put_order()
    tenant.open_case(order["order_id"])
    assert "etag" not in tenant.storefront.get("/v1/cases").headers
    assert "etag" not in tenant.storefront.get(f"/v1/orders/{order['order_id']}").headers


@pytest.mark.parametrize(
    "if_match",
    [b'"\xb2"', b'W/"\xb9"', ('"' + "7" * 5000 + '"').encode()],
    ids=["superscript two", "weak superscript one", "5000 digits"],
)
def test_an_if_match_that_is_no_version_is_a_422_not_a_500(tenant: Tenant, if_match: bytes) -> None:
    """Wrong: ``If-Match: "²"`` (a Latin-1 superscript, which HTTP headers may carry) passes
    ``str.isdigit()`` but ``int()`` refuses it, and a 5000-digit version passes ``isdigit`` but
    passes Python's 4300-digit conversion limit: both answer 500 ``internal_error`` on every one of
    the 11 agent actions. Right: 422 ``validation_error`` naming ``If-Match`` (the 5000 digits
    could equally be a 412: no case is at that version), nothing changed.

    Origin: outside review round 4, a finding (fixed since)."""
    order = tenant.put_order()
    case = tenant.open_case(order["order_id"], items=OTHER_L1).json()
    answer = tenant.agent.post(f"/admin/v1/cases/{case['id']}/notes", json={"text": "x"}, headers={"If-Match": if_match})
    assert answer.status_code in (412, 422), answer.text
    assert tenant.agent.get(f"/admin/v1/cases/{case['id']}").json()["version"] == case["version"]


def test_a_storefront_action_with_a_stale_if_match_changes_nothing(tenant: Tenant) -> None:
    """Wrong: the contract gives every answer that is one case, storefront ones included, an
    ``ETag`` "the value to send back as If-Match", but the storefront's actions (cancel,
    return-shipment, quote accept/decline, survey) never read it: a storefront that read the case
    at version 2, while an agent approved it meanwhile, sends ``POST /v1/cases/{id}/cancel`` with
    ``If-Match: "2"`` and the approved case is cancelled anyway (200). RFC 9110 §13.1.1 says a
    false If-Match must not perform the method. Right: 412 ``version_conflict``, the case still
    approved (or: the ETag/If-Match promise scoped to the agent API in the contract).

    Origin: outside review round 4, a finding (fixed since)."""
    order = tenant.put_order()
    case = tenant.open_case(order["order_id"], items=OTHER_L1).json()
    seen = tenant.storefront.get(f"/v1/cases/{case['id']}")
    assert seen.headers["etag"] == f'"{case["version"]}"'
    assert tenant.agent.post(f"/admin/v1/cases/{case['id']}/approve", json={}).status_code == 200
    cancel = tenant.storefront.post(f"/v1/cases/{case['id']}/cancel", headers={"If-Match": seen.headers["etag"]})
    assert cancel.status_code == 412, cancel.text
    assert tenant.agent.get(f"/admin/v1/cases/{case['id']}").json()["state"] == "approved"


def test_if_match_star_and_lists_mean_what_rfc_9110_says(tenant: Tenant) -> None:
    """Low: the contract refuses anything but one version with 422, so ``If-Match: *`` ("only if
    the case exists", what generic HTTP clients and proxies send) and a list that names the
    current version (``"1", "2"``) are errors instead of matches (RFC 9110 §13.1.1: the condition
    is true when any listed tag matches, ``*`` when a current representation exists). Right: both
    apply the change; a list naming no current version is 412.

    Origin: outside review round 4, a finding (fixed since)."""
    order = tenant.put_order()
    case = tenant.open_case(order["order_id"], items=OTHER_L1).json()
    path = f"/admin/v1/cases/{case['id']}/notes"
    star = tenant.agent.post(path, json={"text": "a"}, headers={"If-Match": "*"})
    assert star.status_code == 200, star.text
    listed = tenant.agent.post(path, json={"text": "b"}, headers={"If-Match": f'"1", "{star.json()["version"]}"'})
    assert listed.status_code == 200, listed.text
    stale = tenant.agent.post(path, json={"text": "c"}, headers={"If-Match": '"1", "2"'})
    assert stale.status_code == 412, stale.text
