"""Photo evidence over real HTTP: real image files made in the test, the stored copies checked."""

from __future__ import annotations

import io
import select
import socket

import httpx
from PIL import Image

from tests.support.images import encode, heic, jpeg_with_gps, photo, png_bomb
from tests.support.tenants import Tenant


def _defect_case(tenant: Tenant, **order: object) -> dict:
    placed = tenant.put_order(**order)
    response = tenant.open_case(placed["order_id"], items=[{"line_id": "l1", "quantity": 1, "reason": "defective"}])
    assert response.status_code == 201, response.text
    return response.json()


def _upload(
    tenant: Tenant, case_id: str, data: bytes, name: str = "photo.jpg", content_type: str = "image/jpeg"
) -> httpx.Response:
    return tenant.storefront.post(f"/v1/cases/{case_id}/photos", files={"file": (name, data, content_type)})


def test_gps_exif_is_gone_from_the_stored_copy(tenant: Tenant) -> None:
    case = _defect_case(tenant)
    uploaded = _upload(tenant, case["id"], jpeg_with_gps())
    assert uploaded.status_code == 201, uploaded.text
    view = uploaded.json()
    assert view["content_type"] == "image/jpeg" and (view["width"], view["height"]) == (480, 640)
    stored = tenant.storefront.get(view["url"])
    assert stored.status_code == 200 and stored.headers["content-type"] == "image/jpeg"
    image = Image.open(io.BytesIO(stored.content))
    assert not image.getexif() and b"SERIAL-12345" not in stored.content
    thumb = tenant.agent.get(view["thumbnail_url"])  # agents see the evidence too
    assert thumb.status_code == 200 and max(Image.open(io.BytesIO(thumb.content)).size) == 320


def test_png_webp_heic_and_a_png_named_jpg(tenant: Tenant) -> None:
    case = _defect_case(tenant)
    for data, name, expected in [
        (encode(photo(seed=2), "PNG"), "a.png", "image/png"),
        (encode(photo(seed=3), "WEBP"), "b.webp", "image/webp"),
        (heic(), "c.heic", "image/jpeg"),
        (encode(photo(seed=4), "PNG"), "d.jpg", "image/png"),  # the name lies; the bytes decide
    ]:
        response = _upload(tenant, case["id"], data, name, "image/jpeg")
        assert response.status_code == 201, (name, response.text)
        assert response.json()["content_type"] == expected, name
    assert len(tenant.storefront.get(f"/v1/cases/{case['id']}").json()["photos"]) == 4


