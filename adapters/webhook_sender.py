"""Outbound webhook HTTP calls, with httpx: short timeouts, no redirects followed."""

from __future__ import annotations

import httpx

from service.ports import WebhookSendError


class HttpWebhookSender:
    def __init__(self, timeout_seconds: float = 10.0) -> None:
        self.client = httpx.AsyncClient(timeout=timeout_seconds, follow_redirects=False)

    async def send(self, url: str, body: bytes, headers: dict[str, str]) -> int:
        try:
            response = await self.client.post(url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise WebhookSendError(f"{type(exc).__name__}: {exc}") from exc
        return response.status_code

    async def close(self) -> None:
        await self.client.aclose()
