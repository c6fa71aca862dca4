"""A typed client generated from the committed OpenAPI document (openapi-python-client, with
``openapi/client-config.yaml``) walks every flow against the live service: if the document
says anything the service does not do, or leaves out what a client needs to send or read,
the generated code fails here, as it would for a storefront developer."""

from __future__ import annotations

import importlib
import io
import secrets
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from PIL import Image

from tests.support.images import encode, photo
from tests.support.tenants import Tenant, order_body

ROOT = Path(__file__).resolve().parents[2]
DOCUMENT = ROOT / "openapi" / "openapi.json"
CONFIG = ROOT / "openapi" / "client-config.yaml"
PACKAGE = "returns_client"
SHIP = {"carrier": "dhl", "tracking_number": "JD0001"}


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, ModuleType]]:
    """The client, generated once for the module (offline: the generator needs only itself) and
    imported from a temporary folder; its output must carry no warning."""
    folder = tmp_path_factory.mktemp("client")
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "openapi_python_client",
            "generate",
            "--path",
            str(DOCUMENT),
            "--config",
            str(CONFIG),
            "--meta",
            "none",
            "--output-path",
            str(folder / PACKAGE),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=folder,
        check=False,
    )
    output = run.stdout + run.stderr
    assert run.returncode == 0, output
    assert "Warning" not in output and "Error" not in output, output
    sys.path.insert(0, str(folder))
    try:
        names = [
            "client",
            "models",
            "types",
            *(
                f"api.{tag}.{name.stem}"
                for tag in ("storefront", "agent", "photos", "policy")
                for name in (folder / PACKAGE / "api" / tag).glob("[a-z]*.py")
            ),
        ]
        yield {name: importlib.import_module(f"{PACKAGE}.{name}") for name in names}
    finally:
        sys.path.remove(str(folder))
        for name in [name for name in sys.modules if name == PACKAGE or name.startswith(PACKAGE + ".")]:
            del sys.modules[name]


class Walker:
    """Calls an operation of the generated client by its module name, as one role, and checks the
    status; returns the parsed answer (a generated model) and the response."""

    def __init__(self, modules: dict[str, ModuleType], tenant: Tenant) -> None:
        self.modules = modules
        self.models = modules["models"]
        self.clients = {
            role: modules["client"].AuthenticatedClient(base_url=tenant.base_url, token=key, raise_on_unexpected_status=True)
            for role, key in tenant.keys.items()
        }

    def call(self, role: str, operation: str, *args: Any, expect: int = 200, **kwargs: Any) -> tuple[Any, Any]:
        tag = {"storefront": "storefront", "agent": "agent", "admin": "policy"}[role]
        module = self.modules.get(f"api.{tag}.{operation}") or self.modules[f"api.photos.{operation}"]
        response = module.sync_detailed(*args, client=self.clients[role], **kwargs)
        assert response.status_code == expect, (operation, response.status_code, response.content[:500])
        return response.parsed, response

    def model(self, name: str, data: dict[str, Any]) -> Any:
        return getattr(self.models, name).from_dict(data)

    def act(self, case_id: str, action: str, body: dict[str, Any], model: str, **kwargs: Any) -> Any:
        """An agent's action on a case, answered with the case."""
        case, _ = self.call("agent", action, case_id, body=self.model(model, body), **kwargs)
        assert isinstance(case, self.models.CaseView)
        return case


@pytest.fixture
def walker(generated: dict[str, ModuleType], tenant: Tenant) -> Iterator[Walker]:
    walker = Walker(generated, tenant)
    yield walker
    for client in walker.clients.values():
        client.get_httpx_client().close()


def _order(walker: Walker, **changes: Any) -> str:
    """An order put twice through the client: 201 when new, 200 when the same again."""
    order_id = f"o_{secrets.token_hex(4)}"
    body = walker.model("OrderIn", order_body(**changes))
    created, _ = walker.call("storefront", "put_order", order_id, body=body, expect=201)
    updated, _ = walker.call("storefront", "put_order", order_id, body=body, expect=200)
    assert isinstance(created, walker.models.OrderView) and isinstance(updated, walker.models.OrderView)
    assert created.refundable_amount == updated.refundable_amount == 5993
    return order_id


def _open(walker: Walker, order_id: str, **body: Any) -> Any:
    case, _ = walker.call("storefront", "open_case", body=walker.model("CaseIn", {"order_id": order_id, **body}), expect=201)
    assert isinstance(case, walker.models.CaseView)
    return case


