"""Storefront endpoints (role storefront): orders, cases, shipments, cancellations."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, Response, get, post, put
from litestar.di import Provide
from litestar.openapi import ResponseSpec
from litestar.params import HeaderParameter, Parameter, QueryParameter

from domain.cases import CaseState
from service.actions import Audience
from service.api.auth import roles
from service.api.http import PathId, expected_version, principal_of
from service.container import Services
from service.dto import (
    CaseIn,
    CaseList,
    CaseView,
    OrderIn,
    OrderView,
    ProvideInfoIn,
    QuoteView,
    ShipmentIn,
    StoreCreditView,
    SurveyIn,
)
from service.ports import CaseFilter

Limit = Annotated[int, Parameter(ge=1, le=100, description="page size")]


class StorefrontController(Controller):
    path = "/v1"
    guards = [roles("storefront")]
    tags = ["storefront"]
    # the case actions that take ``expected_version`` read (and so declare) If-Match, as the agent's do
    dependencies = {"expected_version": Provide(expected_version, sync_to_thread=False)}

    @put(
        "/orders/{order_id:str}",
        operation_id="putOrder",
        status_code=200,
        response_description="The order was updated",
        responses={201: ResponseSpec(OrderView, description="The order was new: created")},
    )
    async def put_order(
        self, request: Request[Any, Any, Any], services: Services, order_id: PathId, data: OrderIn
    ) -> Response[OrderView]:
        """Create or replace an order snapshot: 201 when new, 200 when updated; 409
        ``order_locked`` when it would change what the order's cases or refunds rest on, 409
        ``payment_taken`` when its ``payment.reference`` is another merchant's on the gateway
        account (the first order to name a payment there makes it its merchant's)."""
        view, created = await services.cases.put_order(principal_of(request), order_id, data)
        return Response(view, status_code=201 if created else 200)

    @get("/orders/{order_id:str}", operation_id="getOrder", opt={"customer": True})
    async def get_order(self, request: Request[Any, Any, Any], services: Services, order_id: PathId) -> OrderView:
        """The order with each line's returnable quantity and the order's refundable amount."""
        return await services.cases.get_order(principal_of(request), order_id)

    @post("/cases/preview", operation_id="previewCase", opt={"customer": True}, status_code=200)
    async def preview_case(self, request: Request[Any, Any, Any], services: Services, data: CaseIn) -> QuoteView:
        """The decision and money a case would get. Nothing is stored."""
        return await services.cases.preview(principal_of(request), data)

    @post("/cases", operation_id="openCase", opt={"customer": True})
    async def open_case(
        self,
        request: Request[Any, Any, Any],
        services: Services,
        data: CaseIn,
        idempotency_key: Annotated[str | None, HeaderParameter(name="Idempotency-Key", max_length=255, required=False)] = None,
    ) -> Response[CaseView]:
        """Open a case. The same Idempotency-Key with the same body answers the same case."""
        view, replayed = await services.cases.open_case(principal_of(request), data, idempotency_key)
        headers = {"Idempotent-Replayed": "true"} if replayed else {}
        return Response(view, status_code=201, headers=headers)

    @get("/cases/{case_id:str}", operation_id="getCase", opt={"customer": True})
    async def get_case(self, request: Request[Any, Any, Any], services: Services, case_id: PathId) -> CaseView:
        return await services.cases.get_case(principal_of(request), case_id, Audience.STOREFRONT)

    @get("/cases", operation_id="listCases", opt={"customer": True})
    async def list_cases(
        self,
        request: Request[Any, Any, Any],
        services: Services,
        order_id: str | None = None,
        customer_id: str | None = None,
        case_state: Annotated[CaseState | None, QueryParameter(name="state", required=False)] = None,
        limit: Limit = 20,
        cursor: str | None = None,
    ) -> CaseList:
        """Cases, newest first."""
        filters = CaseFilter(order_id=order_id, customer_id=customer_id, state=case_state)
        return await services.cases.list_cases(
            principal_of(request), filters, Audience.STOREFRONT, sort="created", limit=limit, cursor=cursor
        )

    @post("/cases/{case_id:str}/return-shipment", operation_id="reportReturnShipment", opt={"customer": True}, status_code=200)
    async def return_shipment(
        self,
        request: Request[Any, Any, Any],
        services: Services,
        case_id: PathId,
        data: ShipmentIn,
        expected_version: frozenset[int] | None,
    ) -> CaseView:
        """The customer shipped the item back."""
        return await services.cases.report_return_shipment(principal_of(request), case_id, expected_version, data)

    @post("/cases/{case_id:str}/info", operation_id="provideInfo", opt={"customer": True}, status_code=200)
    async def provide_info(
        self,
        request: Request[Any, Any, Any],
        services: Services,
        case_id: PathId,
        data: ProvideInfoIn,
        expected_version: frozenset[int] | None,
    ) -> CaseView:
        """The customer's answer to an agent's request for information: back to review."""
        return await services.cases.provide_info(principal_of(request), case_id, expected_version, data)

    @post("/cases/{case_id:str}/quote/accept", operation_id="acceptQuote", opt={"customer": True}, status_code=200)
    async def accept_quote(
        self, request: Request[Any, Any, Any], services: Services, case_id: PathId, expected_version: frozenset[int] | None
    ) -> CaseView:
        """The customer accepts a paid repair's quote: the repair goes ahead."""
        return await services.cases.answer_quote(principal_of(request), case_id, expected_version, accept=True)

    @post("/cases/{case_id:str}/quote/decline", operation_id="declineQuote", opt={"customer": True}, status_code=200)
    async def decline_quote(
        self, request: Request[Any, Any, Any], services: Services, case_id: PathId, expected_version: frozenset[int] | None
    ) -> CaseView:
        """The customer declines: the item goes back unrepaired."""
        return await services.cases.answer_quote(principal_of(request), case_id, expected_version, accept=False)

    @post("/cases/{case_id:str}/survey", operation_id="submitSurvey", opt={"customer": True}, status_code=200)
    async def survey(
        self,
        request: Request[Any, Any, Any],
        services: Services,
        case_id: PathId,
        data: SurveyIn,
        expected_version: frozenset[int] | None,
    ) -> CaseView:
        """The customer's rating, once, after the case is closed."""
        return await services.cases.survey(principal_of(request), case_id, expected_version, data)

    @get("/customers/{customer_id:str}/store-credit", operation_id="getStoreCredit")
    async def store_credit(self, request: Request[Any, Any, Any], services: Services, customer_id: PathId) -> StoreCreditView:
        """The customer's store credit: balance per currency and every grant."""
        return await services.cases.store_credit(principal_of(request), customer_id)

    @post("/cases/{case_id:str}/cancel", operation_id="cancelCase", opt={"customer": True}, status_code=200)
    async def cancel_case(
        self, request: Request[Any, Any, Any], services: Services, case_id: PathId, expected_version: frozenset[int] | None
    ) -> CaseView:
        """The customer withdraws the case (only before the item is received)."""
        return await services.cases.cancel(principal_of(request), case_id, expected_version)
