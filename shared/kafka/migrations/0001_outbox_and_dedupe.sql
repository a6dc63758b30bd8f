-- Shared by every part (crm-kafka): the transactional outbox and the record of applied messages.

-- State changes that other parts must hear about, written in the same transaction as the change
-- and published in id order by the relay.
CREATE TABLE IF NOT EXISTS outbox (
    id          BIGSERIAL PRIMARY KEY,
    topic       TEXT        NOT NULL,  -- logical topic name, without the deployment prefix
    message_key TEXT        NOT NULL,
    payload     JSONB       NOT NULL,
    headers     JSONB       NOT NULL DEFAULT '{}'::jsonb,  -- W3C trace context at write time
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    sent_at     TIMESTAMPTZ
);
CREATE INDEX IF NOT EXISTS outbox_unsent ON outbox (id) WHERE sent_at IS NULL;

-- Message ids a consumer has applied; inserted in the effect's transaction, so a redelivered
-- message is recognised and skipped (exactly-once effects over at-least-once delivery).
CREATE TABLE IF NOT EXISTS processed_messages (
    consumer     TEXT        NOT NULL,
    tenant_id    TEXT        NOT NULL,
    message_id   TEXT        NOT NULL,
    processed_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, tenant_id, message_id)
);
