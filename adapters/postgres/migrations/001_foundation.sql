-- Foundation: merchants, keys, orders, cases with their audit trail and the outbox.
-- Every table carries merchant_id and leads its primary key with it, so the schema can be
-- distributed by merchant_id (Citus) without changing a query.

CREATE TABLE merchants (
    id          text PRIMARY KEY,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE api_keys (
    merchant_id text NOT NULL REFERENCES merchants (id),
    id          text NOT NULL,
    role        text NOT NULL CHECK (role IN ('storefront', 'agent', 'finance', 'admin')),
    key_hash    bytea NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz,
    PRIMARY KEY (merchant_id, id)
);
-- A key is looked up by its hash before the merchant is known.
CREATE UNIQUE INDEX api_keys_hash ON api_keys (key_hash);

CREATE TABLE orders (
    merchant_id  text NOT NULL REFERENCES merchants (id),
    order_id     text NOT NULL,
    customer_id  text NOT NULL,
    currency     text NOT NULL,
    placed_at    timestamptz NOT NULL,
    doc          jsonb NOT NULL,
    created_at   timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL,
    PRIMARY KEY (merchant_id, order_id)
);
CREATE INDEX orders_by_customer ON orders (merchant_id, customer_id, placed_at);

CREATE TABLE cases (
    merchant_id  text NOT NULL REFERENCES merchants (id),
    id           text NOT NULL,
    order_id     text NOT NULL,
    customer_id  text NOT NULL,
    type         text NOT NULL,
    state        text NOT NULL,
    assignee     text,
    flagged      boolean NOT NULL DEFAULT false,
    reasons      text[] NOT NULL,
    version      integer NOT NULL,
    doc          jsonb NOT NULL,
    created_at   timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL,
    sla_due_at   timestamptz,
    PRIMARY KEY (merchant_id, id)
);
CREATE INDEX cases_newest ON cases (merchant_id, created_at DESC, id DESC);
CREATE INDEX cases_by_order ON cases (merchant_id, order_id);
CREATE INDEX cases_by_customer ON cases (merchant_id, customer_id, created_at DESC);
-- The agent queue: soonest due first, cases with no due time (terminal states) last.
CREATE INDEX cases_queue ON cases (merchant_id, COALESCE(sla_due_at, '9999-12-31 00:00:00+00'), id);

CREATE TABLE case_events (
    merchant_id  text NOT NULL,
    id           bigint GENERATED ALWAYS AS IDENTITY,
    case_id      text NOT NULL,
    type         text NOT NULL,
    actor_id     text NOT NULL,
    actor_role   text NOT NULL,
    at           timestamptz NOT NULL,
    from_state   text,
    to_state     text,
    data         jsonb NOT NULL,
    PRIMARY KEY (merchant_id, id)
);
CREATE INDEX case_events_by_case ON case_events (merchant_id, case_id, id);

CREATE TABLE outbox (
    merchant_id   text NOT NULL,
    id            bigint GENERATED ALWAYS AS IDENTITY,
    topic         text NOT NULL,
    payload       jsonb NOT NULL,
    created_at    timestamptz NOT NULL,
    available_at  timestamptz NOT NULL,
    attempts      integer NOT NULL DEFAULT 0,
    processed_at  timestamptz,
    PRIMARY KEY (merchant_id, id)
);
CREATE INDEX outbox_due ON outbox (available_at) WHERE processed_at IS NULL;

CREATE TABLE idempotency_keys (
    merchant_id   text NOT NULL,
    key           text NOT NULL,
    request_hash  bytea NOT NULL,
    case_id       text NOT NULL,
    created_at    timestamptz NOT NULL,
    PRIMARY KEY (merchant_id, key)
);

CREATE TABLE policies (
    merchant_id  text NOT NULL REFERENCES merchants (id),
    version      integer NOT NULL,
    document     jsonb NOT NULL,
    created_at   timestamptz NOT NULL,
    created_by   text NOT NULL,
    PRIMARY KEY (merchant_id, version)
);
