-- Secrets a deployment generates for itself when the operator configured none (the customer
-- portal's link-signing key when RETURNS_PORTAL_SECRET is unset): stored so every process agrees.
CREATE TABLE deployment_secrets (
    name text PRIMARY KEY,
    value text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
