"""A running service that buys return labels through EasyPost (the fake EasyPost server, through
the real ``easypost`` SDK; one per test module that asks for ``easypost_service``), the settings
it runs with, the merchants' shipping settings, and what EasyPost sold. The modules that use
these fixtures import them by name."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.fakes.easypost_server import FakeEasyPost
from tests.support.labels import RETURN_ADDRESS
from tests.support.server import fresh_service

SECRET = "easypost-webhook-secret"
RATES = [("USPS", "Priority", "7.29", "EUR", 2), ("UPS", "Ground", "11.10", "EUR", 5)]  # the cheapest: 729
SETTINGS = {"label_buyer": "merchant", "return_address": RETURN_ADDRESS, "default_parcel": {"weight_g": 800}}


def service_settings(fake: FakeEasyPost, data_dir: Any, **changes: Any) -> dict[str, Any]:
    """The settings (but the database) of a service with EasyPost (the fake) for labels and
    webhooks; no polling unless a test asks for it."""
    return {
        "data_dir": data_dir,
        "easypost_api_key": "EZTK_e2e",
        "easypost_api_base": fake.api_base,
        "easypost_webhook_secrets": (SECRET,),
        "log_format": "json",
        "worker_idle_seconds": 0.05,
        "tracking_poll_after_seconds": 3600,
        "label_first_backoff_seconds": 0.2,
        **changes,
    }


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeEasyPost]:
    with FakeEasyPost(RATES) as server:
        yield server


@pytest.fixture(scope="module")
def easypost_service(fake: FakeEasyPost, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    with fresh_service(**service_settings(fake, tmp_path_factory.mktemp("easypost"))) as service:
        yield service


def purchases(fake: FakeEasyPost, reference: str) -> int:
    """Labels EasyPost sold for our label (its id is the shipment's reference)."""
    with fake.lock:
        ours = {s["id"] for s in fake.shipments.values() if s["reference"] == reference}
        return sum(1 for shipment_id, _ in fake.purchases if shipment_id in ours)
