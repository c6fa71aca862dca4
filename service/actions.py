"""What a caller may do next with a case, named as the endpoints that do it.

The state machine's actions are the domain's words; a client needs the API's. This is the one
table from one to the other, per audience: the storefront's actions are path suffixes under
``/v1/cases/{id}/``, the agent's under ``/admin/v1/cases/{id}/``. A state-machine action with no
endpoint for that audience (``auto_approve``, ``start_refund``, ``refund_succeeded``…: the
system's) never appears. A few endpoints change no state and are valid by other rules: photos
until the case is over, the survey once a closed case has none, an agent's notes and assignment
always, a repair's completion while repairing."""

from __future__ import annotations

from enum import StrEnum

from domain.cases import TERMINAL_STATES, Case, CaseAction, CaseState
from domain.statemachine import allowed_actions

_A = CaseAction


class Audience(StrEnum):
    """Who the case view is for: the API it was read through, not the key's role (an admin key
    reading ``/v1/cases`` sees what the storefront sees)."""

    STOREFRONT = "storefront"
    AGENT = "agent"


ENDPOINTS: dict[Audience, dict[CaseAction, str]] = {
    Audience.STOREFRONT: {
        _A.CANCEL: "cancel",
        _A.SHIP: "return-shipment",
        _A.PROVIDE_INFO: "info",
        _A.ACCEPT_QUOTE: "quote/accept",
        _A.DECLINE_QUOTE: "quote/decline",
    },
    Audience.AGENT: {
        _A.APPROVE: "approve",
        _A.REJECT: "reject",
        _A.REQUEST_INFO: "request-info",
        _A.RECEIVE: "receive",
        _A.SHIP_REPLACEMENT: "ship-replacement",
        _A.SHIP_BACK: "ship-back",
        _A.REPAIR_IN_WARRANTY: "repair/diagnose",
        _A.QUOTE: "repair/diagnose",
        _A.CLOSE: "close",
    },
}


def endpoint_actions(case: Case, audience: Audience, *, label_held: bool = False) -> list[str]:
    """The path suffixes ``audience`` may POST to on ``case`` now, each once, in table order. An
    agent decides on a ``held`` label: buy it while the case waits for the item, or decline it."""
    names = [ENDPOINTS[audience][a] for a in allowed_actions(case.table, case.state) if a in ENDPOINTS[audience]]
    if audience == Audience.STOREFRONT:
        names += ["photos"] if case.state not in TERMINAL_STATES else []
        names += ["survey"] if case.state == CaseState.CLOSED and case.survey is None else []
    else:
        names += ["repair/complete"] if case.state == CaseState.REPAIRING else []
        if label_held:
            names += ["label/buy", "label/decline"] if case.state == CaseState.APPROVED else ["label/decline"]
        names += ["assign", "notes"]
    return list(dict.fromkeys(names))
