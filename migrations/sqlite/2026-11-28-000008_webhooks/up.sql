-- Webhook subscriptions: a projection of webhook.* ledger entries.
CREATE TABLE webhooks (
    id TEXT PRIMARY KEY NOT NULL,
    url TEXT NOT NULL,
    -- JSON array of change kinds.
    kinds TEXT NOT NULL,
    -- SHA-256 of the signing secret (the secret itself is kept in webhook_secrets, not the ledger).
    secret_sha256 TEXT NOT NULL,
    -- Changes after this seq are delivered (the subscription's own entry).
    seq BIGINT NOT NULL,
    created_by TEXT NOT NULL,
    at BIGINT NOT NULL,
    deleted_seq BIGINT
);

-- The signing secrets, beside the ledger (written with the subscription, never replayed).
CREATE TABLE webhook_secrets (
    id TEXT PRIMARY KEY NOT NULL,
    secret TEXT NOT NULL
);

-- How far each subscription's deliveries got (the last change acknowledged): operational, not in
-- the ledger. Who serves it and its failures are in leases (key webhook:<id>).
CREATE TABLE webhook_cursors (
    id TEXT PRIMARY KEY NOT NULL,
    delivered_seq BIGINT NOT NULL
);

-- Each delivery tried: operational.
CREATE TABLE webhook_deliveries (
    webhook TEXT NOT NULL,
    seq BIGINT NOT NULL,
    kind TEXT NOT NULL,
    tries INTEGER NOT NULL,
    -- delivered, or failing (tried, to be tried again).
    state TEXT NOT NULL CHECK (state IN ('delivered', 'failing')),
    http_status INTEGER,
    error TEXT,
    at BIGINT NOT NULL,
    PRIMARY KEY (webhook, seq)
);
