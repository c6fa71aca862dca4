"""Mail transports: SMTP through aiosmtplib (``RETURNS_SMTP_URL``), or ``.eml`` files in a folder
when no server is configured (a laptop shows them in any mail client)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from urllib.parse import unquote, urlsplit

import aiosmtplib

from service.ports import MailSendError


class SmtpTransport:
    """``smtp://user:pass@host:587`` (STARTTLS when the server offers it) or ``smtps://…:465``
    (TLS from the first byte). A 5xx answer is permanent; 4xx and connection failures are not."""

    def __init__(self, url: str, *, timeout: float = 20.0) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise ValueError("RETURNS_SMTP_URL is smtp://[user:pass@]host[:port] or smtps://…")
        self.implicit_tls = parts.scheme == "smtps"
        self.host = parts.hostname
        self.port = parts.port or (465 if self.implicit_tls else 587)
        self.username = unquote(parts.username) if parts.username else None
        self.password = unquote(parts.password) if parts.password else None
        self.timeout = timeout

    async def send(self, mail_id: str, sender: str, recipients: list[str], message: bytes) -> None:
        try:
            envelope = [_ascii_address(recipient) for recipient in recipients]
        except UnicodeError as exc:
            raise MailSendError(f"the address cannot be sent to over SMTP: {exc}", permanent=True) from None
        try:
            await aiosmtplib.send(
                message,
                sender=sender,
                recipients=envelope,
                hostname=self.host,
                port=self.port,
                username=self.username,
                password=self.password,
                use_tls=self.implicit_tls,
                start_tls=False if self.implicit_tls else None,  # None: STARTTLS when offered
                timeout=self.timeout,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = [refused.code for refused in exc.recipients]
            raise MailSendError(f"recipient refused: {exc}", permanent=all(code >= 500 for code in codes)) from None
        except aiosmtplib.SMTPResponseException as exc:
            raise MailSendError(f"SMTP {exc.code}: {exc.message}", permanent=exc.code >= 500) from None
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            raise MailSendError(f"mail server unreachable: {exc}") from None


def _ascii_address(address: str) -> str:
    """The envelope's form of an address: an internationalised domain in its ASCII (IDNA) form; a
    non-ASCII local part needs SMTPUTF8, which we do not ask for (UnicodeError)."""
    local, _, domain = address.strip().rpartition("@")
    local.encode("ascii")
    return f"{local}@{domain.encode('idna').decode('ascii')}"


class EmlFolderTransport:
    """One RFC 5322 file per mail, named by the mail's id: a retry overwrites, never duplicates."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    async def send(self, mail_id: str, sender: str, recipients: list[str], message: bytes) -> None:
        try:
            await asyncio.to_thread(self._write, mail_id, message)
        except OSError as exc:
            raise MailSendError(f"cannot write the mail file: {exc}") from None

    def _write(self, mail_id: str, message: bytes) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        temporary = self.folder / f".{mail_id}.tmp"
        temporary.write_bytes(message)
        os.replace(temporary, self.folder / f"{mail_id}.eml")
