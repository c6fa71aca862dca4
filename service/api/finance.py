"""Finance endpoints (role finance): the refund ledger and its CSV, reconciliations, reports."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from litestar import Controller, Request, get, post
from litestar.params import Parameter, QueryParameter
from litestar.response import Stream

from domain.refunds import RefundStatus
from service.api.auth import roles
from service.api.http import PathId, check_query_moments, principal_of
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
# Read as text and parsed here (``check_query_moments``), so an error names ``from``/``to``
From = Annotated[str, QueryParameter(name="from", description="start, inclusive (RFC 3339)", format="date-time")]
To = Annotated[str, QueryParameter(name="to", description="end, exclusive (RFC 3339)", format="date-time")]


def _filters(
    request: Request[Any, Any, Any], status: RefundStatus | None, currency: str | None,
    created_from: datetime | None, created_to: datetime | None,
) -> LedgerFilter:
    """The ledger's filters, checked before the CSV's answer starts."""
    check_query_moments(request, "created_from", "created_to")
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
        created_from: datetime | None = None,
        created_to: datetime | None = None,
        limit: Limit = 50,
        cursor: str | None = None,
    ) -> LedgerList:
        """Every refund, oldest first, with its case, order, customer, gateway id and reason."""
        filters = _filters(request, status, currency, created_from, created_to)
        return await services.finance.ledger(principal_of(request), filters, limit, cursor)

    @get("/refunds.csv", operation_id="exportRefunds", media_type="text/csv")
    async def refunds_csv(
        self,
        request: Request[Any, Any, Any],
        services: Services,
        status: RefundStatus | None = None,
        currency: Annotated[Currency | None, Parameter(required=False)] = None,
        created_from: datetime | None = None,
        created_to: datetime | None = None,
    ) -> Stream:
        """The same ledger as CSV (RFC 4180), streamed: opens in a spreadsheet as it is."""
        filters = _filters(request, status, currency, created_from, created_to)
        return Stream(
            services.finance.ledger_csv(principal_of(request), filters),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": 'attachment; filename="refunds.csv"'},
        )

    @post("/reconciliations", operation_id="reconcile", status_code=201)
    async def reconcile(
        self, request: Request[Any, Any, Any], services: Services, data: ReconciliationIn
    ) -> ReconciliationView:
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
        period_from: From,
        period_to: To,
        group_by: Literal["day", "currency", "reason", "sku", "type"] = "day",
    ) -> SummaryReport:
        """Refund counts and amounts per day, currency, reason, SKU or case type (and currency)."""
        since, until = check_query_moments(request, "from", "to")
        return await services.finance.summary(principal_of(request), since, until, group_by)

    @get("/reports/reasons", operation_id="reasonsReport", opt=AGENTS_IF_ENABLED)
    async def reasons(
        self, request: Request[Any, Any, Any], services: Services, period_from: From, period_to: To,
        by_day: Annotated[bool, Parameter(description="also per UTC day the cases were opened (added)")] = False,
    ) -> ReasonsReport:
        """Return reasons by SKU, the share the merchant is responsible for, and CSAT."""
        since, until = check_query_moments(request, "from", "to")
        return await services.finance.reasons(principal_of(request), since, until, by_day)

