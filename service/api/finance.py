"""Finance endpoints (role finance): the refund ledger and its CSV, reconciliations, reports."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from litestar import Controller, Request, get, post
from litestar.params import Parameter, QueryParameter
from litestar.response import Stream

from domain.refunds import RefundStatus
from service.api.auth import roles
from service.api.http import PathId, principal_of, query_period
from service.api.storefront import Limit
from service.container import Services
from service.dto import (
    Currency,
    LedgerList,
    ReasonsReport,
    ReconciliationIn,
    ReconciliationView,
    SummaryReport,
)
from service.ports import LedgerFilter

# The reports let agent keys in too when the operator says so (``service.api.auth.roles``).
AGENTS_IF_ENABLED = {"agents_if": "reports_for_agents"}
# Bounds are read as text and parsed by ``query_period`` (an error names the parameter; a plain
# date is a whole day in UTC). Not given, a report covers the last 30 days.
_START = "start, inclusive: RFC 3339 with a time zone, or a date (its midnight UTC)"
_END = "end, exclusive: RFC 3339 with a time zone, or a date (that whole day, up to the next midnight UTC)"
From = Annotated[str | None, QueryParameter(name="from", description=_START + "; default: 30 days before to", required=False)]
To = Annotated[str | None, QueryParameter(name="to", description=_END + "; default: now", required=False)]
CreatedFrom = Annotated[str | None, QueryParameter(description=_START, required=False)]
CreatedTo = Annotated[str | None, QueryParameter(description=_END, required=False)]


def _filters(request: Request[Any, Any, Any], status: RefundStatus | None, currency: str | None) -> LedgerFilter:
    """The ledger's filters, checked before the CSV's answer starts."""
    created_from, created_to = query_period(request, "created_from", "created_to")
    return LedgerFilter(status=status, currency=currency, created_from=created_from, created_to=created_to)


class FinanceController(Controller):
    path = "/finance/v1"
    guards = [roles("finance")]
    tags = ["finance"]

    @get("/refunds", operation_id="listRefunds")
    async def refunds(
        self,
        request: Request[Any, Any, Any],
        services: Services,
        status: RefundStatus | None = None,
        currency: Annotated[Currency | None, Parameter(required=False)] = None,
        created_from: CreatedFrom = None,
        created_to: CreatedTo = None,
        limit: Limit = 50,
        cursor: str | None = None,
    ) -> LedgerList:
        """Every refund, oldest first, with its case, order, customer, gateway id and reason."""
        filters = _filters(request, status, currency)
        return await services.finance.ledger(principal_of(request), filters, limit, cursor)

    @get("/refunds.csv", operation_id="exportRefunds", media_type="text/csv")
    async def refunds_csv(
        self,
        request: Request[Any, Any, Any],
        services: Services,
        status: RefundStatus | None = None,
        currency: Annotated[Currency | None, Parameter(required=False)] = None,
        created_from: CreatedFrom = None,
        created_to: CreatedTo = None,
    ) -> Stream:
        """The same ledger as CSV (RFC 4180), streamed: opens in a spreadsheet as it is."""
        filters = _filters(request, status, currency)
        return Stream(
            services.finance.ledger_csv(principal_of(request), filters),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": 'attachment; filename="refunds.csv"'},
        )

    @post("/reconciliations", operation_id="reconcile", status_code=201)
    async def reconcile(self, request: Request[Any, Any, Any], services: Services, data: ReconciliationIn) -> ReconciliationView:
        """Compare our refunds of the period with the gateway's; the report is kept."""
        return await services.finance.reconcile(principal_of(request), data.period_from, data.period_to)

    @get("/reconciliations/{reconciliation_id:str}", operation_id="getReconciliation")
    async def reconciliation(
        self, request: Request[Any, Any, Any], services: Services, reconciliation_id: PathId
    ) -> ReconciliationView:
        return await services.finance.get_reconciliation(principal_of(request), reconciliation_id)

    @get("/reports/summary", operation_id="summaryReport", opt=AGENTS_IF_ENABLED)
    async def summary(
        self,
        request: Request[Any, Any, Any],
        services: Services,
        period_from: From = None,
        period_to: To = None,
        group_by: Literal["day", "currency", "reason", "sku", "type"] = "day",
    ) -> SummaryReport:
        """Refund counts and amounts per day, currency, reason, SKU or case type (and currency)."""
        since, until = query_period(request, "from", "to")
        return await services.finance.summary(principal_of(request), since, until, group_by)

    @get("/reports/reasons", operation_id="reasonsReport", opt=AGENTS_IF_ENABLED)
    async def reasons(
        self,
        request: Request[Any, Any, Any],
        services: Services,
        period_from: From = None,
        period_to: To = None,
        by_day: Annotated[bool, Parameter(description="also per UTC day the cases were opened (added)")] = False,
    ) -> ReasonsReport:
        """Return reasons by SKU, the share the merchant is responsible for, and CSAT."""
        since, until = query_period(request, "from", "to")
        return await services.finance.reasons(principal_of(request), since, until, by_day)
