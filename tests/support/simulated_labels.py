"""A running service whose worker buys return labels from the simulated carrier, which scans them
within seconds (one per test module that asks for ``label_service``), its merchants with
shipping settings (``shop``) and without (``other_shop``), and what the carrier sold. The modules
that use these fixtures import them by name."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from adapters.carriers.simulated import SimulatedCarrier
from tests.support.labels import RETURN_ADDRESS
from tests.support.server import fresh_service
from tests.support.tenants import Tenant

SETTINGS = {
    "label_buyer": "merchant",
    "return_address": RETURN_ADDRESS,
    "default_parcel": {"weight_g": 800},
    "parcels": {"apparel": {"weight_g": 400, "length_mm": 300, "width_mm": 200, "height_mm": 50}},
    "carrier_preferences": {"prefer": "cheapest"},
}


@pytest.fixture(scope="module")
def label_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The label service's data folder: its customer e-mails are written there."""
    return tmp_path_factory.mktemp("labels")


@pytest.fixture(scope="module")
def label_service(label_data: Path) -> Iterator[tuple[str, str]]:
    with fresh_service(
        data_dir=label_data,
        log_format="json",
        worker_idle_seconds=0.05,
        simulated_carrier_in_transit_seconds=1,
        simulated_carrier_delivered_seconds=2,
        tracking_poll_after_seconds=0.2,
        label_first_backoff_seconds=0.2,
    ) as service:
        yield service


@pytest.fixture
def shop(label_service: tuple[str, str]) -> Iterator[Tenant]:
    tenant = Tenant(*label_service)
    assert tenant.admin.put("/admin/v1/shipping-settings", json=SETTINGS).status_code == 200
    yield tenant
    tenant.close()


@pytest.fixture
def other_shop(label_service: tuple[str, str]) -> Iterator[Tenant]:
    tenant = Tenant(*label_service)
    yield tenant
    tenant.close()


def purchases(database_url: str, reference: str) -> int:
    """Labels the simulated carrier sold for our label ``reference``."""

    async def count() -> int:
        carrier = SimulatedCarrier(database_url)
        try:
            return await carrier.purchases(reference)
        finally:
            await carrier.close()

    return asyncio.run(count())
