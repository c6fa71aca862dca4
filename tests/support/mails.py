"""The customer e-mails a service without ``RETURNS_SMTP_URL`` writes as ``.eml`` files in
``<data dir>/outbox-mail/``, read back as the customer's mail client reads them."""

from __future__ import annotations

import email
import email.policy
from email.message import EmailMessage
from pathlib import Path
from urllib.parse import parse_qs, urlsplit


def eml_mails(data_dir: Path, kind: str) -> list[EmailMessage]:
    folder = data_dir / "outbox-mail"
    mails = [
        email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        for path in (sorted(folder.glob("*.eml")) if folder.exists() else [])
    ]
    return [mail for mail in mails if mail["X-Returns-Kind"] == kind]  # type: ignore[misc]


def portal_links(mail: EmailMessage) -> list[str]:
    """The portal links of the mail's plain text part."""
    text = mail.get_body(("plain",))
    assert text is not None, "a plain text part"
    return [word for word in text.get_content().split() if "/portal#" in word]


def link_token(link: str) -> str:
    return parse_qs(urlsplit(link).fragment)["t"][0]
