-- Every write through loyalty's API, keyed by the caller's Idempotency-Key and recorded in the
-- write's own transaction: a retried request (the gateway's lease ran out, an upstream timeout,
-- a client calling loyalty again) gets the stored answer instead of a second effect.
CREATE TABLE api_writes (
    tenant_id   TEXT        NOT NULL,
    key         TEXT        NOT NULL,
    request     TEXT        NOT NULL,  -- sha256 of the operation, its path and its body
    status      SMALLINT    NOT NULL,
    body        JSONB       NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, key)
);
CREATE INDEX api_writes_age ON api_writes (created_at);