def test_refused_uploads_store_nothing(tenant: Tenant) -> None:
    case = _defect_case(tenant)
    text = _upload(tenant, case["id"], b"just some text\n" * 100, "evidence.jpg")
    assert text.status_code == 415 and text.json()["code"] == "unsupported_media_type"
    bomb = _upload(tenant, case["id"], png_bomb(1, 2_000_000_000), "bomb.png", "image/png")
    assert bomb.status_code == 422 and bomb.json()["code"] == "validation_error"
    whole = encode(photo(), "JPEG")
    truncated = _upload(tenant, case["id"], whole[: len(whole) // 2])
    assert truncated.status_code == 422
    not_multipart = tenant.storefront.post(
        f"/v1/cases/{case['id']}/photos", content=whole, headers={"content-type": "image/jpeg"}
    )
    assert not_multipart.status_code == 415
    wrong_field = tenant.storefront.post(f"/v1/cases/{case['id']}/photos", files={"picture": ("a.jpg", whole, "image/jpeg")})
    assert wrong_field.status_code == 422 and wrong_field.json()["errors"][0]["field"] == "file"
    after = tenant.storefront.get(f"/v1/cases/{case['id']}").json()
    assert after["photos"] == [] and after["decision"]["photo_count"] == 0 and after["version"] == case["version"]


def _raw_upload(base_url: str, key: str, case_id: str, *, announce: int | None, body_bytes: int) -> tuple[bytes, int]:
    """Send an upload over a raw socket, a chunk at a time, and stop as soon as the server
    answers. Returns the answer's first bytes and how much of the body was sent by then."""
    host, port = base_url.removeprefix("http://").split(":")
    length = f"Content-Length: {announce}\r\n" if announce is not None else "Transfer-Encoding: chunked\r\n"
    head = (
        f"POST /v1/cases/{case_id}/photos HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {key}\r\n"
        f"Content-Type: multipart/form-data; boundary=XyZ\r\n{length}\r\n"
    ).encode()
    part = b'--XyZ\r\nContent-Disposition: form-data; name="file"; filename="big.jpg"\r\n\r\n'
    chunk = b"\xff" * 65536
    sent = 0
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(head)
        pieces = [part] + [chunk] * (body_bytes // len(chunk))
        for piece in pieces:
            readable, _, _ = select.select([sock], [], [], 0)
            if readable:
                break
            try:
                sock.sendall(f"{len(piece):x}\r\n".encode() + piece + b"\r\n" if announce is None else piece)
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += len(piece)
        sock.settimeout(30)
        try:
            answer = sock.recv(4096)
        except ConnectionResetError:  # the server hung up on the unread rest before we read its 413
            answer = b""
    return answer, sent


def test_an_oversize_upload_is_refused_without_being_read_whole(tenant: Tenant, base_url: str) -> None:
    case = _defect_case(tenant)
    key = tenant.keys["storefront"]
    hundred_mib = 100 * 1024 * 1024
    # a body that says up front it is too big: refused before any of it is read
    answer, sent = _raw_upload(base_url, key, case["id"], announce=hundred_mib, body_bytes=hundred_mib)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert sent < 16 * 1024 * 1024
    # a chunked body with no length: refused once it passes the limit, not at its end
    answer, sent = _raw_upload(base_url, key, case["id"], announce=None, body_bytes=hundred_mib)
    if answer:  # else the connection was reset after the 413 was sent: a refusal all the same
        assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
        assert b"payload_too_large" in answer
    # 15 MiB are read, then socket buffers on both sides hold a few more: far from 100 MiB
    assert sent < 40 * 1024 * 1024, f"the server stopped the upload only after {sent} bytes of 100 MiB"
    assert tenant.storefront.get(f"/v1/cases/{case['id']}").json()["photos"] == []


def test_the_same_photo_twice_is_stored_once(tenant: Tenant) -> None:
    case = _defect_case(tenant)
    data = encode(photo(seed=6), "JPEG")
    first, second = _upload(tenant, case["id"], data), _upload(tenant, case["id"], data)
    assert (first.status_code, second.status_code) == (201, 200)
    assert first.json()["id"] == second.json()["id"]
    after = tenant.storefront.get(f"/v1/cases/{case['id']}").json()
    assert len(after["photos"]) == 1 and after["decision"]["photo_count"] == 1


def test_photos_move_a_case_waiting_on_them_back_to_review(tenant: Tenant) -> None:
    case = _defect_case(tenant)
    assert case["decision"]["requires_photos"] is True
    asked = tenant.agent.post(f"/admin/v1/cases/{case['id']}/request-info", json={"message": "a photo of the seam please"})
    assert asked.json()["state"] == "info_requested"
    uploaded = _upload(tenant, case["id"], encode(photo(seed=7), "JPEG"))
    assert uploaded.status_code == 201
    after = tenant.agent.get(f"/admin/v1/cases/{case['id']}").json()
    assert after["state"] == "pending_review"
    assert after["decision"]["photo_count"] == 1 and after["decision"]["requires_photos"] is False
    rule = next(o for o in after["decision"]["outcomes"] if o["rule"] == "photo_evidence")
    assert rule["result"] == "pass" and "1 photo" in rule["detail"]
    approved = tenant.agent.post(f"/admin/v1/cases/{case['id']}/approve", json={})
    assert approved.status_code == 200, "no override needed once the photos are in"


def test_a_photo_reused_from_another_customers_case_is_flagged(tenant: Tenant) -> None:
    honest = _defect_case(tenant)
    picture = photo(seed=8)
    assert _upload(tenant, honest["id"], encode(picture, "JPEG", quality=95)).status_code == 201
    other = _defect_case(tenant)  # another customer (each order has its own)
    reused = _upload(tenant, other["id"], encode(picture.resize((480, 360)), "JPEG", quality=70))
    assert reused.status_code == 201 and reused.json()["matches_case_id"] is None  # the agents' business
    flagged = tenant.agent.get(f"/admin/v1/cases/{other['id']}").json()
    assert flagged["flags"] == ["reused_photo"] and flagged["state"] == "pending_review"
    assert [p["matches_case_id"] for p in flagged["photos"]] == [honest["id"]]
    queue = tenant.agent.get("/admin/v1/cases", params={"flagged": "true"}).json()["items"]
    assert [c["id"] for c in queue] == [other["id"]]
    event = next(e for e in tenant.agent.get(f"/admin/v1/cases/{other['id']}/events").json()["items"] if e["type"] == "flagged")
    assert event["data"]["matches_case_id"] == honest["id"]
    assert tenant.agent.get(f"/admin/v1/cases/{honest['id']}").json()["flags"] == []
    fresh = _upload(tenant, other["id"], encode(photo(seed=9), "JPEG")).json()
    photos = tenant.agent.get(f"/admin/v1/cases/{other['id']}").json()["photos"]
    assert {p["id"]: p["matches_case_id"] for p in photos}[fresh["id"]] is None


def test_photos_are_the_merchants_own(tenant: Tenant, other_tenant: Tenant) -> None:
    case = _defect_case(tenant)
    view = _upload(tenant, case["id"], encode(photo(seed=10), "JPEG")).json()
    assert other_tenant.storefront.get(view["url"]).status_code == 404
    assert other_tenant.agent.get(view["thumbnail_url"]).status_code == 404
    assert _upload(other_tenant, case["id"], encode(photo(seed=11), "JPEG")).status_code == 404
    assert tenant.finance.get(view["url"]).status_code == 403
    assert tenant.storefront.get(f"/v1/cases/{case['id']}/photos/ph_nope").status_code == 404


def test_a_case_takes_at_most_ten_photos(tenant: Tenant) -> None:
    case = _defect_case(tenant)
    for seed in range(20, 30):
        assert _upload(tenant, case["id"], encode(photo(64, 48, seed=seed), "PNG")).status_code == 201
    eleventh = _upload(tenant, case["id"], encode(photo(64, 48, seed=31), "PNG"))
    assert eleventh.status_code == 422 and eleventh.json()["errors"][0]["field"] == "file"
