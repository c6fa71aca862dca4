-- A payment belongs to one merchant (outside review of #23): merchants without a gateway account
-- of their own share the platform's, where one merchant's order could name another's payment
-- (its PaymentIntent id) and have it refunded. On a gateway and gateway account, a payment
-- reference is owned by the first merchant whose order registers it (service/refunds.py,
-- ``claim_payment``); another merchant's order naming it is refused, and so is a refund of it.
CREATE TABLE payment_owners (
    gateway     text NOT NULL,  -- the gateway refunds are made through, as the service names it
    account     text NOT NULL,  -- the merchant's gateway account; '' for the platform's own
    reference   text NOT NULL,  -- e.g. the Stripe PaymentIntent id
    merchant_id text NOT NULL REFERENCES merchants (id),
    created_at  timestamptz NOT NULL,
    PRIMARY KEY (gateway, account, reference)
);
-- A reconciliation reads the merchant's own payments among those the gateway lists.
CREATE INDEX payment_owners_by_merchant ON payment_owners (merchant_id, gateway, account);

-- The payments of the orders stored so far, on the account their merchant has now, each owned by
-- the merchant whose order named it first. Refunds go through the gateway the service is
-- configured with, not the one the order's text names, so each payment is owned on every
-- gateway this service can pay through (adapters/gateways: ``stripe``, ``simulated``).
INSERT INTO payment_owners (gateway, account, reference, merchant_id, created_at)
SELECT gateway.name, COALESCE(m.gateway_account, ''), o.doc->'payment'->>'reference', o.merchant_id, o.created_at
  FROM orders o
  JOIN merchants m ON m.id = o.merchant_id
 CROSS JOIN (VALUES ('stripe'), ('simulated')) AS gateway (name)
 ORDER BY o.created_at, o.merchant_id, o.order_id
    ON CONFLICT DO NOTHING;
