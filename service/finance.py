"""Finance: the refund ledger (paged, and streamed as CSV), reconciliation against the payment
gateway, and reports computed in SQL."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta
from typing import Any

import msgspec

from domain.cases import Reason, Responsibility, responsibility
from domain.errors import InvalidRequest
from domain.money import to_major
from domain.refunds import Refund, RefundStatus
from service.dto import (
    ClassTotal,
    Csat,
    CurrencyTotals,
    DayReasonCount,
    DayReasons,
    LedgerList,
    LedgerRefundView,
    ReasonCount,
    ReasonsReport,
    ReconciliationEntry,
    ReconciliationView,
    SkuReasons,
    SummaryReport,
    SummaryRow,
    time_zone_errors,
)
from service.ids import new_id
from service.ports import (
    Database,
    GatewayError,
    GatewayRefund,
    GatewayUnreadable,
    LedgerFilter,
    NotFound,
    PaymentGateway,
    Principal,
)
from service.views import refund_view

CSV_COLUMNS = [
    "refund_id",
    "case_id",
    "order_id",
    "customer_id",
    "reason",
    "status",
    "currency",
    "amount",
    "amount_minor",
    "gateway",
    "gateway_refund_id",
    "created_at",
    "settled_at",
    "failure_reason",
]
MAX_PERIOD = timedelta(days=366)
DEFAULT_PERIOD = timedelta(days=30)
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
# What the gateway's status is called in ours ("pending" there means accepted, not yet settled).
_OURS = {"pending": RefundStatus.SUBMITTED}


def ledger_view(refund: Refund) -> LedgerRefundView:
    return LedgerRefundView(**msgspec.structs.asdict(refund_view(refund)), customer_id=refund.customer_id, reason=refund.reason)


def check_period(since: datetime, until: datetime) -> None:
    errors = time_zone_errors(**{"from": since, "to": until})
    if not errors and until <= since:
        errors.append({"field": "from", "message": "must be before to"})
    elif not errors and until - since > MAX_PERIOD:
        errors.append({"field": "to", "message": "a period is at most 366 days"})
    if errors:
        raise InvalidRequest("the period is not valid", errors)


class FinanceService:
    def __init__(self, db: Database, gateway: PaymentGateway, clock: Callable[[], datetime]) -> None:
        self.db = db
        self.gateway = gateway
        self.clock = clock

    async def ledger(self, principal: Principal, filters: LedgerFilter, limit: int, cursor: str | None) -> LedgerList:
        async with self.db.reading() as repos:
            page = await repos.ledger(principal.merchant_id, filters, limit, cursor)
        return LedgerList(items=[ledger_view(r) for r in page.items], next_cursor=page.next_cursor)

    async def ledger_csv(self, principal: Principal, filters: LedgerFilter) -> AsyncIterator[bytes]:
        """RFC 4180 CSV (CRLF, quoted where needed), a header row, then the refunds oldest
        first, produced a batch at a time; amounts both as a decimal string in major units and
        as the integer in minor units."""
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\r\n")
        writer.writerow(CSV_COLUMNS)
        yield buffer.getvalue().encode()
        async with self.db.reading() as repos:  # one snapshot: the rows of one moment
            async for batch in repos.stream_ledger(principal.merchant_id, filters):
                buffer.seek(0)
                buffer.truncate()
                writer.writerows(_csv_row(refund) for refund in batch)
                yield buffer.getvalue().encode()

    # ----------------------------------------------------------------- reconciliation

    async def reconcile(self, principal: Principal, since: datetime, until: datetime) -> ReconciliationView:
        """Our refunds of the period against the gateway's, matched by the gateway's id and
        by our id in its metadata. Stored; the same period may be run again.

        On the platform's account, which merchants without one of their own share, the gateway
        lists every merchant's refunds: only those of the merchant's own payments
        (``payment_owners``) and its own refunds are compared, so no other merchant's refund
        (ids, amounts) reaches the report. On the merchant's own account every refund is its own."""
        check_period(since, until)
        merchant_id = principal.merchant_id
        async with self.db.transaction() as repos:
            account = await repos.gateway_account(merchant_id)
            ours = await repos.refunds_between(merchant_id, since, until)
        try:
            theirs = [r async for r in self.gateway.list_refunds(created_from=since, created_to=until, account=account)]
        except GatewayError as exc:
            raise GatewayUnreadable(exc) from exc
        # ours made just outside the period whose gateway twin falls inside it
        async with self.db.transaction() as repos:
            known = {r.id for r in ours}
            ids = [i for r in theirs for i in (r.gateway_refund_id, r.refund_id) if i]
            found = await repos.refunds_by_gateway_ids(merchant_id, self.gateway.name, account, ids)
            ours += [r for r in found if r.id not in known]
            if account is None:
                owned = await repos.owned_payments(
                    merchant_id, self.gateway.name, "", sorted({r.payment_reference for r in theirs})
                )
                our_ids, gateway_ids = {r.id for r in ours}, {r.gateway_refund_id for r in ours}
                theirs = [
                    r
                    for r in theirs
                    if r.payment_reference in owned or r.gateway_refund_id in gateway_ids or r.refund_id in our_ids
                ]
        report = ReconciliationView(
            id=new_id("rec"), period_from=since, period_to=until, created_at=self.clock(), gateway=self.gateway.name
        )
        await self._classify(report, ours, theirs)
        report.totals = _totals(report)
        async with self.db.transaction() as repos:
            await repos.add_reconciliation(merchant_id, report.id, since, until, report.created_at, msgspec.to_builtins(report))
        return report

    async def _classify(self, report: ReconciliationView, ours: list[Refund], theirs: list[GatewayRefund]) -> None:
        by_gateway_id = {r.gateway_refund_id: r for r in ours if r.gateway_refund_id}
        by_id = {r.id: r for r in ours}
        matched_ours: set[str] = set()
        for their in theirs:
            our = by_gateway_id.get(their.gateway_refund_id) or by_id.get(their.refund_id or "")
            if our is None:
                report.unknown_at_gateway.append(_entry(None, their))
                continue
            matched_ours.add(our.id)
            _place(report, our, their)
        for our in ours:
            if our.id in matched_ours or our.gateway_refund_id is None:
                continue  # not sent yet, or refused before the gateway made anything: nothing to find
            try:  # its gateway twin may be dated just outside the period
                their = await self.gateway.get_refund(our.gateway_refund_id, account=our.gateway_account)
            except GatewayError as exc:
                if exc.code != "resource_missing":  # not an answer about this refund
                    raise GatewayUnreadable(exc) from exc
                report.missing_at_gateway.append(_entry(our, None))
                continue
            _place(report, our, their)

    async def get_reconciliation(self, principal: Principal, reconciliation_id: str) -> ReconciliationView:
        async with self.db.reading() as repos:
            stored = await repos.get_reconciliation(principal.merchant_id, reconciliation_id)
        if stored is None:
            raise NotFound(f"no reconciliation {reconciliation_id}")
        return msgspec.convert(stored, ReconciliationView)

    # ----------------------------------------------------------------- reports

    def report_period(self, since: datetime | None, until: datetime | None) -> tuple[datetime, datetime]:
        """A report's period as asked, checked; a bound not given defaults to the last 30 days
        (``to`` now, ``from`` 30 days before ``to``), which is what a finance person looks at
        first."""
        until = until or self.clock()
        since = since or until - DEFAULT_PERIOD
        check_period(since, until)
        return since, until

    async def summary(self, principal: Principal, since: datetime | None, until: datetime | None, group_by: str) -> SummaryReport:
        since, until = self.report_period(since, until)
        async with self.db.reading() as repos:
            rows = await repos.summary(principal.merchant_id, since, until, group_by)
        return SummaryReport(
            period_from=since,
            period_to=until,
            group_by=group_by,
            # items and their value are the SKU report's; elsewhere they would add apples and pears
            rows=[SummaryRow(**(row if group_by == "sku" else {**row, "items": None, "item_value": None})) for row in rows],
        )

    async def reasons(
        self, principal: Principal, since: datetime | None, until: datetime | None, by_day: bool = False
    ) -> ReasonsReport:
        since, until = self.report_period(since, until)
        async with self.db.reading() as repos:
            trends = await repos.reason_trends(principal.merchant_id, since, until, by_day)
        by_sku: dict[str, list[ReasonCount]] = {}
        for row in trends["rows"]:
            by_sku.setdefault(row["sku"], []).append(
                ReasonCount(reason=row["reason"], responsibility=_responsibility(row), items=row["items"], cases=row["cases"])
            )
        overall = trends["overall"]
        return ReasonsReport(
            period_from=since,
            period_to=until,
            items=overall["items"],
            merchant_responsible_share=_share(overall["merchant_items"], overall["items"]),
            by_sku=[
                SkuReasons(
                    sku=sku,
                    items=sum(r.items for r in reasons),
                    merchant_responsible_share=_merchant_share(reasons),
                    reasons=reasons,
                )
                for sku, reasons in sorted(by_sku.items(), key=lambda kv: -sum(r.items for r in kv[1]))
            ],
            csat=_csat(overall),
            by_day=_by_day(trends["days"], trends["day_surveys"]) if by_day else None,
        )


