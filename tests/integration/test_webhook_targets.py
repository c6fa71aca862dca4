"""With the defaults, neither the admin's endpoint nor a delivery may reach an internal address."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from adapters.postgres.database import PostgresDatabase
from adapters.webhook_sender import HttpWebhookSender
from domain.errors import InvalidRequest
from service.dto import WebhookEndpointIn
from service.notifications import Notifications
from service.ports import WebhookSendError


async def test_an_internal_endpoint_is_refused(db: PostgresDatabase) -> None:
    async with db.transaction() as repos:
        await repos.ensure_merchant("m_targets")
    notifications = Notifications(db, HttpWebhookSender(), lambda: datetime.now(UTC))
    for url in ("http://127.0.0.1:5432/", "http://169.254.169.254/latest/meta-data", "http://localhost/hook"):
        with pytest.raises(InvalidRequest):
            await notifications.put_endpoint("m_targets", WebhookEndpointIn(url=url))
    saved = await notifications.put_endpoint("m_targets", WebhookEndpointIn(url="https://shop.example.com/hook"))
    assert saved.url == "https://shop.example.com/hook"


async def test_a_name_that_resolves_inside_is_not_called() -> None:
    sender = HttpWebhookSender()
    with pytest.raises(WebhookSendError, match="internal address"):
        await sender.send("http://localhost:9/hook", b"{}", {})
    await sender.close()