def test_a_return_with_photo_evidence_approved_received_and_refunded(walker: Walker) -> None:
    order_id = _order(walker)
    case = _open(
        walker,
        order_id,
        type="return",
        resolution="refund",
        items=[{"line_id": "l1", "quantity": 1, "reason": "defective", "note": "seam torn"}],
    )
    assert case.state == walker.models.CaseState.PENDING_REVIEW and case.decision.requires_photos

    original = photo(seed=5)
    form = walker.model("UploadPhotoBody", {"file": encode(original, "PNG")})
    form.file.file_name, form.file.mime_type = "seam.png", "image/png"
    uploaded, _ = walker.call("storefront", "upload_photo", case.id, body=form, expect=201)
    assert isinstance(uploaded, walker.models.PhotoView) and uploaded.content_type == "image/png"
    image, response = walker.call("agent", "get_photo", case.id, uploaded.id)
    assert isinstance(image, walker.modules["types"].File) and response.headers["content-type"] == "image/png"
    served = Image.open(io.BytesIO(image.payload.read()))
    assert served.size == original.size and served.convert("RGB").tobytes() == original.tobytes()

    seen, response = walker.call("agent", "agent_get_case", case.id)
    assert response.headers["etag"] == f'"{seen.version}"'
    approved = walker.act(case.id, "approve_case", {}, "ApproveIn", if_match=response.headers["etag"])
    assert approved.state == walker.models.CaseState.APPROVED and approved.version > seen.version

    shipped, response = walker.call("storefront", "report_return_shipment", case.id, body=walker.model("ShipmentIn", SHIP))
    assert shipped.state == walker.models.CaseState.IN_TRANSIT and response.headers["etag"] == f'"{shipped.version}"'
    received = walker.act(
        case.id, "receive_items", {"items": [{"line_id": "l1", "quantity": 1, "condition": "defective"}]}, "ReceiveIn"
    )
    assert received.money.refund_total > 0
    assert [(refund.amount, refund.currency) for refund in received.refunds] == [(received.money.refund_total, "EUR")]


def test_a_stale_if_match_is_answered_412_as_a_problem(walker: Walker) -> None:
    case = _open(
        walker,
        _order(walker),
        type="return",
        resolution="refund",
        items=[{"line_id": "l1", "quantity": 1, "reason": "other", "note": "why"}],
    )
    stale = f'"{case.version}"'
    walker.act(case.id, "add_note", {"text": "first"}, "NoteIn", if_match=stale)
    problem, response = walker.call(
        "agent", "add_note", case.id, body=walker.model("NoteIn", {"text": "second"}), if_match=stale, expect=412
    )
    assert isinstance(problem, walker.models.Problem) and problem.code == "version_conflict"
    assert response.headers["content-type"] == "application/problem+json"
    after, _ = walker.call("agent", "agent_get_case", case.id)
    assert [note.text for note in after.notes] == ["first"]


def test_an_exchange(walker: Walker) -> None:
    case = _open(
        walker,
        _order(walker),
        type="exchange",
        items=[{"line_id": "l1", "quantity": 1, "reason": "wrong_size", "replacement_sku": "TSHIRT-L"}],
    )
    assert case.state == walker.models.CaseState.APPROVED
    walker.act(case.id, "receive_items", {"items": [{"line_id": "l1", "quantity": 1, "condition": "as_new"}]}, "ReceiveIn")
    shipped = walker.act(case.id, "ship_replacement", SHIP, "ShipmentIn")
    assert shipped.state == walker.models.CaseState.REPLACEMENT_SHIPPED
    assert walker.act(case.id, "close_case", {}, "CloseIn").state == walker.models.CaseState.CLOSED


def test_a_paid_repair_and_an_in_warranty_one(walker: Walker) -> None:
    states = []
    for days, in_warranty in ((400, False), (100, True)):
        delivered = datetime.now(UTC) - timedelta(days=days)
        order_id = _order(walker, placed_at=(delivered - timedelta(days=2)).isoformat(), delivered_at=delivered.isoformat())
        case = _open(
            walker,
            order_id,
            type="repair",
            issue_description="zip broken",
            items=[{"line_id": "l1", "quantity": 1, "reason": "defective"}],
        )
        walker.act(
            case.id, "approve_case", {"overrides": [{"rule": "photo_evidence", "reason": "seen at the counter"}]}, "ApproveIn"
        )
        walker.act(case.id, "receive_items", {"items": [{"line_id": "l1", "quantity": 1, "condition": "defective"}]}, "ReceiveIn")
        diagnosis = {"finding": "zip teeth", "in_warranty": in_warranty, **({} if in_warranty else {"quote_amount": 4500})}
        diagnosed = walker.act(case.id, "diagnose_repair", diagnosis, "DiagnoseIn")
        if not in_warranty:
            assert diagnosed.state == walker.models.CaseState.QUOTE_PENDING
            accepted, _ = walker.call("storefront", "accept_quote", case.id)
            assert accepted.money.difference_due == 4500
        walker.act(case.id, "complete_repair", {"note": "new zip"}, "CompleteRepairIn")
        states.append(walker.act(case.id, "ship_back", SHIP, "ShipmentIn").state)
    assert states == [walker.models.CaseState.SHIPPED_BACK] * 2


def test_a_toml_policy_put_and_read_back(walker: Walker) -> None:
    toml = b"[rules.return_window]\ndays = 21\n"
    document = walker.modules["types"].File(payload=io.BytesIO(toml), file_name="policy.toml", mime_type="application/toml")
    installed, _ = walker.call("admin", "put_policy", body=document)
    read, _ = walker.call("admin", "get_policy")
    assert isinstance(read, walker.models.PolicyView) and read.version == installed.version and not read.is_default
    assert read.document.to_dict()["rules"]["return_window"]["days"] == 21