def _csat(surveys: dict[str, Any]) -> Csat:
    """Satisfaction from a row of ``surveys``, ``rating`` (their average) and ``satisfied``."""
    count = surveys["surveys"]
    return Csat(
        surveys=count,
        average_rating=round(float(surveys["rating"]), 2) if surveys["rating"] is not None else None,
        satisfied_share=_share(surveys["satisfied"], count) if count else None,
    )


def _by_day(rows: list[dict[str, Any]], surveys: list[dict[str, Any]]) -> list[DayReasons]:
    """Reasons per UTC day the cases were opened, so a chart can show them over time; CSAT per
    the same day (a survey counts on the day its case was opened, as in the period's CSAT)."""
    rated = {row["day"]: row for row in surveys}
    days: dict[str, list[DayReasonCount]] = {}
    for row in rows:
        days.setdefault(row["day"], []).append(
            DayReasonCount(sku=row["sku"], reason=row["reason"], responsibility=_responsibility(row), items=row["items"])
        )
    return [
        DayReasons(
            day=day,
            items=sum(r.items for r in reasons),
            merchant_responsible_share=_merchant_share(reasons),
            reasons=reasons,
            csat=_csat(rated.get(day, {"surveys": 0, "rating": None, "satisfied": 0})),
        )
        for day, reasons in days.items()
    ]


