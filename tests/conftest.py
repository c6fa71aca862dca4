"""Shared fixtures: one fresh database and one real service per test session. Tests isolate
themselves by making their own merchant (``tenant``), so nothing needs cleaning between them."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from adapters.gateways.simulated import SimulatedGateway
from service.config import Settings
from tests.fakes.resolver import ScriptedResolver
from tests.support.database import fresh_database
from tests.support.server import serve
from tests.support.tenants import Tenant


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    with fresh_database() as url:
        yield url


@pytest.fixture(scope="session")
def base_url(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from service.bootstrap import build_app

    settings = Settings(
        database_url=database_url,
        data_dir=tmp_path_factory.mktemp("data"),
        log_format="json",
        worker_idle_seconds=0.05,
        webhook_first_backoff_seconds=0.2,
        stripe_webhook_secret="whsec_main_test_server",
        webhook_allow_internal_targets=True,  # the tests' receivers listen on 127.0.0.1
    )
    # Webhook hosts are looked up by a scripted resolver: no test asks real DNS about a name.
    with serve(build_app(settings, resolver=ScriptedResolver({"localhost": ["127.0.0.1"]}))) as url:
        yield url


@pytest.fixture(scope="session")
def gateway(base_url: str, database_url: str) -> SimulatedGateway:
    """The simulated gateway behind the shared test service (its tables exist once the service has
    started), for tests to script and inspect through its helpers. The service has an instance of
    its own on the same database: ``fail_next`` here does not reach it."""
    return SimulatedGateway(database_url)


@pytest.fixture
def tenant(base_url: str, database_url: str) -> Iterator[Tenant]:
    t = Tenant(base_url, database_url)
    yield t
    t.close()


@pytest.fixture
def other_tenant(base_url: str, database_url: str) -> Iterator[Tenant]:
    t = Tenant(base_url, database_url)
    yield t
    t.close()
