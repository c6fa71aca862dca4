"""A running service that buys return labels through EasyPost (the fake EasyPost server, through
the real ``easypost`` SDK; one per test module that asks for ``easypost_service``), the settings
it runs with, the merchants' shipping settings, and what EasyPost sold. The modules that use
these fixtures import them by name."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from service.config import Settings
from tests.fakes.easypost_server import FakeEasyPost
from tests.support.database import fresh_database
from tests.support.labels import RETURN_ADDRESS
from tests.support.server import serve

SECRET = "easypost-webhook-secret"
RATES = [("USPS", "Priority", "7.29", "EUR", 2), ("UPS", "Ground", "11.10", "EUR", 5)]  # the cheapest: 729
SETTINGS = {"label_buyer": "merchant", "return_address": RETURN_ADDRESS, "default_parcel": {"weight_g": 800}}


def service_settings(fake: FakeEasyPost, database_url: str, data_dir: Any, **changes: Any) -> Settings:
    """EasyPost (the fake) for labels and webhooks; no polling unless a test asks for it."""
    chosen: dict[str, Any] = {
        "log_format": "json",
        "worker_idle_seconds": 0.05,
        "tracking_poll_after_seconds": 3600,
        "label_first_backoff_seconds": 0.2,
        **changes,
    }
    return Settings(
        database_url=database_url,
        data_dir=data_dir,
        easypost_api_key="EZTK_e2e",
        easypost_api_base=fake.api_base,
        easypost_webhook_secrets=(SECRET,),
        **chosen,
    )


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeEasyPost]:
    with FakeEasyPost(RATES) as server:
        yield server


@pytest.fixture(scope="module")
def easypost_service(fake: FakeEasyPost, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    from service.bootstrap import build_app

    with (
        fresh_database() as database_url,
        serve(build_app(service_settings(fake, database_url, tmp_path_factory.mktemp("easypost")))) as url,
    ):
        yield url, database_url


def purchases(fake: FakeEasyPost, reference: str) -> int:
    """Labels EasyPost sold for our label (its id is the shipment's reference)."""
    with fake.lock:
        ours = {s["id"] for s in fake.shipments.values() if s["reference"] == reference}
        return sum(1 for shipment_id, _ in fake.purchases if shipment_id in ours)
