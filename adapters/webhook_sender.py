"""Outbound webhook HTTP calls, with httpx: short timeouts, no redirects followed."""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

import httpx

from service.ports import WebhookSendError
from service.targets import internal_address


class HttpWebhookSender:
    def __init__(self, timeout_seconds: float = 10.0, *, allow_internal_targets: bool = False) -> None:
        self.client = httpx.AsyncClient(timeout=timeout_seconds, follow_redirects=False)
        self.allow_internal_targets = allow_internal_targets

    async def send(self, url: str, body: bytes, headers: dict[str, str]) -> int:
        if not self.allow_internal_targets:
            await self._refuse_internal(url)
        try:
            response = await self.client.post(url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise WebhookSendError(f"{type(exc).__name__}: {exc}") from exc
        return response.status_code

    async def close(self) -> None:
        await self.client.aclose()

    @staticmethod
    async def _refuse_internal(url: str) -> None:
        """The name may resolve to an internal address even when the URL looked public."""
        host = urlsplit(url).hostname or ""
        try:
            answers = await asyncio.get_running_loop().getaddrinfo(host, None)
        except OSError as exc:
            raise WebhookSendError(f"cannot resolve {host}: {exc}") from exc
        if any(internal_address(answer[4][0]) for answer in answers):
            raise WebhookSendError(f"{host} resolves to an internal address; not sent")
