-- The outbox packs the messages of one write into one row (crm_kafka::outbox::packed): a JSON
-- array of {"topic", "key", "payload", "headers"} objects, kept as text (only the relay reads
-- it; PostgreSQL need not parse it), with its message count for the relay's budget.
--
-- Expand only, as every migration (docs/operations.md): the one-message columns stay, nullable,
-- so that replicas of the previous release, which still write them during a rolling deploy,
-- keep working, and the relay publishes rows of either form in id order. A later migration
-- drops them once no such replica can run.
ALTER TABLE outbox
    ADD COLUMN messages TEXT,
    ADD COLUMN message_count INTEGER,
    ALTER COLUMN topic DROP NOT NULL,
    ALTER COLUMN message_key DROP NOT NULL,
    ALTER COLUMN payload DROP NOT NULL,
    ADD CONSTRAINT outbox_packed_or_single CHECK (
        (messages IS NOT NULL AND message_count IS NOT NULL AND message_count > 0
            AND topic IS NULL AND message_key IS NULL AND payload IS NULL)
        OR (messages IS NULL AND message_count IS NULL
            AND topic IS NOT NULL AND message_key IS NOT NULL AND payload IS NOT NULL));

-- lz4 compresses the array about 3x at a fraction of pglz's cost (scripts/bench/outbox-format);
-- a server built without lz4 keeps its default.
DO $$
BEGIN
    ALTER TABLE outbox ALTER COLUMN messages SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported OR invalid_parameter_value THEN
    RAISE NOTICE 'lz4 is not available; the outbox keeps the default compression';
END $$;

-- One message a row, for people and tests, whichever form holds it.
CREATE VIEW outbox_messages AS
SELECT o.id, m.position, m.message->>'topic' AS topic, m.message->>'key' AS message_key,
       m.message->'payload' AS payload, m.message->'headers' AS headers,
       o.created_at, o.sent_at
FROM outbox o
CROSS JOIN LATERAL jsonb_array_elements(o.messages::jsonb) WITH ORDINALITY AS m(message, position)
WHERE o.messages IS NOT NULL
UNION ALL
SELECT id, 1, topic, message_key, payload, headers, created_at, sent_at
FROM outbox
WHERE messages IS NULL;
