-- Customer e-mail (issue #16): the worker plans one mail per (outbox event, recipient, kind) from
-- the outbox and sends it with retries. Events from before this migration mail nobody.
ALTER TABLE outbox ADD COLUMN mail_planned_at timestamptz;
UPDATE outbox SET mail_planned_at = created_at;
CREATE INDEX outbox_mail_due ON outbox (id) WHERE mail_planned_at IS NULL;

CREATE TABLE mail_settings (
    merchant_id       text PRIMARY KEY,
    sender_name       text,
    reply_to          text,
    default_language  text NOT NULL DEFAULT 'en',
    return_address    text,
    updated_at        timestamptz NOT NULL
);

CREATE TABLE customer_mail (
    merchant_id    text NOT NULL,
    id             text NOT NULL,          -- derived from (event, recipient, kind); the Message-ID too
    event_id       bigint NOT NULL,        -- the outbox row it was planned from
    recipient      text NOT NULL,
    kind           text NOT NULL,
    case_id        text NOT NULL,
    language       text NOT NULL,
    message        text NOT NULL,          -- the whole RFC 5322 message, composed once
    status         text NOT NULL DEFAULT 'pending',  -- pending | sent | gave_up
    attempts       integer NOT NULL DEFAULT 0,
    permanent_failures integer NOT NULL DEFAULT 0,
    last_error     text,
    created_at     timestamptz NOT NULL,
    available_at   timestamptz NOT NULL,
    claimed_until  timestamptz,
    sent_at        timestamptz,
    PRIMARY KEY (merchant_id, id),
    UNIQUE (merchant_id, event_id, recipient, kind)
);
CREATE INDEX customer_mail_due ON customer_mail (available_at) WHERE status = 'pending';
