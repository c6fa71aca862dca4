"""Return labels over HTTP: the label's file for the storefront, the customer's portal and the
console; an agent's decision on a label held over its ceiling; the merchant's shipping settings;
the carrier's tracking webhook."""

from __future__ import annotations

from typing import Any, Literal

import structlog
from litestar import Controller, Request, Response, get, post, put
from litestar.di import Provide

from service.api.auth import roles
from service.api.http import BINARY, PathId, documented, expected_version, principal_of
from service.api.problems import problem
from service.container import Services
from service.dto import CaseView, LabelDecisionIn, ShippingSettingsIn
from service.ports import InvalidWebhook

log = structlog.get_logger()

LabelFormat = Literal["pdf", "png", "qr"]
LABEL_ANSWER = documented(answers={"200": {"application/pdf": BINARY, "image/png": BINARY}})


async def _label(request: Request[Any, Any, Any], services: Services, case_id: str, fmt: LabelFormat) -> Response[bytes]:
    data, media_type = await services.labels.label_file(principal_of(request), case_id, fmt)
    name = f"{case_id}-label{'-qr' if fmt == 'qr' else ''}.{'pdf' if fmt == 'pdf' else 'png'}"
    return Response(
        data,
        media_type=media_type,
        headers={"Cache-Control": "private, max-age=3600", "Content-Disposition": f'inline; filename="{name}"'},
    )


class StorefrontLabelController(Controller):
    path = "/v1/cases/{case_id:str}/label"
    tags = ("labels",)

    @get(
        "/",
        operation_id="getLabel",
        guards=[roles("storefront")],
        opt={"customer": True},
        media_type="application/pdf",
        operation_class=LABEL_ANSWER,
    )
    async def label(
        self, request: Request[Any, Any, Any], services: Services, case_id: PathId, format: LabelFormat = "pdf"
    ) -> Response[bytes]:
        """The case's return label to print (``pdf``, the default, or ``png``), or its QR code to
        show at a drop-off point (``qr``, a PNG). 404 ``label_not_ready`` while none is bought."""
        return await _label(request, services, case_id, format)


class AgentLabelController(Controller):
    path = "/admin/v1/cases/{case_id:str}/label"
    guards = (roles("agent"),)
    tags = ("labels",)
    # the decisions read (and so declare) If-Match, as the case's other actions
    dependencies = {"expected_version": Provide(expected_version, sync_to_thread=False)}

    @get("/", operation_id="agentGetLabel", media_type="application/pdf", operation_class=LABEL_ANSWER)
    async def label(
        self, request: Request[Any, Any, Any], services: Services, case_id: PathId, format: LabelFormat = "pdf"
    ) -> Response[bytes]:
        """The case's return label, as the storefront gets it."""
        return await _label(request, services, case_id, format)

    @post("/buy", operation_id="buyHeldLabel", status_code=200)
    async def buy(
        self,
        request: Request[Any, Any, Any],
        services: Services,
        case_id: PathId,
        data: LabelDecisionIn,
        expected_version: frozenset[int] | None,
    ) -> CaseView:
        """Buy a ``held`` label anyway (its rate is over the merchant's ceiling): the worker buys
        the rate held, at no more than it cost then. Audited (``label_approved``); 409
        ``label_not_held`` when the label waits for no decision (one decision per hold),
        ``invalid_transition`` when the case no longer waits for its item."""
        return await services.labels.decide(principal_of(request), case_id, expected_version, True, data)

    @post("/decline", operation_id="declineHeldLabel", status_code=200)
    async def decline(
        self,
        request: Request[Any, Any, Any],
        services: Services,
        case_id: PathId,
        data: LabelDecisionIn,
        expected_version: frozenset[int] | None,
    ) -> CaseView:
        """Buy no label for this case (``cancelled``): the customer ships the item themselves, as
        without a label. Audited (``label_declined``); 409 ``label_not_held`` as for ``buy``."""
        return await services.labels.decide(principal_of(request), case_id, expected_version, False, data)


class ShippingSettingsController(Controller):
    path = "/admin/v1/shipping-settings"
    tags = ("settings",)

    @get("/", operation_id="getShippingSettings", guards=[roles("agent")])
    async def settings(self, request: Request[Any, Any, Any], services: Services) -> ShippingSettingsIn:
        """The merchant's return shipping (defaults until set: no return address, so no labels)."""
        return await services.labels.settings(principal_of(request).merchant_id)

    @put("/", operation_id="putShippingSettings", guards=[roles("admin")], status_code=200)
    async def put_settings(
        self, request: Request[Any, Any, Any], services: Services, data: ShippingSettingsIn
    ) -> ShippingSettingsIn:
        """Who buys return labels, the address they go to, parcels per product category, the
        carriers and services allowed (the cheapest or the fastest of them is bought), and the most
        a label may cost before an agent must decide (``label_ceiling``). Replaces the whole
        settings. Labels already bought or pending keep what they were planned with."""
        return await services.labels.put_settings(principal_of(request).merchant_id, data)


@post("/webhooks/easypost", operation_id="easypostWebhook", tags=["webhooks"], status_code=200)
async def easypost_webhook(request: Request[Any, Any, Any], services: Services) -> Response[Any]:
    """EasyPost's tracker events, verified on the raw body. A new event repeating scans already
    known answers 200 (``duplicate``) and changes nothing; the same event sent again (a replayed
    request: EasyPost's signature has no timestamp) answers 400 ``replayed_event``, a bad signature
    400 ``invalid_signature`` (an unreadable signed body ``invalid_event``), and change nothing.
    The event's id is recorded after its scans are taken in, so a delivery that failed half way is
    taken when EasyPost sends it again. Where EasyPost is not the carrier, there is no such
    webhook: 404 ``not_found`` (not a 5xx, which EasyPost would keep retrying)."""
    webhook = services.carrier_webhook
    if webhook is None:
        return problem(404, "not_found", "no EasyPost webhook here: EasyPost is not this service's carrier")
    body = await request.body()
    try:
        events = webhook.verify(body, dict(request.headers), services.cases.clock())
    except InvalidWebhook as exc:
        log.warning("carrier_webhook_refused", code=exc.code, reason=str(exc))
        return problem(400, exc.code, str(exc))
    new = await services.tracking.ingest(events)  # a replay's scans are all known: nothing changes
    delivery = webhook.delivery_id(body)
    if delivery is not None and not await services.tracking.first_delivery(delivery):
        log.warning("carrier_webhook_replayed", delivery_id=delivery)
        return problem(400, "replayed_event", f"event {delivery} was taken in before: this request is a replay")
    return Response({"received": True, "duplicate": bool(events) and new == 0}, status_code=200)
