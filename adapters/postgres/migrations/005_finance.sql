-- Finance: stored reconciliation reports, and the indexes the ledger and reports read by.

CREATE TABLE reconciliations (
    merchant_id  text NOT NULL REFERENCES merchants (id),
    id           text NOT NULL,
    period_from  timestamptz NOT NULL,
    period_to    timestamptz NOT NULL,
    created_at   timestamptz NOT NULL,
    report       jsonb NOT NULL,
    PRIMARY KEY (merchant_id, id)
);
CREATE INDEX reconciliations_by_period ON reconciliations (merchant_id, period_from, period_to);
CREATE INDEX refunds_ledger_filters ON refunds (merchant_id, status, currency, created_at);
CREATE INDEX cases_by_created ON cases (merchant_id, created_at);
