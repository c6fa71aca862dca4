"""Agent endpoints (role agent): the work queue and the decisions on a case; the policy."""

from __future__ import annotations

import tomllib
from typing import Annotated, Any, Literal

import msgspec
from litestar import Controller, Request, get, post, put
from litestar.di import Provide
from litestar.openapi.spec import OpenAPIFormat, OpenAPIType, RequestBody, Schema
from litestar.params import Parameter, QueryParameter

from domain.cases import CaseState, CaseType, Reason
from domain.errors import GatewayAccountReadOnly, InvalidRequest
from service.actions import Audience
from service.api.auth import roles
from service.api.bodies import (
    check_json_depth,
    check_toml_depth,
    check_value_depth,
    too_deep,
)
from service.api.http import PathId, contents, documented, expected_version, principal_of
from service.api.storefront import Limit
from service.cases import actor_of
from service.container import Services
from service.dto import (
    ApproveIn,
    AssignIn,
    CaseCounts,
    CaseList,
    CaseView,
    CloseIn,
    CompleteRepairIn,
    CustomerMailList,
    DeliveryList,
    DiagnoseIn,
    EventList,
    GatewayAccountIn,
    MailSettingsIn,
    MailSettingsView,
    MeView,
    NoteIn,
    OrderView,
    PolicyView,
    ReceiveIn,
    RefundView,
    RejectIn,
    RequestInfoIn,
    ShipmentIn,
    WebhookEndpointIn,
    WebhookEndpointList,
    WebhookEndpointView,
)
from service.ports import CaseFilter, NotFound
from service.views import refund_view


