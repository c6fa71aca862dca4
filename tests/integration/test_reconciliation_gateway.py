"""Reconciliation on the simulated gateway when it fails: the failure is the gateway's (503 or
502 in HTTP), never a report with refunds wrongly called missing, and nothing is stored."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from adapters.gateways.simulated import SimulatedGateway
from adapters.postgres.database import PostgresDatabase
from domain.refunds import Refund, RefundStatus
from service.finance import FinanceService
from service.ports import GatewayError, GatewayRefund, GatewayUnreadable, Principal

AT = datetime(2026, 11, 1, 12, tzinfo=UTC)
PRINCIPAL = Principal(key_id="key_f", merchant_id="m_rec", role="finance")


class LookupDown(SimulatedGateway):
    """Lists refunds, then cannot be reached for a single one."""

    async def get_refund(self, gateway_refund_id: str, *, account: str | None = None) -> GatewayRefund:
        raise GatewayError("connection reset", code="api_connection_error", retryable=True)


async def _seed(db: PostgresDatabase) -> None:
    async with db.transaction() as repos:
        await repos.ensure_merchant("m_rec")
        await repos.add_refund(
            Refund(
                id="rf_1",
                merchant_id="m_rec",
                case_id="case_1",
                order_id="o_1",
                customer_id="cus_1",
                amount=1999,
                currency="EUR",
                status=RefundStatus.SUCCEEDED,
                gateway="simulated",
                payment_reference="pi_1",
                attempt=1,
                created_at=AT,
                updated_at=AT,
                gateway_refund_id="re_sim_unknown",
            )
        )


async def _stored(db: PostgresDatabase) -> int:
    async with db.pool.acquire() as conn:
        return await conn.fetchval("SELECT count(*) FROM reconciliations WHERE merchant_id = 'm_rec'")


@pytest.mark.parametrize(
    ("retryable", "code", "status", "problem"),
    [
        (True, "api_error", 503, "gateway_unavailable"),
        (False, "authentication_error", 502, "gateway_error"),
    ],
)
async def test_a_failing_gateway_makes_no_report(
    db: PostgresDatabase,
    own_database_url: str,
    retryable: bool,
    code: str,
    status: int,
    problem: str,
) -> None:
    await _seed(db)
    gateway = SimulatedGateway(own_database_url)
    finance = FinanceService(db, gateway, lambda: AT)
    gateway.fail_next(retryable=retryable, code=code)
    with pytest.raises(GatewayUnreadable) as raised:
        await finance.reconcile(PRINCIPAL, AT - timedelta(hours=1), AT + timedelta(hours=1))
    assert (raised.value.status, raised.value.code) == (status, problem)
    assert (raised.value.retry_after is not None) is retryable
    assert await _stored(db) == 0
    report = await finance.reconcile(PRINCIPAL, AT - timedelta(hours=1), AT + timedelta(hours=1))
    assert [e.refund_id for e in report.missing_at_gateway] == ["rf_1"], "the gateway back: truly missing there"
    assert await _stored(db) == 1


async def test_a_refund_the_gateway_cannot_look_up_is_not_called_missing(db: PostgresDatabase, own_database_url: str) -> None:
    await _seed(db)
    finance = FinanceService(db, LookupDown(own_database_url), lambda: AT)
    with pytest.raises(GatewayUnreadable) as raised:
        await finance.reconcile(PRINCIPAL, AT - timedelta(hours=1), AT + timedelta(hours=1))
    assert raised.value.status == 503
    assert await _stored(db) == 0
