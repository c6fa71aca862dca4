-- Refunds: one row per payout attempt, claimed by workers with FOR UPDATE SKIP LOCKED.
-- The gateway is called outside any transaction; the row's claim (claimed_until) is a lease,
-- so a worker that dies mid-call leaves the refund to be claimed again and replayed with the
-- same idempotency key.

ALTER TABLE merchants ADD COLUMN gateway_account text;  -- e.g. a Stripe Connect account id

CREATE TABLE refunds (
    merchant_id        text NOT NULL REFERENCES merchants (id),
    id                 text NOT NULL,
    case_id            text NOT NULL,
    order_id           text NOT NULL,
    customer_id        text NOT NULL,
    reason             text,
    attempt            integer NOT NULL,
    amount             bigint NOT NULL CHECK (amount > 0),
    currency           text NOT NULL,
    status             text NOT NULL,
    gateway            text NOT NULL,
    gateway_account    text,
    payment_reference  text NOT NULL,
    gateway_refund_id  text,
    failure_reason     text,
    version            integer NOT NULL,
    created_at         timestamptz NOT NULL,
    updated_at         timestamptz NOT NULL,
    settled_at         timestamptz,
    -- worker bookkeeping
    next_attempt_at    timestamptz NOT NULL,
    tries              integer NOT NULL DEFAULT 0,
    claimed_until      timestamptz,
    last_error         text,
    checked_at         timestamptz,  -- last time the poller asked the gateway
    PRIMARY KEY (merchant_id, id)
);
CREATE UNIQUE INDEX refunds_by_gateway_id ON refunds (gateway, gateway_refund_id) WHERE gateway_refund_id IS NOT NULL;
CREATE INDEX refunds_due ON refunds (next_attempt_at) WHERE status = 'pending';
CREATE INDEX refunds_unsettled ON refunds (updated_at) WHERE status IN ('submitted', 'requires_action');
CREATE INDEX refunds_by_case ON refunds (merchant_id, case_id);
CREATE INDEX refunds_by_order ON refunds (merchant_id, order_id);
CREATE INDEX refunds_ledger ON refunds (merchant_id, created_at, id);

-- Gateway webhook events already applied: a redelivered event changes nothing.
CREATE TABLE gateway_events (
    gateway      text NOT NULL,
    event_id     text NOT NULL,
    type         text NOT NULL,
    received_at  timestamptz NOT NULL,
    PRIMARY KEY (gateway, event_id)
);
