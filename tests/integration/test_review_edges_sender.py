"""Second outside review: the webhook sender against hostile receivers (on 127.0.0.1, reached by
handing the sender that address as the checked one: no name is ever resolved). Its findings (a
receiver dripping its answer held a delivery without end; a huge answer was read into memory)
are fixed; these tests keep them fixed, beside the attacks the sender repelled."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from adapters.webhook_sender import HttpWebhookSender
from service.ports import WebhookSendError

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _serve(handler: Handler) -> tuple[asyncio.AbstractServer, int]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def _read_request(reader: asyncio.StreamReader) -> None:
    head = await reader.readuntil(b"\r\n\r\n")
    length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")), 0)
    await reader.readexactly(length)


@pytest.fixture
async def sender() -> AsyncIterator[HttpWebhookSender]:
    sender = HttpWebhookSender(timeout_seconds=0.5)
    yield sender
    await sender.close()


async def _send(sender: HttpWebhookSender, port: int) -> int:
    return await sender.send(f"http://shop.example.com:{port}/hooks", ["127.0.0.1"], b"{}", {"Content-Type": "application/json"})


async def test_a_receiver_dripping_its_answer_cannot_hold_a_delivery_past_the_timeout(sender: HttpWebhookSender) -> None:
    async def drip(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 40\r\n\r\n")
        try:
            for _ in range(40):
                await writer.drain()
                await asyncio.sleep(0.2)  # under the 0.5 s read timeout each time
                writer.write(b"x")
            await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    server, port = await _serve(drip)
    async with server:
        started = time.perf_counter()
        try:
            await _send(sender, port)
        except WebhookSendError:
            pass
        elapsed = time.perf_counter() - started
    assert elapsed < 2.0, f"one delivery took {elapsed:.1f} s with a 0.5 s timeout"


async def test_a_huge_answer_is_not_read_into_memory(sender: HttpWebhookSender) -> None:
    size = 256 * 1024 * 1024
    written = 0

    async def huge(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal written
        await _read_request(reader)
        writer.write(f"HTTP/1.1 200 OK\r\nContent-Length: {size}\r\n\r\n".encode())
        chunk = b"x" * (1024 * 1024)
        try:
            while written < size:
                writer.write(chunk)
                await writer.drain()
                written += len(chunk)
        except ConnectionError:
            pass
        finally:
            writer.close()

    server, port = await _serve(huge)
    async with server:
        try:
            status = await asyncio.wait_for(_send(sender, port), 30)
        except WebhookSendError:
            status = None
        await asyncio.sleep(0.2)
    assert written < 32 * 1024 * 1024, f"the receiver got {written >> 20} MiB read off it (answer {status})"


async def test_a_redirect_to_an_internal_address_is_not_followed(sender: HttpWebhookSender) -> None:
    """The answer's 3xx is the delivery's status (not 2xx: tried again later); the Location is
    never called, wherever it points."""
    called: list[bytes] = []

    async def internal(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        called.append(await reader.read(100))
        writer.close()

    inside, inside_port = await _serve(internal)

    async def redirect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        for_location = f"http://127.0.0.1:{inside_port}/admin"
        writer.write(f"HTTP/1.1 307 Temporary Redirect\r\nLocation: {for_location}\r\nContent-Length: 0\r\n\r\n".encode())
        await writer.drain()
        writer.close()

    server, port = await _serve(redirect)
    async with server, inside:
        assert await _send(sender, port) == 307
        await asyncio.sleep(0.1)
    assert called == []


async def test_the_sender_connects_only_to_the_checked_address_for_the_named_host(sender: HttpWebhookSender) -> None:
    """No checked address, or addresses checked for another name: nothing is connected to."""
    with pytest.raises(WebhookSendError):
        await sender.send("http://shop.example.com:1/hooks", [], b"{}", {})


async def test_a_receiver_that_never_answers_times_out(sender: HttpWebhookSender) -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(5)
        writer.close()

    server, port = await _serve(silent)
    async with server:
        started = time.perf_counter()
        with pytest.raises(WebhookSendError):
            await _send(sender, port)
    assert time.perf_counter() - started < 2
