"""The admin's webhook endpoint over HTTP: internal targets answer 422 when saved (a service of
its own here, with the defaults: internal targets not allowed, DNS answered by a scripted
resolver); a name rebound to 127.0.0.1 after setup is not delivered to; secrets survive a save
and rotate with both signatures during the grace period (on the shared service, whose receivers
listen on 127.0.0.1)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from service.config import Settings
from tests.fakes.resolver import ScriptedResolver
from tests.support.database import fresh_database
from tests.support.receiver import receiving, signed_by
from tests.support.server import serve
from tests.support.tenants import Tenant
from tests.support.waiting import eventually

PUBLIC_IP = "93.184.216.34"  # answered by the scripted resolver; never connected to


@pytest.fixture(scope="module")
def guarded_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, ScriptedResolver]]:
    from service.bootstrap import build_app

    resolver = ScriptedResolver({"shop.example.com": [PUBLIC_IP], "loopback.example.com": ["127.0.0.1"]})
    with fresh_database() as database_url:
        settings = Settings(
            database_url=database_url,
            data_dir=tmp_path_factory.mktemp("hooks"),
            log_format="json",
            worker_idle_seconds=0.05,
            webhook_first_backoff_seconds=0.2,
        )
        with serve(build_app(settings, resolver=resolver)) as url:
            yield url, database_url, resolver


@pytest.fixture
def guarded(guarded_service: tuple[str, str, ScriptedResolver]) -> Iterator[Tenant]:
    url, database_url, _ = guarded_service
    tenant = Tenant(url, database_url)
    yield tenant
    tenant.close()


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:5432/",
        "http://2130706433/",
        "http://0x7f000001/",
        "http://0177.0.0.1/",
        "http://127.1/",
        "http://0/",
        "http://①②⑦.0.0.1/",
        "http://127.0.0.1%2f@example.com/",
        "http://localhost/hooks",
        "http://localhost.localdomain/",
        "http://metadata.google.internal/computeMetadata/v1/",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/",
        "http://[::ffff:127.0.0.1]/",
        "http://100.64.0.1/",
        "https://loopback.example.com/hooks",
        "https://nowhere.example.com/hooks",
        "ftp://shop.example.com/",
    ],
)
def test_an_internal_target_answers_422_when_saved(guarded: Tenant, url: str) -> None:
    answer = guarded.admin.put("/admin/v1/webhook-endpoints", json={"url": url})
    assert answer.status_code == 422, answer.text
    problem = answer.json()
    assert problem["code"] == "validation_error"
    assert any("url" in str(error.get("field", error.get("key", ""))) for error in problem["errors"]), problem
    assert guarded.admin.get("/admin/v1/webhook-endpoints").json()["items"] == []


def test_a_public_target_is_saved_as_it_will_be_called(guarded: Tenant) -> None:
    answer = guarded.admin.put("/admin/v1/webhook-endpoints", json={"url": "https://Shop.Example.COM:443/hooks"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["url"] == "https://shop.example.com/hooks"


def test_a_name_rebound_to_loopback_after_setup_is_not_delivered_to(
    guarded: Tenant, guarded_service: tuple[str, str, ScriptedResolver]
) -> None:
    resolver = guarded_service[2]
    with receiving() as receiver:
        name = f"hooks-{guarded.merchant_id}.example.com"
        resolver.answers[name] = [PUBLIC_IP]
        saved = guarded.admin.put("/admin/v1/webhook-endpoints", json={"url": f"http://{name}:{receiver.port}/hooks"})
        assert saved.status_code == 200, saved.text
        resolver.answers[name] = ["127.0.0.1"]  # the name's DNS now answers the service's own machine
        guarded.open_case(guarded.put_order()["order_id"])

        def failed() -> list[dict]:
            items = guarded.admin.get("/admin/v1/webhook-deliveries").json()["items"]
            return [d for d in items if d["status_code"] is None and "internal address (127.0.0.1)" in (d["error"] or "")]

        eventually(failed)
        assert receiver.requests == []


def test_a_save_keeps_the_secret_and_a_rotation_signs_with_both_for_a_while(tenant: Tenant) -> None:
    assert tenant.admin.post("/admin/v1/webhook-endpoints/rotate-secret").status_code == 404
    with receiving() as receiver:
        old = tenant.admin.put("/admin/v1/webhook-endpoints", json={"url": receiver.url}).json()["secret"]
        again = tenant.admin.put("/admin/v1/webhook-endpoints", json={"url": receiver.url, "enabled": True})
        assert again.status_code == 200 and again.json()["secret"] is None
        assert (
            tenant.admin.put("/admin/v1/webhook-endpoints", json={"url": receiver.url, "secret": "whsec_" + "y" * 20}).status_code
            == 422
        )

        assert tenant.agent.post("/admin/v1/webhook-endpoints/rotate-secret").status_code == 403
        rotated = tenant.admin.post("/admin/v1/webhook-endpoints/rotate-secret")
        assert rotated.status_code == 200, rotated.text
        new = rotated.json()["secret"]
        assert new.startswith("whsec_") and new != old
        expires = datetime.fromisoformat(rotated.json()["previous_secret_expires_at"])
        assert abs(expires - (datetime.now(UTC) + timedelta(hours=24))) < timedelta(minutes=1)
        [listed] = tenant.admin.get("/admin/v1/webhook-endpoints").json()["items"]
        assert listed["secret"] is None and listed["previous_secret_expires_at"] == rotated.json()["previous_secret_expires_at"]

        receiver.secret = old  # a storefront that has not switched yet still accepts every delivery
        case = tenant.open_case(tenant.put_order()["order_id"]).json()
        eventually(lambda: len(receiver.of_case(case["id"])) == 2)
        assert receiver.bad_signatures == 0
        for body, headers in receiver.requests:
            header = headers["Returns-Signature"]
            assert header.count("v1=") == 2 and signed_by(new, body, header) and signed_by(old, body, header)
