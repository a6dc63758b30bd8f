-- Consent per purpose and channel, as an append-only history; the current state of a
-- (purpose, channel) is its latest row by time.
CREATE TABLE consent_events (
    tenant_id    TEXT        NOT NULL,
    customer_id  UUID        NOT NULL,
    purpose      TEXT        NOT NULL,   -- marketing, analytics, profiling, ...
    channel      TEXT        NOT NULL,   -- email, sms, phone, push, post, any
    granted      BOOLEAN     NOT NULL,
    source       TEXT        NOT NULL,   -- the event source, or "api"
    at           TIMESTAMPTZ NOT NULL,   -- when the customer gave or withdrew it
    recorded_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    FOREIGN KEY (tenant_id, customer_id) REFERENCES customers (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX consent_events_by_customer ON consent_events (tenant_id, customer_id, purpose, channel, at DESC);

-- Erasure keeps a tombstone: the customer row with status 'erased', no personal data.
ALTER TABLE customers ADD COLUMN erased_at TIMESTAMPTZ;
