-- Return labels and tracking (issue #17).

-- The merchant's shipping settings: return address, parcel defaults, carrier preferences, who
-- buys labels. One document per merchant, replaced whole by PUT /admin/v1/shipping-settings.
CREATE TABLE shipping_settings (
    merchant_id  text PRIMARY KEY,
    doc          jsonb NOT NULL,
    updated_at   timestamptz NOT NULL
);

-- One label per case, recorded pending in the approval's transaction and bought by the worker.
-- ``shipment_id`` is stored before buying, so a restarted worker asks the carrier whether that
-- shipment was bought instead of buying again.
CREATE TABLE return_labels (
    merchant_id    text NOT NULL,
    id             text NOT NULL,                 -- lbl_…, the carrier's reference
    case_id        text NOT NULL,
    carrier_name   text NOT NULL,                 -- the adapter that buys it: simulated | easypost
    status         text NOT NULL
        CHECK (status IN ('pending', 'bought', 'failed', 'cancelled', 'void_requested', 'voided')),
    request        jsonb NOT NULL,                -- from, to, parcel and preferences, as on approval
    shipment_id    text,
    carrier        text,                          -- as the carrier prints it
    service        text,
    tracking_code  text,
    tracker_id     text,
    amount         bigint,
    currency       text,
    pdf_key        text,
    png_key        text,
    qr_key         text,
    attempts       integer NOT NULL DEFAULT 0,
    last_error     text,
    available_at   timestamptz NOT NULL,          -- when the worker may try (again)
    claimed_until  timestamptz,                   -- a worker's lease
    scan_status    text,                          -- the furthest scan so far
    last_scan_at   timestamptz,
    polled_at      timestamptz,                   -- when the carrier was last asked for scans
    created_at     timestamptz NOT NULL,
    bought_at      timestamptz,
    voided_at      timestamptz,
    PRIMARY KEY (merchant_id, id),
    UNIQUE (merchant_id, case_id)
);
CREATE UNIQUE INDEX return_labels_by_tracking ON return_labels (carrier_name, tracking_code)
    WHERE tracking_code IS NOT NULL;
CREATE INDEX return_labels_due ON return_labels (available_at) WHERE status IN ('pending', 'void_requested');
CREATE INDEX return_labels_tracked ON return_labels (polled_at) WHERE status = 'bought';

-- Scans already taken in (webhook or poll), so a repeated one changes nothing.
CREATE TABLE carrier_events (
    carrier        text NOT NULL,
    event_id       text NOT NULL,
    tracking_code  text NOT NULL,
    status         text NOT NULL,
    at             timestamptz NOT NULL,
    received_at    timestamptz NOT NULL,
    PRIMARY KEY (carrier, event_id)
);

-- The simulated carrier's own state (it stands for an outside system: only its adapter reads
-- these, and the service's tables never join them), so every process sees one carrier and a
-- bought label stays bought across restarts. Scans are derived from ``bought_at``.
CREATE SEQUENCE simulated_carrier_ids;

CREATE TABLE simulated_carrier_shipments (
    id              text PRIMARY KEY,             -- shp_sim_…
    reference       text NOT NULL,                -- the buyer's (our label id)
    from_address    jsonb NOT NULL,
    to_address      jsonb NOT NULL,
    parcel          jsonb NOT NULL,
    rates           jsonb NOT NULL,
    created_at      timestamptz NOT NULL,
    rate_id         text,                         -- once bought
    tracking_code   text UNIQUE,
    bought_at       timestamptz,
    voided_at       timestamptz
);
CREATE INDEX simulated_carrier_shipments_by_reference ON simulated_carrier_shipments (reference);

-- One row per purchase the carrier charged for: what tests count ("bought once").
CREATE TABLE simulated_carrier_purchases (
    shipment_id  text PRIMARY KEY REFERENCES simulated_carrier_shipments (id),
    reference    text NOT NULL,
    amount       bigint NOT NULL,
    currency     text NOT NULL,
    at           timestamptz NOT NULL
);
