"""Log lines carry the request's context and never a secret or a customer's e-mail address."""

from __future__ import annotations

import io
import json
import sys

import structlog

from service.logging import configure_logging


def test_json_lines_are_redacted_and_carry_the_bound_context(monkeypatch) -> None:
    stream = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stream)
    configure_logging("json")
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(request_id="req-1", merchant_id="m_1")
    log = structlog.get_logger()
    log.info(
        "order_saved",
        email="jane@example.com",
        note="mail me at jane.doe@example.org please",
        authorization="Bearer rk_store_secret",
        api_key="rk_admin_x",
        count=3,
    )
    structlog.contextvars.clear_contextvars()
    line = json.loads(stream.getvalue().strip().splitlines()[-1])
    assert line["request_id"] == "req-1" and line["merchant_id"] == "m_1"
    assert line["email"] == "[redacted]" and line["authorization"] == "[redacted]" and line["api_key"] == "[redacted]"
    assert line["note"] == "mail me at [email] please"
    assert line["count"] == 3
    assert "example" not in stream.getvalue() and "rk_" not in stream.getvalue()