class AgentController(Controller):
    path = "/admin/v1/cases"
    guards = [roles("agent")]
    tags = ["agent"]
    # the actions that take ``expected_version`` read (and so declare) If-Match
    dependencies = {"expected_version": Provide(expected_version, sync_to_thread=False)}

    @get("/", operation_id="agentQueue")
    async def queue(
        self,
        request: Request[Any, Any, Any],
        services: Services,
        case_state: Annotated[CaseState | None, QueryParameter(name="state", required=False)] = None,
        type: CaseType | None = None,
        assignee: str | None = None,
        reason: Reason | None = None,
        flagged: bool | None = None,
        q: Annotated[str | None, Parameter(max_length=200)] = None,
        attention: bool | None = None,
        delivered: bool | None = None,
        sort: Literal["sla_due_at", "created_at"] = "sla_due_at",
        limit: Limit = 20,
        cursor: str | None = None,
    ) -> CaseList:
        """The work queue, soonest SLA first by default. ``q`` finds a case by its id, its order id,
        its customer's id or e-mail (exact, e-mail in any case); ``attention=true`` keeps the cases
        whose refund failed, was canceled or waits for the customer and was not retried yet (the
        console lists them first); ``delivered=true`` the cases whose parcel the carrier delivered
        to the warehouse and nobody received yet (the receive queue)."""
        filters = CaseFilter(
            state=case_state,
            type=type,
            assignee=assignee,
            reason=reason,
            flagged=flagged,
            q=q,
            attention=attention,
            delivered=delivered,
        )
        sort_key = "sla_due_at" if sort == "sla_due_at" else "created"
        return await services.cases.list_cases(
            principal_of(request), filters, Audience.AGENT, sort=sort_key, limit=limit, cursor=cursor
        )

    @get("/{case_id:str}", operation_id="agentGetCase")
    async def get_case(self, request: Request[Any, Any, Any], services: Services, case_id: PathId) -> CaseView:
        return await services.cases.get_case(principal_of(request), case_id, Audience.AGENT)

    @get("/{case_id:str}/events", operation_id="agentCaseEvents")
    async def events(self, request: Request[Any, Any, Any], services: Services, case_id: PathId) -> EventList:
        """The case's full audit trail: who, with which role, when, from → to, and why."""
        return await services.cases.events(principal_of(request), case_id)

    @get("/{case_id:str}/mails", operation_id="agentCaseMails")
    async def mails(self, request: Request[Any, Any, Any], services: Services, case_id: PathId) -> CustomerMailList:
        """The e-mails sent to the customer about the case (added): did it arrive, and if not, why."""
        return await services.mailer.case_mails(principal_of(request).merchant_id, case_id)

    @post("/{case_id:str}/approve", operation_id="approveCase", status_code=200)
    async def approve(
        self,
        request: Request[Any, Any, Any],
        services: Services,
        case_id: PathId,
        data: ApproveIn,
        expected_version: frozenset[int] | None,
    ) -> CaseView:
        """Approve; overriding a rule's outcome needs a written reason and is audited."""
        return await services.cases.approve(principal_of(request), case_id, expected_version, data)

    @post("/{case_id:str}/reject", operation_id="rejectCase", status_code=200)
    async def reject(
        self,
        request: Request[Any, Any, Any],
        services: Services,
        case_id: PathId,
        data: RejectIn,
        expected_version: frozenset[int] | None,
    ) -> CaseView:
        return await services.cases.reject(principal_of(request), case_id, expected_version, data)

    @post("/{case_id:str}/receive", operation_id="receiveItems", status_code=200)
    async def receive(
        self,
        request: Request[Any, Any, Any],
        services: Services,
        case_id: PathId,
        data: ReceiveIn,
        expected_version: frozenset[int] | None,
    ) -> CaseView:
        """Record what arrived, per item with its condition; settles the money on what arrived."""
        return await services.cases.receive(principal_of(request), case_id, expected_version, data)

    @post("/{case_id:str}/ship-replacement", operation_id="shipReplacement", status_code=200)
    async def ship_replacement(
        self,
        request: Request[Any, Any, Any],
        services: Services,
        case_id: PathId,
        data: ShipmentIn,
        expected_version: frozenset[int] | None,
    ) -> CaseView:
        """An exchange's replacement is on its way to the customer."""
        return await services.cases.ship_replacement(principal_of(request), case_id, expected_version, data)

    @post("/{case_id:str}/ship-back", operation_id="shipBack", status_code=200)
    async def ship_back(
        self,
        request: Request[Any, Any, Any],
        services: Services,
        case_id: PathId,
        data: ShipmentIn,
        expected_version: frozenset[int] | None,
    ) -> CaseView:
        """A repaired (or, quote declined, unrepaired) item goes back to the customer."""
        return await services.cases.ship_back(principal_of(request), case_id, expected_version, data)

    @post("/{case_id:str}/repair/diagnose", operation_id="diagnoseRepair", status_code=200)
    async def diagnose(
        self,
        request: Request[Any, Any, Any],
        services: Services,
        case_id: PathId,
        data: DiagnoseIn,
        expected_version: frozenset[int] | None,
    ) -> CaseView:
        """In warranty → repairing; out of warranty → a quote for the customer."""
        return await services.cases.diagnose(principal_of(request), case_id, expected_version, data)

    @post("/{case_id:str}/repair/complete", operation_id="completeRepair", status_code=200)
    async def complete_repair(
        self,
        request: Request[Any, Any, Any],
        services: Services,
        case_id: PathId,
        data: CompleteRepairIn,
        expected_version: frozenset[int] | None,
    ) -> CaseView:
        return await services.cases.complete_repair(principal_of(request), case_id, expected_version, data)

    @post("/{case_id:str}/assign", operation_id="assignCase", status_code=200)
    async def assign(
        self,
        request: Request[Any, Any, Any],
        services: Services,
        case_id: PathId,
        data: AssignIn,
        expected_version: frozenset[int] | None,
    ) -> CaseView:
        return await services.cases.assign(principal_of(request), case_id, expected_version, data)

    @post("/{case_id:str}/notes", operation_id="addNote", status_code=200)
    async def add_note(
        self,
        request: Request[Any, Any, Any],
        services: Services,
        case_id: PathId,
        data: NoteIn,
        expected_version: frozenset[int] | None,
    ) -> CaseView:
        """An internal note for other agents; customers never see it."""
        return await services.cases.add_note(principal_of(request), case_id, expected_version, data)

    @post("/{case_id:str}/close", operation_id="closeCase", status_code=200)
    async def close(
        self,
        request: Request[Any, Any, Any],
        services: Services,
        case_id: PathId,
        data: CloseIn,
        expected_version: frozenset[int] | None,
    ) -> CaseView:
        return await services.cases.close(principal_of(request), case_id, expected_version, data)

    @post("/{case_id:str}/request-info", operation_id="requestInfo", status_code=200)
    async def request_info(
        self,
        request: Request[Any, Any, Any],
        services: Services,
        case_id: PathId,
        data: RequestInfoIn,
        expected_version: frozenset[int] | None,
    ) -> CaseView:
        """Send the case back to the customer for more photos or details."""
        return await services.cases.request_info(principal_of(request), case_id, expected_version, data)


