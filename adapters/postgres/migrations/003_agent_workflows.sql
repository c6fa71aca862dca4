-- Agent workflows: store credit, outbound webhooks to the storefront and their delivery log.

CREATE TABLE store_credit_grants (
    merchant_id  text NOT NULL REFERENCES merchants (id),
    id           text NOT NULL,
    customer_id  text NOT NULL,
    case_id      text NOT NULL,
    amount       bigint NOT NULL CHECK (amount > 0),
    bonus        bigint NOT NULL CHECK (bonus >= 0),
    currency     text NOT NULL,
    created_at   timestamptz NOT NULL,
    PRIMARY KEY (merchant_id, id)
);
CREATE INDEX store_credit_by_customer ON store_credit_grants (merchant_id, customer_id, created_at);

-- One endpoint per merchant (the storefront); its secret signs every delivery.
CREATE TABLE webhook_endpoints (
    merchant_id  text NOT NULL REFERENCES merchants (id),
    id           text NOT NULL,
    url          text NOT NULL,
    secret       text NOT NULL,
    enabled      boolean NOT NULL,
    created_at   timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL,
    PRIMARY KEY (merchant_id, id)
);
CREATE UNIQUE INDEX webhook_endpoint_per_merchant ON webhook_endpoints (merchant_id);

ALTER TABLE outbox ADD COLUMN claimed_until timestamptz;
ALTER TABLE outbox ADD COLUMN outcome text;  -- delivered | dropped (no endpoint) | gave_up

-- Every delivery attempt, for the admin to list.
CREATE TABLE webhook_deliveries (
    merchant_id  text NOT NULL,
    id           bigint GENERATED ALWAYS AS IDENTITY,
    outbox_id    bigint NOT NULL,
    endpoint_id  text NOT NULL,
    topic        text NOT NULL,
    attempt      integer NOT NULL,
    status_code  integer,
    error        text,
    duration_ms  integer NOT NULL,
    at           timestamptz NOT NULL,
    PRIMARY KEY (merchant_id, id)
);
CREATE INDEX webhook_deliveries_newest ON webhook_deliveries (merchant_id, id DESC);
