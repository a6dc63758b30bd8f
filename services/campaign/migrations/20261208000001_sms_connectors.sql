-- SMS connectors (docs/conversations.md): the SMS provider's inbound webhook posting the text
-- messages the brand's number receives; each sender's messages make one SMS thread.
ALTER TABLE social_connectors DROP CONSTRAINT social_connectors_network_check;
ALTER TABLE social_connectors ADD CONSTRAINT social_connectors_network_check
    CHECK (network IN ('mastodon', 'x', 'email', 'sms'));
