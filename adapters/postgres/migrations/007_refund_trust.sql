-- Refunds you can trust: single-use retries, a gateway account per merchant, claims that a live
-- worker renews (so a dead worker's refunds are taken over within seconds), lookups by account.

-- A failed or canceled refund is paid again at most once: retried_by names the refund that did.
ALTER TABLE refunds ADD COLUMN retried_by text;
-- Refunds retried before this column existed: the next attempt on the same case is their retry.
UPDATE refunds AS failed
   SET retried_by = (SELECT next.id FROM refunds AS next
                      WHERE next.merchant_id = failed.merchant_id AND next.case_id = failed.case_id
                        AND next.attempt = failed.attempt + 1
                      ORDER BY next.created_at LIMIT 1)
 WHERE failed.status IN ('failed', 'canceled');

-- The worker process holding a claim; only it renews the lease while its gateway call runs.
ALTER TABLE refunds ADD COLUMN claimed_by text;

-- Webhooks and polls find a refund by (gateway, account, id) before the merchant is known.
CREATE INDEX refunds_by_our_id ON refunds (id);

-- A gateway account belongs to one merchant. Accounts that several merchants had bound are
-- unbound on all of them (an operator binds each again with `returns gateway-account set`):
-- refunds of an unbound merchant fail at the gateway rather than land on another's account.
UPDATE merchants SET gateway_account = NULL
 WHERE gateway_account IN (SELECT gateway_account FROM merchants WHERE gateway_account IS NOT NULL
                            GROUP BY gateway_account HAVING count(*) > 1);
CREATE UNIQUE INDEX merchants_by_gateway_account ON merchants (gateway_account) WHERE gateway_account IS NOT NULL;
