-- Idempotency keys of write requests (Stripe's semantics): the first request's response is
-- stored and replayed byte for byte; the same key with other parameters is refused.
CREATE TABLE idempotency_keys (
    tenant_id    TEXT        NOT NULL,
    key          TEXT        NOT NULL,
    fingerprint  TEXT        NOT NULL,   -- sha256 of method, path and body
    status       SMALLINT,               -- NULL while the first request is in flight
    content_type TEXT,
    body         BYTEA,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, key)
);
CREATE INDEX idempotency_keys_age ON idempotency_keys (created_at);
