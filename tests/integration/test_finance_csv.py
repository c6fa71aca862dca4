"""The CSV export's format: RFC 4180 quoting survives commas, quotes and line breaks, amounts
in every currency exponent parse back exactly."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from adapters.gateways.simulated import SimulatedGateway
from adapters.postgres.database import PostgresDatabase
from domain.refunds import Refund, RefundStatus
from service.finance import CSV_COLUMNS, FinanceService
from service.ports import LedgerFilter, Principal

AT = datetime(2026, 11, 1, 12, tzinfo=UTC)


async def test_awkward_text_and_every_exponent_survive_the_round_trip(db: PostgresDatabase, own_database_url: str) -> None:
    refunds = [
        ("EUR", 1999, 'card said "no", twice\nthen yes'),
        ("JPY", 1500, None),
        ("KWD", 12345, "comma, inside"),
        ("EUR", 1, ""),
    ]
    async with db.transaction() as repos:
        await repos.ensure_merchant("m_csv")
        for index, (currency, amount, failure) in enumerate(refunds):
            await repos.add_refund(
                Refund(
                    id=f"rf_{index}",
                    merchant_id="m_csv",
                    case_id=f"case_{index}",
                    order_id="o,1",
                    customer_id="cus_1",
                    amount=amount,
                    currency=currency,
                    status=RefundStatus.FAILED if failure else RefundStatus.SUCCEEDED,
                    gateway="stripe",
                    payment_reference="pi_1",
                    attempt=1,
                    created_at=AT + timedelta(minutes=index),
                    updated_at=AT,
                    reason="defective",
                    failure_reason=failure or None,
                )
            )
    finance = FinanceService(db, SimulatedGateway(own_database_url), lambda: AT)
    principal = Principal(key_id="key_f", merchant_id="m_csv", role="finance")
    body = b"".join([chunk async for chunk in finance.ledger_csv(principal, LedgerFilter())]).decode()
    assert body.count("\r\n") == len(refunds) + 1  # header and rows end in CRLF; a quoted field keeps its own LF
    rows = list(csv.DictReader(io.StringIO(body, newline="")))
    assert list(rows[0]) == CSV_COLUMNS
    assert [(r["currency"], r["amount"], r["amount_minor"]) for r in rows] == [
        ("EUR", "19.99", "1999"),
        ("JPY", "1500", "1500"),
        ("KWD", "12.345", "12345"),
        ("EUR", "0.01", "1"),
    ]
    assert rows[0]["failure_reason"] == 'card said "no", twice\nthen yes'
    assert rows[2]["failure_reason"] == "comma, inside" and rows[0]["order_id"] == "o,1"
    for row in rows:
        exponent = {"JPY": 0, "KWD": 3}.get(row["currency"], 2)
        assert Decimal(row["amount"]) == Decimal(int(row["amount_minor"])).scaleb(-exponent)
    only_eur = b"".join([c async for c in finance.ledger_csv(principal, LedgerFilter(currency="EUR"))]).decode()
    assert len(list(csv.DictReader(io.StringIO(only_eur, newline="")))) == 2


async def test_text_a_spreadsheet_would_run_is_neutralised_and_numbers_stay_numbers(
    db: PostgresDatabase, own_database_url: str
) -> None:
    """OWASP CSV injection: a text cell starting with = + - @, a tab or a carriage return gets a
    leading quote. Stored through the repository: the API refuses such ids itself."""
    hostile = ['=HYPERLINK("http://evil.example")', "+1+2", "-2+3", "@SUM(A1)", "\tcmd", "\r=1"]
    async with db.transaction() as repos:
        await repos.ensure_merchant("m_formula")
        for index, text in enumerate(hostile):
            await repos.add_refund(
                Refund(
                    id=f"{text}{index}",
                    merchant_id="m_formula",
                    case_id=text,
                    order_id=text,
                    customer_id=text,
                    amount=1999 + index,
                    currency="EUR",
                    status=RefundStatus.FAILED,
                    gateway="stripe",
                    payment_reference="pi_1",
                    attempt=1,
                    created_at=AT + timedelta(minutes=index),
                    updated_at=AT,
                    reason=text,
                    failure_reason=text,
                    gateway_refund_id=text,
                )
            )
    finance = FinanceService(db, SimulatedGateway(own_database_url), lambda: AT)
    principal = Principal(key_id="key_f", merchant_id="m_formula", role="finance")
    body = b"".join([chunk async for chunk in finance.ledger_csv(principal, LedgerFilter())]).decode()
    rows = list(csv.DictReader(io.StringIO(body, newline="")))
    assert len(rows) == len(hostile)
    text_columns = ["refund_id", "case_id", "order_id", "customer_id", "reason", "gateway_refund_id", "failure_reason"]
    for row, text in zip(rows, hostile, strict=True):
        for column in text_columns:
            assert row[column].startswith("'" + text), (column, row[column])
        assert Decimal(row["amount"]) * 100 == int(row["amount_minor"]), "numbers are left as numbers"
        assert not row["amount"].startswith("'") and not row["amount_minor"].startswith("'")
    assert [r["status"] for r in rows] == ["failed"] * len(hostile), "plain text is left alone"
