-- A send node may choose what quiet hours do to its message (`defer` or `drop`), overriding the
-- tenant's contact policy; kept on the row for a message whose gate runs at delivery.
ALTER TABLE messages ADD COLUMN quiet_policy text CHECK (quiet_policy IN ('defer', 'drop'));
