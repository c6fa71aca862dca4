"""Customer e-mail rows and the merchant's mail settings: mixed into ``PgRepositories``. The
worker's claims go across merchants; everything else filters on merchant_id."""

from __future__ import annotations

from datetime import datetime, timedelta

import asyncpg
import msgspec

from adapters.postgres.workflows import outbox_message
from service.ports import CustomerMail, MailLink, MailSettings, OutboxMessage

MAIL_COLUMNS = (
    "merchant_id, id, event_id, recipient, kind, case_id, language, message, status, attempts,"
    " permanent_failures, last_error, created_at, sent_at, link::text AS link"
)


def _mail(row: asyncpg.Record) -> CustomerMail:
    fields = dict(row)
    link = fields.pop("link")
    return CustomerMail(**fields, link=msgspec.json.decode(link, type=MailLink) if link else None)


class PgMail:
    conn: asyncpg.Connection

    async def claim_unplanned_outbox(self, limit: int) -> list[OutboxMessage]:
        rows = await self.conn.fetch(
            """
            SELECT merchant_id, id, topic, payload::text AS payload, attempts, created_at FROM outbox
             WHERE mail_planned_at IS NULL ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED
            """,
            limit,
        )
        return [outbox_message(row) for row in rows]

    async def mark_mail_planned(self, merchant_id: str, outbox_id: int, at: datetime) -> None:
        await self.conn.execute(
            "UPDATE outbox SET mail_planned_at = $3 WHERE merchant_id = $1 AND id = $2", merchant_id, outbox_id, at
        )

    async def add_customer_mail(self, mail: CustomerMail, at: datetime) -> bool:
        status = await self.conn.execute(
            """
            INSERT INTO customer_mail (merchant_id, id, event_id, recipient, kind, case_id, language, message,
                                       status, last_error, created_at, available_at, link)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $10, $11, $9, $9, $12::jsonb) ON CONFLICT DO NOTHING
            """,
            mail.merchant_id,
            mail.id,
            mail.event_id,
            mail.recipient,
            mail.kind,
            mail.case_id,
            mail.language,
            mail.message,
            at,
            mail.status,
            mail.last_error,
            msgspec.json.encode(mail.link).decode() if mail.link else None,
        )
        return status.endswith(" 1")

    async def claim_due_mail(self, now: datetime, lease: timedelta, limit: int) -> list[CustomerMail]:
        """A lease, like the outbox's: a killed worker's mail is taken over when it runs out."""
        rows = await self.conn.fetch(
            f"""
            UPDATE customer_mail SET claimed_until = $1 + $2::interval, attempts = attempts + 1
             WHERE (merchant_id, id) IN (
                   SELECT merchant_id, id FROM customer_mail
                    WHERE status = 'pending' AND available_at <= $1
                      AND (claimed_until IS NULL OR claimed_until < $1)
                    ORDER BY available_at, event_id LIMIT $3
                    FOR UPDATE SKIP LOCKED)
            RETURNING {MAIL_COLUMNS}
            """,
            now,
            lease,
            limit,
        )
        return [_mail(row) for row in sorted(rows, key=lambda row: row["event_id"])]  # in the order things happened

    async def finish_mail(self, merchant_id: str, mail_id: str, status: str, error: str | None, at: datetime) -> None:
        await self.conn.execute(
            """
            UPDATE customer_mail SET status = $3, last_error = coalesce($4, last_error), claimed_until = NULL,
                   sent_at = CASE WHEN $3 = 'sent' THEN $5::timestamptz END
             WHERE merchant_id = $1 AND id = $2
            """,
            merchant_id,
            mail_id,
            status,
            error,
            at,
        )

    async def postpone_mail(self, merchant_id: str, mail_id: str, until: datetime, error: str, *, permanent: bool) -> None:
        await self.conn.execute(
            """
            UPDATE customer_mail SET available_at = $3, last_error = $4, claimed_until = NULL,
                   permanent_failures = permanent_failures + $5::int
             WHERE merchant_id = $1 AND id = $2
            """,
            merchant_id,
            mail_id,
            until,
            error,
            int(permanent),
        )

    async def customer_mails(self, merchant_id: str, case_id: str) -> list[CustomerMail]:
        rows = await self.conn.fetch(
            f"SELECT {MAIL_COLUMNS} FROM customer_mail WHERE merchant_id = $1 AND case_id = $2 ORDER BY event_id, kind",
            merchant_id,
            case_id,
        )
        return [_mail(row) for row in rows]

    async def mail_settings(self, merchant_id: str) -> MailSettings | None:
        row = await self.conn.fetchrow(
            "SELECT sender_name, reply_to, default_language, return_address FROM mail_settings WHERE merchant_id = $1",
            merchant_id,
        )
        return MailSettings(**dict(row)) if row else None

    async def put_mail_settings(self, merchant_id: str, settings: MailSettings, at: datetime) -> None:
        await self.conn.execute(
            """
            INSERT INTO mail_settings (merchant_id, sender_name, reply_to, default_language, return_address, updated_at)
            VALUES ($1, $2, $3, $4, $5, $6)
            ON CONFLICT (merchant_id) DO UPDATE SET sender_name = $2, reply_to = $3, default_language = $4,
                   return_address = $5, updated_at = $6
            """,
            merchant_id,
            settings.sender_name,
            settings.reply_to,
            settings.default_language,
            settings.return_address,
            at,
        )
