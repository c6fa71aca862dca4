-- Limits that every process keeps together (issue #23): each process kept its own buckets, so N
-- processes on M hosts allowed N × M times a limit. A bucket is now a row, taken and refilled in
-- one statement (adapters/postgres/limits.py).

-- The customer portal's lookup limits: a token bucket per client address (kind 'ip') and per
-- merchant and e-mail (kind 'email'). The key is an HMAC of the address or of the merchant and
-- e-mail under a key derived from the portal's signing secret, never the value itself. A bucket
-- untouched for an hour is full again, the same as none: such rows are swept.
CREATE TABLE portal_lookup_buckets (
    kind       text NOT NULL,
    key_hash   bytea NOT NULL,
    tokens     double precision NOT NULL,  -- at updated_at
    updated_at timestamptz NOT NULL,
    granted    boolean NOT NULL,           -- whether the last take got a token: what the statement answers
    PRIMARY KEY (kind, key_hash)
);
CREATE INDEX portal_lookup_buckets_by_age ON portal_lookup_buckets (updated_at);

-- The payment gateway's pace per account, shared by every worker. ``tokens`` below 0 are calls
-- already promised a slot after ``updated_at``; ``updated_at`` lies ahead while the account is
-- paused after a 429. ``generation`` counts the halvings of ``rate``: a 429 for a call given its
-- slot before the last halving halves nothing again. One row per gateway account, kept.
CREATE TABLE gateway_pace (
    gateway    text NOT NULL,
    account    text NOT NULL,              -- '' for the platform's own account
    rate       double precision NOT NULL,  -- calls a second now
    tokens     double precision NOT NULL,
    updated_at timestamptz NOT NULL,
    generation integer NOT NULL,
    PRIMARY KEY (gateway, account)
);
