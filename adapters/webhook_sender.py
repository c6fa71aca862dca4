"""Outbound webhook HTTP calls, with httpx: short timeouts, no redirects followed, no proxies
from the environment, and connections made only to the addresses the service checked.

DNS rebinding: a name may answer a public address when it is checked and an internal one when
the client looks it up again a moment later. So the client never looks up: the service resolves
once per delivery (``service.targets.checked_addresses``), checks every answer, and hands the
addresses to ``send``; ``PinnedBackend`` (httpcore's network backend, under httpx's transport)
connects to those addresses only, while the request keeps the URL's name, so the ``Host`` header,
TLS SNI and certificate check are the name's."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterable
from contextvars import ContextVar

import httpcore
import httpx

from service.ports import ResolveError, WebhookSendError
from service.targets import DEFAULT_PORTS

LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20)
# The current delivery's (host, port) and the checked addresses to connect to for it.
_PINNED: ContextVar[tuple[str, int, list[str]] | None] = ContextVar("webhook_pinned_addresses", default=None)


class PinnedBackend(httpcore.AsyncNetworkBackend):
    """Connects to the checked addresses of the current delivery, in order; never resolves."""

    def __init__(self) -> None:
        self.inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        pinned = _PINNED.get()
        if pinned is None or (pinned[0], pinned[1]) != (host, port) or not pinned[2]:
            raise httpcore.ConnectError(f"no checked address for {host}:{port}; not connecting")
        failure: Exception | None = None
        for address in pinned[2]:
            try:
                return await self.inner.connect_tcp(
                    address, port, timeout=timeout, local_address=local_address, socket_options=socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        assert failure is not None
        raise failure

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("webhooks do not go to unix sockets")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


class PinnedTransport(httpx.AsyncHTTPTransport):
    """httpx's transport over a connection pool whose network backend is ``PinnedBackend``.
    Connections are pooled per name (scheme, host, port), so a connection is only reused for the
    name whose certificate it checked."""

    def __init__(self, limits: httpx.Limits = LIMITS) -> None:
        super().__init__(trust_env=False, limits=limits)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=PinnedBackend(),
        )


class HttpWebhookSender:
    def __init__(self, timeout_seconds: float = 10.0) -> None:
        self.timeout_seconds = timeout_seconds
        self.client = httpx.AsyncClient(
            timeout=timeout_seconds, follow_redirects=False, trust_env=False, transport=PinnedTransport()
        )

    async def send(self, url: str, addresses: list[str], body: bytes, headers: dict[str, str]) -> int:
        try:
            request = self.client.build_request("POST", url, content=body, headers=headers)
        except (httpx.InvalidURL, ValueError) as exc:
            raise WebhookSendError(f"not a URL we can call: {exc}") from exc
        host = request.url.raw_host.decode("ascii")
        port = request.url.port or DEFAULT_PORTS[request.url.scheme]
        token = _PINNED.set((host, port, list(addresses)))
        try:
            # the whole delivery within the timeout (httpx's counts each read, so a receiver dripping
            # its answer could hold the worker for ever), and the answer's body never read: only
            # its status matters (found by an outside review)
            async with asyncio.timeout(self.timeout_seconds):
                response = await self.client.send(request, stream=True)
                await response.aclose()
        except TimeoutError as exc:
            raise WebhookSendError(f"no answer within {self.timeout_seconds:g} s") from exc
        except httpx.HTTPError as exc:
            raise WebhookSendError(f"{type(exc).__name__}: {exc}") from exc
        finally:
            _PINNED.reset(token)
        return response.status_code

    async def close(self) -> None:
        await self.client.aclose()


class LoopResolver:
    """Names resolved by the event loop's ``getaddrinfo`` (the system resolver, off the loop)."""

    async def resolve(self, host: str, port: int) -> list[str]:
        try:
            answers = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError) as exc:
            raise ResolveError(str(exc)) from exc
        addresses: list[str] = []
        for *_, sockaddr in answers:
            address = str(sockaddr[0])
            if address not in addresses:
                addresses.append(address)
        return addresses
