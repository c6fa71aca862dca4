-- The simulated payment gateway's own state, so that every process sees one gateway and its
-- refund ids stay unique across restarts. It stands for an outside system: at run time it reads
-- only these tables, and the service's tables never join them. The account None is stored as ''
-- (a plain unique key, whatever the PostgreSQL version).

CREATE SEQUENCE simulated_gateway_refund_ids;

-- The earlier in-memory gateway numbered from 1 in every process; the refunds table still holds
-- the ids it handed out, so new ids start past them.
SELECT setval('simulated_gateway_refund_ids', max(substr(gateway_refund_id, 8)::bigint))
FROM refunds
WHERE gateway = 'simulated' AND gateway_refund_id ~ '^sim_re_[0-9]{1,18}$';

CREATE TABLE simulated_gateway_payments (
    account    text NOT NULL DEFAULT '',
    reference  text NOT NULL,
    amount     bigint NOT NULL,
    PRIMARY KEY (account, reference)
);

CREATE TABLE simulated_gateway_refunds (
    id                      text PRIMARY KEY,
    account                 text NOT NULL DEFAULT '',
    idempotency_key         text NOT NULL,
    payment_reference       text NOT NULL,
    amount                  bigint NOT NULL,
    currency                text NOT NULL,
    status                  text NOT NULL
        CHECK (status IN ('pending', 'succeeded', 'failed', 'requires_action', 'canceled')),
    failure_reason          text,
    refund_id               text,            -- our rf_ id, as the gateway's metadata
    outcome_status          text NOT NULL,   -- what a pending refund settles to
    outcome_failure_reason  text,
    created_at              timestamptz NOT NULL,
    settles_at              timestamptz,     -- while pending
    UNIQUE (account, idempotency_key)
);
CREATE INDEX simulated_gateway_refunds_by_created ON simulated_gateway_refunds (account, created_at);
CREATE INDEX simulated_gateway_refunds_by_payment ON simulated_gateway_refunds (account, payment_reference);
CREATE INDEX simulated_gateway_refunds_settling ON simulated_gateway_refunds (account, settles_at)
    WHERE settles_at IS NOT NULL;
