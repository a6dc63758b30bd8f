-- The delivery loop looks for messages a crash left `sending` on every pass: an index on just
-- those keeps that look from scanning every message ever sent.
CREATE INDEX messages_sending ON messages (sending_at) WHERE status = 'sending';
