-- Conversations (docs/conversations.md): threads with a contact on one channel, with their
-- status, priority, assignee, since when the contact waits for an answer, and the first-reply
-- SLA's due time. A social contact is known by its network and handle (identity resolves it
-- to a customer later); one open thread per contact and channel.
CREATE TABLE conversations (
    tenant_id text NOT NULL,
    id uuid NOT NULL,
    channel text NOT NULL,
    contact text NOT NULL,
    status text NOT NULL CHECK (status IN ('open', 'pending', 'snoozed', 'resolved')),
    priority text NOT NULL CHECK (priority IN ('low', 'normal', 'high', 'urgent')),
    assignee text,
    subject text,
    waiting_since timestamptz,
    first_reply_due timestamptz,
    first_reply_at timestamptz,
    snoozed_until timestamptz,
    resolved_at timestamptz,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE UNIQUE INDEX conversations_open ON conversations (tenant_id, channel, contact)
    WHERE status <> 'resolved';
CREATE INDEX conversations_queue ON conversations (tenant_id, status, id);

-- The messages of a thread, in and out; an inbound message is keyed by its id on the channel,
-- so a retried delivery adds nothing.
CREATE TABLE conversation_messages (
    tenant_id text NOT NULL,
    conversation_id uuid NOT NULL,
    id uuid NOT NULL,
    direction text NOT NULL CHECK (direction IN ('in', 'out')),
    external_id text,
    author text,
    text text NOT NULL,
    properties jsonb NOT NULL DEFAULT '{}',
    at timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, conversation_id, id),
    FOREIGN KEY (tenant_id, conversation_id) REFERENCES conversations (tenant_id, id) ON DELETE CASCADE
);
CREATE UNIQUE INDEX conversation_messages_external ON conversation_messages (tenant_id, external_id)
    WHERE external_id IS NOT NULL;
