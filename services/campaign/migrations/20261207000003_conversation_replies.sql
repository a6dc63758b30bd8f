-- Replies and email threading (docs/conversations.md): a thread's resolution SLA, and the
-- brand's replies, queued in the agent's transaction and sent by the reply loop (`sending`
-- committed before the SMTP transaction, as journey messages are: at most once).
ALTER TABLE conversations ADD COLUMN resolution_due timestamptz;
ALTER TABLE conversation_messages ADD COLUMN status text NOT NULL DEFAULT 'received'
    CHECK (status IN ('received', 'queued', 'sending', 'sent', 'failed'));
ALTER TABLE conversation_messages ADD COLUMN error text;
ALTER TABLE conversation_messages ADD COLUMN sending_at timestamptz;
CREATE INDEX conversation_messages_queued ON conversation_messages (at)
    WHERE status IN ('queued', 'sending');

-- Email connectors: a provider's inbound webhook posting the raw messages the brand receives.
ALTER TABLE social_connectors DROP CONSTRAINT social_connectors_network_check;
ALTER TABLE social_connectors ADD CONSTRAINT social_connectors_network_check
    CHECK (network IN ('mastodon', 'x', 'email'));