class AgentOrderController(Controller):
    path = "/admin/v1/orders"
    guards = [roles("agent")]
    tags = ["agent"]

    @get("/{order_id:str}", operation_id="agentGetOrder")
    async def get_order(self, request: Request[Any, Any, Any], services: Services, order_id: PathId) -> OrderView:
        """The order behind a case, for the agent: its lines, what is still returnable and refundable."""
        return await services.cases.get_order(principal_of(request), order_id)


class CaseCountsController(Controller):
    path = "/admin/v1/case-counts"
    guards = [roles("agent")]
    tags = ["agent"]

    @get("/", operation_id="caseCounts")
    async def counts(self, request: Request[Any, Any, Any], services: Services) -> CaseCounts:
        """How many of the merchant's cases are in each state (the console's queue header)."""
        return await services.cases.counts(principal_of(request))


class MeController(Controller):
    path = "/admin/v1/me"
    guards = [roles("agent")]
    tags = ["agent"]

    @get("/", operation_id="whoAmI")
    async def me(self, request: Request[Any, Any, Any]) -> MeView:
        """The calling key: its id is what ``assign`` and the audit trail name (the console's
        "assign to me"), its role what it may do."""
        principal = principal_of(request)
        return MeView(key_id=principal.key_id, role=principal.role)


class RefundController(Controller):
    path = "/admin/v1/refunds"
    guards = [roles("agent")]
    tags = ["agent"]

    @post("/{refund_id:str}/retry", operation_id="retryRefund", status_code=201)
    async def retry(self, request: Request[Any, Any, Any], services: Services, refund_id: PathId) -> RefundView:
        """Pay a failed refund again, as a new refund with the next attempt number."""
        principal = principal_of(request)
        refund = await services.refunds.retry(principal.merchant_id, refund_id, actor_of(principal))
        return refund_view(refund)


class WebhookController(Controller):
    """The admin's settings for talking to the outside: webhooks to the storefront, the gateway account."""

    path = "/admin/v1"
    guards = [roles("admin")]
    tags = ["settings"]

    @get("/webhook-endpoints", operation_id="listWebhookEndpoints")
    async def endpoints(self, request: Request[Any, Any, Any], services: Services) -> WebhookEndpointList:
        return await services.notifications.endpoints(principal_of(request).merchant_id)

    @put("/webhook-endpoints", operation_id="putWebhookEndpoint", status_code=200)
    async def put_endpoint(
        self, request: Request[Any, Any, Any], services: Services, data: WebhookEndpointIn
    ) -> WebhookEndpointView:
        """Where the storefront hears of case and refund events; the secret is shown only here."""
        return await services.notifications.put_endpoint(principal_of(request).merchant_id, data)

    @post("/webhook-endpoints/rotate-secret", operation_id="rotateWebhookSecret", status_code=200)
    async def rotate_secret(self, request: Request[Any, Any, Any], services: Services) -> WebhookEndpointView:
        """A new signing secret, shown only here. The one it replaces keeps signing deliveries for
        a grace period (24 hours by default): until ``previous_secret_expires_at`` each delivery
        carries both signatures, ``Returns-Signature: t=…,v1=<new>,v1=<previous>``."""
        return await services.notifications.rotate_secret(principal_of(request).merchant_id)

    @get("/mail-settings", operation_id="getMailSettings")
    async def mail_settings(self, request: Request[Any, Any, Any], services: Services) -> MailSettingsView:
        """How the customer e-mail reads (defaults until set)."""
        return await services.mailer.settings(principal_of(request).merchant_id)

    @put("/mail-settings", operation_id="putMailSettings", status_code=200)
    async def put_mail_settings(
        self, request: Request[Any, Any, Any], services: Services, data: MailSettingsIn
    ) -> MailSettingsView:
        """The customer e-mail's sender name and reply-to, the language of customers who gave
        none (``en`` or ``zh-CN``), and the address returned items go to (in the approval mail).
        Replaces the whole settings: a field left out goes back to its default."""
        return await services.mailer.put_settings(principal_of(request).merchant_id, data)

    @get("/gateway-account", operation_id="getGatewayAccount")
    async def get_gateway_account(self, request: Request[Any, Any, Any], services: Services) -> GatewayAccountIn:
        """The merchant's gateway account refunds are made on; null for the platform's own."""
        async with services.db.reading() as repos:
            return GatewayAccountIn(account=await repos.gateway_account(principal_of(request).merchant_id))

    @put("/gateway-account", operation_id="putGatewayAccount", status_code=200)
    async def put_gateway_account(
        self, request: Request[Any, Any, Any], services: Services, data: GatewayAccountIn
    ) -> GatewayAccountIn:
        """The merchant's Stripe Connect account (``acct_…``) refunds are made on; null for none.
        An account bound to another merchant answers 409 ``gateway_account_taken``. Where the
        operator binds accounts (``RETURNS_GATEWAY_ACCOUNT_READ_ONLY=1``), this answers 403
        ``gateway_account_read_only``."""
        if services.settings.gateway_account_read_only:
            raise GatewayAccountReadOnly("gateway accounts are bound by the operator (returns gateway-account set)")
        await services.refunds.bind_account(principal_of(request).merchant_id, data.account)
        return data

    @get("/webhook-deliveries", operation_id="listWebhookDeliveries")
    async def deliveries(
        self, request: Request[Any, Any, Any], services: Services, limit: Limit = 50, cursor: str | None = None
    ) -> DeliveryList:
        """Every delivery attempt, newest first."""
        return await services.notifications.deliveries(principal_of(request).merchant_id, limit, cursor)


