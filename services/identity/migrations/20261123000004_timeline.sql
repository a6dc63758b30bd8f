-- Every event resolved to a customer, in order: the customer's timeline. Rows follow merges
-- (customer_id moves to the survivor) and come back on unmerge (owner_id is the customer the
-- event first resolved to). Rows older than the tenant's retention are purged.
CREATE TABLE timeline (
    tenant_id    TEXT        NOT NULL,
    customer_id  UUID        NOT NULL,
    owner_id     UUID        NOT NULL,
    event_id     TEXT        NOT NULL,
    kind         TEXT        NOT NULL,
    name         TEXT,
    source       TEXT        NOT NULL,
    occurred_at  TIMESTAMPTZ NOT NULL,
    properties   JSONB       NOT NULL DEFAULT '{}'::jsonb,
    PRIMARY KEY (tenant_id, event_id)
);
CREATE INDEX timeline_by_customer ON timeline (tenant_id, customer_id, occurred_at DESC, event_id DESC);
CREATE INDEX timeline_by_age ON timeline (tenant_id, occurred_at);
