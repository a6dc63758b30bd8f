-- Replies on the networks (docs/conversations.md, "Replies"): the network's API address and
-- the brand account's access token (write-only) a connector posts replies with.
ALTER TABLE social_connectors ADD COLUMN api_url text;
ALTER TABLE social_connectors ADD COLUMN api_token text;