def _responsibility(row: dict[str, Any]) -> str:
    """Who a report row's items are on: the agent's decision where there is one (reason ``other``,
    decided on approval), else what the reason says."""
    return str(Responsibility(row["decided"]) if row["decided"] else responsibility(Reason(row["reason"])))


def _merchant_share(reasons: list[ReasonCount] | list[DayReasonCount]) -> float:
    """The share of the items that came back for a reason the merchant is responsible for."""
    merchant = sum(r.items for r in reasons if r.responsibility == Responsibility.MERCHANT)
    return _share(merchant, sum(r.items for r in reasons))


def _share(part: int, whole: int) -> float:
    return round(part / whole, 4) if whole else 0.0


def _csv_row(refund: Refund) -> list[str | int]:
    """One refund's cells. Text is neutralised (``_text``); the two amounts are numbers, left as
    they are so a spreadsheet adds them up."""
    t = _text
    return [
        t(refund.id),
        t(refund.case_id),
        t(refund.order_id),
        t(refund.customer_id),
        t(refund.reason or ""),
        t(str(refund.status)),
        t(refund.currency),
        to_major(refund.amount, refund.currency),
        refund.amount,
        t(refund.gateway),
        t(refund.gateway_refund_id or ""),
        refund.created_at.isoformat(),
        refund.settled_at.isoformat() if refund.settled_at else "",
        t(refund.failure_reason or ""),
    ]


def _text(cell: str) -> str:
    """A text cell a spreadsheet would run as a formula (it starts with ``= + - @``, a tab or a
    carriage return) gets a leading single quote, as OWASP advises against CSV injection."""
    return "'" + cell if cell.startswith(_FORMULA_STARTS) else cell


def _entry(our: Refund | None, their: GatewayRefund | None) -> ReconciliationEntry:
    return ReconciliationEntry(
        currency=(our.currency if our else their.currency),  # type: ignore[union-attr]
        refund_id=our.id if our else their.refund_id if their else None,
        case_id=our.case_id if our else None,
        gateway_refund_id=(their.gateway_refund_id if their else our.gateway_refund_id if our else None),
        our_amount=our.amount if our else None,
        gateway_amount=their.amount if their else None,
        our_status=str(our.status) if our else None,
        gateway_status=their.status if their else None,
    )


def _place(report: ReconciliationView, our: Refund, their: GatewayRefund) -> None:
    entry = _entry(our, their)
    if our.amount != their.amount or our.currency != their.currency:
        report.amount_mismatch.append(entry)
    elif str(our.status) != str(_OURS.get(their.status, their.status)):
        report.status_mismatch.append(entry)
    else:
        report.matched.append(entry)


def _totals(report: ReconciliationView) -> dict[str, CurrencyTotals]:
    classes = ("matched", "missing_at_gateway", "unknown_at_gateway", "amount_mismatch", "status_mismatch")
    per_currency: dict[str, dict[str, ClassTotal]] = {}
    for name in classes:
        for entry in getattr(report, name):
            total = per_currency.setdefault(entry.currency, {c: ClassTotal() for c in classes})[name]
            total.count += 1
            total.our_amount += entry.our_amount or 0
            total.gateway_amount += entry.gateway_amount or 0
    return {
        currency: CurrencyTotals(
            our_amount=sum(t.our_amount for t in totals.values()),
            gateway_amount=sum(t.gateway_amount for t in totals.values()),
            **totals,
        )
        for currency, totals in sorted(per_currency.items())
    }
