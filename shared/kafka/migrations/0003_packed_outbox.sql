-- The outbox packs the messages of one write into one row (crm_kafka::outbox::packed): a JSON
-- array of {"topic", "key", "payload", "headers"} objects, kept as text (only the relay reads
-- it; PostgreSQL need not parse it), with its message count for the relay's budget.
--
-- Rows written before this migration become rows of one message each, so nothing unsent is
-- lost. A replica still running the previous release fails its writes to the outbox from here
-- on: its transactions roll back and its messages are redelivered to the upgraded replicas.
ALTER TABLE outbox ADD COLUMN messages TEXT, ADD COLUMN message_count INTEGER;
UPDATE outbox SET
    messages = jsonb_build_array(jsonb_build_object(
        'topic', topic, 'key', message_key, 'payload', payload, 'headers', headers))::text,
    message_count = 1;
ALTER TABLE outbox
    ALTER COLUMN messages SET NOT NULL,
    ALTER COLUMN message_count SET NOT NULL,
    ADD CONSTRAINT outbox_message_count_positive CHECK (message_count > 0),
    DROP COLUMN topic,
    DROP COLUMN message_key,
    DROP COLUMN payload,
    DROP COLUMN headers;

-- lz4 compresses the array about 3x, at a fraction of pglz's cost (a server built without lz4
-- keeps its default).
DO $$
BEGIN
    ALTER TABLE outbox ALTER COLUMN messages SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported OR invalid_parameter_value THEN
    RAISE NOTICE 'lz4 is not available; the outbox keeps the default compression';
END $$;

-- One message a row, for people and tests: what the outbox holds, as it was before packing.
CREATE VIEW outbox_messages AS
SELECT o.id, m.position, m.message->>'topic' AS topic, m.message->>'key' AS message_key,
       m.message->'payload' AS payload, m.message->'headers' AS headers,
       o.created_at, o.sent_at
FROM outbox o
CROSS JOIN LATERAL jsonb_array_elements(o.messages::jsonb) WITH ORDINALITY AS m(message, position);
