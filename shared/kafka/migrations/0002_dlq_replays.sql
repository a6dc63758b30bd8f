-- Dead-lettered messages a part has put back on their source topic (`crm-<part> dlq replay`):
-- a second replay skips them, so replaying is idempotent even before the consumers' dedupe.
CREATE TABLE IF NOT EXISTS dlq_replays (
    dlq_topic   TEXT        NOT NULL,
    partition   INTEGER     NOT NULL,
    dlq_offset  BIGINT      NOT NULL,
    replayed_to TEXT        NOT NULL,
    replayed_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (dlq_topic, partition, dlq_offset)
);
