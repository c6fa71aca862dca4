"""A real SMTP server on 127.0.0.1 (aiosmtpd) that keeps what it accepts and answers scripted
refusals first (``"451 …"``, ``"550 …"``)."""

from __future__ import annotations

import ssl
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Literal

from aiosmtpd.controller import Controller

from tests.support.server import free_port


class Inbox:
    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.refusals: list[str] = []  # answered to the next DATA commands, in order
        self.refused = 0
        self._lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self._lock:
            if self.refusals:
                self.refused += 1
                return self.refusals.pop(0)
            self.messages.append(message_from_bytes(envelope.content, policy=policy.default))  # type: ignore[arg-type]
        return "250 OK"


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key: trust it with ``SSL_CERT_FILE``."""
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


@contextmanager
def smtp_server(
    tls: Literal["starttls", "implicit"] | None = None, cert: tuple[Path, Path] | None = None
) -> Iterator[tuple[Inbox, str]]:
    """The inbox and the URL the transport reaches it at. ``starttls``: the server offers STARTTLS
    and refuses mail before it; ``implicit``: TLS from the first byte (``smtps://``)."""
    inbox = Inbox()
    port = free_port()
    options: dict[str, Any] = {}
    if tls:
        assert cert is not None
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(*cert)
        options = {"tls_context": context, "require_starttls": True} if tls == "starttls" else {"ssl_context": context}
    controller = Controller(inbox, hostname="127.0.0.1", port=port, **options)
    controller.start()
    try:
        yield inbox, f"{'smtps' if tls == 'implicit' else 'smtp'}://127.0.0.1:{port}"
    finally:
        controller.stop()
