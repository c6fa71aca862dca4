"""With the defaults, neither the admin's endpoint nor a delivery may reach an internal address:
the endpoint is refused when it is saved, and a delivery connects only to the addresses it
checked (a name that answers a public address at setup and 127.0.0.1 later is not called).
Secrets survive a save and rotate explicitly, with both signatures during the grace period.
A hostile receiver (on 127.0.0.1, handed to the sender as the checked address: no name is ever
resolved) holds a delivery no longer than the sender's timeout, whether it drips its answer, sends
a huge one or none; a redirect is the delivery's status, never followed."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta

import pytest

from adapters.postgres.database import PostgresDatabase
from adapters.webhook_sender import HttpWebhookSender, LoopResolver
from domain.errors import InvalidRequest
from service.dto import WebhookEndpointIn
from service.notifications import Notifications
from service.ports import NotFound, WebhookSendError
from tests.fakes.resolver import ScriptedResolver
from tests.support.receiver import Receiver, receiving, signed_by

PUBLIC_IP = "93.184.216.34"  # never connected to: the tests only ever reach 127.0.0.1


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
async def sender() -> AsyncIterator[HttpWebhookSender]:
    sender = HttpWebhookSender(timeout_seconds=5)
    yield sender
    await sender.close()


async def _merchant(db: PostgresDatabase, merchant_id: str) -> str:
    async with db.transaction() as repos:
        await repos.ensure_merchant(merchant_id)
    return merchant_id


async def _event(db: PostgresDatabase, merchant_id: str, at: datetime) -> None:
    async with db.transaction() as repos:
        await repos.add_outbox(merchant_id, "case.updated", {"case_id": "case_x", "to_state": "approved"}, at)


async def _deliveries(notifications: Notifications, merchant_id: str) -> list:
    return (await notifications.deliveries(merchant_id, 50, None)).items


async def test_internal_endpoints_are_refused_when_saved(db: PostgresDatabase, sender: HttpWebhookSender) -> None:
    merchant = await _merchant(db, "m_targets")
    resolver = ScriptedResolver(
        {
            "shop.example.com": [PUBLIC_IP],
            "loopback.example.com": ["127.0.0.1"],
            "half.example.com": [PUBLIC_IP, "10.0.0.7"],
            "mapped.example.com": ["::ffff:169.254.169.254"],
        }
    )
    notifications = Notifications(db, sender, lambda: datetime.now(UTC), resolver=resolver)
    for url in (
        "http://127.0.0.1:5432/",
        "http://169.254.169.254/latest/meta-data",
        "http://localhost/hook",
        "http://2130706433/",
        "http://0x7f000001/",
        "http://0177.0.0.1/",
        "http://127.1/",
        "http://0/",
        "http://①②⑦.0.0.1/",
        "http://127.0.0.1%2f@example.com/",
        "http://localhost.localdomain/",
        "http://metadata.google.internal/computeMetadata/v1/",
        "http://[::ffff:127.0.0.1]/",
        "https://loopback.example.com/hook",
        "https://half.example.com/hook",
        "https://mapped.example.com/hook",
        "https://unknown.example.com/hook",
    ):
        with pytest.raises(InvalidRequest) as refused:
            await notifications.put_endpoint(merchant, WebhookEndpointIn(url=url))
        assert [error["field"] for error in refused.value.errors] == ["url"], url
    assert (await notifications.endpoints(merchant)).items == []
    saved = await notifications.put_endpoint(merchant, WebhookEndpointIn(url="HTTPS://Shop.Example.com:443/hook"))
    assert saved.url == "https://shop.example.com/hook"  # kept as it will be called


async def test_a_name_rebound_to_loopback_after_setup_is_not_called(db: PostgresDatabase, sender: HttpWebhookSender) -> None:
    merchant = await _merchant(db, "m_rebind")
    clock = Clock()
    resolver = ScriptedResolver({"hooks.shop.example": [PUBLIC_IP]})
    notifications = Notifications(db, sender, clock, resolver=resolver)
    with receiving() as receiver:
        await notifications.put_endpoint(merchant, WebhookEndpointIn(url=f"http://hooks.shop.example:{receiver.port}/hooks"))
        resolver.answers["hooks.shop.example"] = ["127.0.0.1"]  # the attacker's DNS changes its answer
        await _event(db, merchant, clock())
        assert await notifications.deliver_due() == 1
        assert receiver.requests == []
    [delivery] = await _deliveries(notifications, merchant)
    assert delivery.status_code is None
    assert "internal address (127.0.0.1)" in delivery.error and delivery.error.startswith("not sent")


async def test_a_delivery_connects_to_the_address_it_checked(db: PostgresDatabase, sender: HttpWebhookSender) -> None:
    """With internal targets allowed (the operator's choice), a name only the scripted resolver
    knows is delivered to 127.0.0.1: the client connected to the resolved address and did not
    look the name up itself; the Host header is still the name."""
    merchant = await _merchant(db, "m_pinned")
    clock = Clock()
    resolver = ScriptedResolver({"receiver.shop.test": ["127.0.0.1"]})
    notifications = Notifications(db, sender, clock, resolver=resolver, allow_internal_targets=True)
    with receiving() as receiver:
        url = f"http://receiver.shop.test:{receiver.port}/hooks"
        receiver.secret = (await notifications.put_endpoint(merchant, WebhookEndpointIn(url=url))).secret or ""
        await _event(db, merchant, clock())
        assert await notifications.deliver_due() == 1
        assert len(receiver.events) == 1 and receiver.bad_signatures == 0
        assert receiver.requests[0][1]["Host"] == f"receiver.shop.test:{receiver.port}"
        resolver.answers["receiver.shop.test"] = ["127.0.0.9", "127.0.0.1"]  # tried in order
        await _event(db, merchant, clock())
        await notifications.deliver_due()
        assert len(receiver.events) == 2
    assert resolver.asked == ["receiver.shop.test"] * 3  # setup, then once per delivery


async def _deliver_one(
    db: PostgresDatabase, notifications: Notifications, merchant: str, clock: Clock, receiver: Receiver
) -> tuple[bytes, str]:
    await _event(db, merchant, clock())
    assert await notifications.deliver_due() == 1
    body, headers = receiver.requests[-1]
    return body, headers["Returns-Signature"]


async def test_secrets_are_kept_by_a_save_and_rotated_with_a_grace_period(
    db: PostgresDatabase, sender: HttpWebhookSender
) -> None:
    merchant = await _merchant(db, "m_rotate")
    clock = Clock()
    notifications = Notifications(
        db, sender, clock, resolver=ScriptedResolver(), allow_internal_targets=True, secret_grace=timedelta(hours=24)
    )
    with pytest.raises(NotFound):
        await notifications.rotate_secret(merchant)
    with receiving() as receiver:
        created = await notifications.put_endpoint(merchant, WebhookEndpointIn(url=receiver.url))
        old = created.secret
        assert old and old.startswith("whsec_")
        receiver.secret = old
        saved = await notifications.put_endpoint(merchant, WebhookEndpointIn(url=receiver.url, enabled=True))
        assert saved.secret is None, "a save does not show (nor make) a secret"
        assert await notifications.put_endpoint(merchant, WebhookEndpointIn(url=receiver.url, secret=old))
        with pytest.raises(InvalidRequest) as refused:
            await notifications.put_endpoint(merchant, WebhookEndpointIn(url=receiver.url, secret="whsec_" + "x" * 20))
        assert refused.value.errors[0]["field"] == "secret"
        body, header = await _deliver_one(db, notifications, merchant, clock, receiver)
        assert signed_by(old, body, header) and header.count("v1=") == 1

        rotated = await notifications.rotate_secret(merchant)
        new = rotated.secret
        assert new and new != old and rotated.previous_secret_expires_at == clock() + timedelta(hours=24)
        receiver.secret = new
        [listed] = (await notifications.endpoints(merchant)).items
        assert listed.secret is None and listed.previous_secret_expires_at == rotated.previous_secret_expires_at
        body, header = await _deliver_one(db, notifications, merchant, clock, receiver)
        assert header.count("v1=") == 2 and signed_by(new, body, header) and signed_by(old, body, header)

        await notifications.put_endpoint(merchant, WebhookEndpointIn(url=receiver.url))  # a save keeps both
        clock.now += timedelta(hours=23, minutes=59)
        body, header = await _deliver_one(db, notifications, merchant, clock, receiver)
        assert signed_by(new, body, header) and signed_by(old, body, header)

        clock.now += timedelta(minutes=2)  # the grace period is over
        body, header = await _deliver_one(db, notifications, merchant, clock, receiver)
        assert header.count("v1=") == 1 and signed_by(new, body, header) and not signed_by(old, body, header)
        assert (await notifications.endpoints(merchant)).items[0].previous_secret_expires_at is None


async def test_concurrent_rotations_lose_no_secret(db: PostgresDatabase, sender: HttpWebhookSender) -> None:
    """Each rotation moves the secret in force aside in one statement: of two at once, the
    second's previous secret is the first's new one, so every secret answered signed something."""
    merchant = await _merchant(db, "m_rotate_race")
    notifications = Notifications(db, sender, lambda: datetime.now(UTC), resolver=ScriptedResolver(), allow_internal_targets=True)
    await notifications.put_endpoint(merchant, WebhookEndpointIn(url="http://127.0.0.1:9/hooks"))
    first, second = await asyncio.gather(notifications.rotate_secret(merchant), notifications.rotate_secret(merchant))
    async with db.transaction() as repos:
        endpoint = await repos.webhook_endpoint(merchant)
    assert endpoint is not None
    assert {endpoint.secret, endpoint.previous_secret} == {first.secret, second.secret}


async def test_the_sender_connects_only_to_the_addresses_it_is_given(sender: HttpWebhookSender) -> None:
    with receiving() as receiver:
        url = f"http://localhost:{receiver.port}/hooks"
        with pytest.raises(WebhookSendError, match="no checked address"):
            await sender.send(url, [], b"{}", {})
        assert receiver.requests == []
        assert await sender.send(url, ["127.0.0.1"], b"{}", {}) == 400  # reached; unsigned, so refused
        assert receiver.requests[0][1]["Host"] == f"localhost:{receiver.port}"


async def test_the_system_resolver_answers_addresses_once_each() -> None:
    """The adapter, on names every machine resolves locally (no DNS server asked)."""
    addresses = await LoopResolver().resolve("localhost", 443)
    assert addresses and set(addresses) <= {"127.0.0.1", "::1"} and len(addresses) == len(set(addresses))
    assert await LoopResolver().resolve("127.0.0.1", 80) == ["127.0.0.1"]


# --------------------------------------------------------------------------- hostile receivers


Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _serve(handler: Handler) -> tuple[asyncio.AbstractServer, int]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def _read_request(reader: asyncio.StreamReader) -> None:
    head = await reader.readuntil(b"\r\n\r\n")
    length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")), 0)
    await reader.readexactly(length)


@pytest.fixture
async def impatient_sender() -> AsyncIterator[HttpWebhookSender]:
    """A sender that waits 0.5 s for a receiver: what a hostile one may hold up is measured against it."""
    sender = HttpWebhookSender(timeout_seconds=0.5)
    yield sender
    await sender.close()


async def _send(sender: HttpWebhookSender, port: int) -> int:
    return await sender.send(f"http://shop.example.com:{port}/hooks", ["127.0.0.1"], b"{}", {"Content-Type": "application/json"})


async def test_a_receiver_dripping_its_answer_cannot_hold_a_delivery_past_the_timeout(
    impatient_sender: HttpWebhookSender,
) -> None:
    """Origin: outside review round 2, a finding (fixed since)."""

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
            await _send(impatient_sender, port)
        except WebhookSendError:
            pass
        elapsed = time.perf_counter() - started
    assert elapsed < 2.0, f"one delivery took {elapsed:.1f} s with a 0.5 s timeout"


async def test_a_huge_answer_is_not_read_into_memory(impatient_sender: HttpWebhookSender) -> None:
    """Origin: outside review round 2, a finding (fixed since)."""
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
            status = await asyncio.wait_for(_send(impatient_sender, port), 30)
        except WebhookSendError:
            status = None
        await asyncio.sleep(0.2)
    assert written < 32 * 1024 * 1024, f"the receiver got {written >> 20} MiB read off it (answer {status})"


async def test_a_redirect_to_an_internal_address_is_not_followed(impatient_sender: HttpWebhookSender) -> None:
    """The answer's 3xx is the delivery's status (not 2xx: tried again later); the Location is
    never called, wherever it points.

    Origin: outside review round 2, an attack the service withstood."""
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
        assert await _send(impatient_sender, port) == 307
        await asyncio.sleep(0.1)
    assert called == []


async def test_the_sender_connects_only_to_the_checked_address_for_the_named_host(impatient_sender: HttpWebhookSender) -> None:
    """No checked address, or addresses checked for another name: nothing is connected to.

    Origin: outside review round 2, an attack the service withstood."""
    with pytest.raises(WebhookSendError):
        await impatient_sender.send("http://shop.example.com:1/hooks", [], b"{}", {})


async def test_a_receiver_that_never_answers_times_out(impatient_sender: HttpWebhookSender) -> None:
    """Origin: outside review round 2, an attack the service withstood."""

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(5)
        writer.close()

    server, port = await _serve(silent)
    async with server:
        started = time.perf_counter()
        with pytest.raises(WebhookSendError):
            await _send(impatient_sender, port)
    assert time.perf_counter() - started < 2