# What ``_parse_policy`` reads: TOML under its media types, JSON under any other. A body is
# needed (an empty one is a 422 like any bad policy), but it is declared optional: with two media
# types, openapi-python-client (0.29, its issue #1451) generates code for a required body that
# does not import.
POLICY_BODY = RequestBody(
    content=contents(
        {
            "application/json": Schema(type=OpenAPIType.OBJECT, description='The policy document, e.g. {"rules": {...}}'),
            "application/toml": Schema(
                type=OpenAPIType.STRING, format=OpenAPIFormat.BINARY, description="The policy document as TOML (UTF-8)"
            ),
        }
    ),
    description="The new policy, as JSON or TOML (needed: an empty body answers 422 `validation_error`)",
    required=False,
)


class PolicyController(Controller):
    path = "/admin/v1/policy"
    tags = ["policy"]

    @get("/", operation_id="getPolicy", guards=[roles("agent")])
    async def get_policy(
        self,
        request: Request[Any, Any, Any],
        services: Services,
        version: Annotated[int | None, Parameter(ge=0, le=2**31 - 1, required=False)] = None,
    ) -> PolicyView:
        """The policy in force (or ``?version=N``): agents may read it to explain a decision."""
        merchant_id = principal_of(request).merchant_id
        async with services.db.transaction() as repos:
            view = await services.policies.view(repos, merchant_id, version)
        if view is None:
            raise NotFound(f"no policy version {version}")
        return view

    @put(
        "/",
        operation_id="putPolicy",
        guards=[roles("admin")],
        status_code=200,
        operation_class=documented(POLICY_BODY),
    )
    async def put_policy(self, request: Request[Any, Any, Any], services: Services) -> PolicyView:
        """Install a new version (JSON or TOML body). An invalid one changes nothing."""
        document = _parse_policy(await request.body(), request.headers.get("content-type", ""))
        principal = principal_of(request)
        async with services.db.transaction() as repos:
            return await services.policies.install(
                repos, principal.merchant_id, document, services.cases.clock(), principal.key_id
            )


def _parse_policy(body: bytes, content_type: str) -> dict[str, Any]:
    # the media type alone, in any case: ``Application/TOML`` is TOML, ``application/json; x=toml`` is not
    is_toml = content_type.split(";", 1)[0].strip().lower() in ("application/toml", "text/toml")
    if is_toml:
        check_toml_depth(body)
    else:
        check_json_depth(body)
    try:
        document = tomllib.loads(body.decode()) if is_toml else msgspec.json.decode(body)
    except (UnicodeDecodeError, tomllib.TOMLDecodeError, msgspec.DecodeError) as exc:
        raise InvalidRequest("the policy is neither valid JSON nor TOML", [{"field": "body", "message": str(exc)}]) from exc
    except RecursionError as exc:  # the depth check above should have refused it already
        raise too_deep() from exc
    if not isinstance(document, dict):
        raise InvalidRequest("a policy is an object", [{"field": "body", "message": 'expected {"rules": {...}}'}])
    check_value_depth(document)  # TOML's dotted keys nest tables without brackets
    return document
