-- Webhook secret rotation: after POST /admin/v1/webhook-endpoints/rotate-secret the secret that
-- was in force keeps signing deliveries (next to the new one) until previous_secret_expires_at,
-- so the storefront can switch without dropping a delivery.
ALTER TABLE webhook_endpoints ADD COLUMN previous_secret text;
ALTER TABLE webhook_endpoints ADD COLUMN previous_secret_expires_at timestamptz;
ALTER TABLE webhook_endpoints ADD CONSTRAINT webhook_previous_secret_expires
    CHECK ((previous_secret IS NULL) = (previous_secret_expires_at IS NULL));
