-- Accounts (B2B): what Segment's `group` calls name. An account is the tenant's `group_id`
-- with the traits its group calls set (latest call wins per key); a customer belongs to the
-- accounts its group calls named. Memberships are rows owned by the customer that recorded
-- them (`owner_id`), like the timeline: they follow merges and unmerges, and go with erasure.
CREATE TABLE accounts (
    tenant_id   text        NOT NULL,
    group_id    text        NOT NULL CHECK (length(group_id) BETWEEN 1 AND 256),
    traits      jsonb       NOT NULL DEFAULT '{}'::jsonb,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, group_id)
);

CREATE TABLE account_members (
    tenant_id    text        NOT NULL,
    group_id     text        NOT NULL,
    -- Who the membership belongs to now (the survivor after a merge).
    customer_id  uuid        NOT NULL,
    -- Who recorded it (the customer the group call resolved to).
    owner_id     uuid        NOT NULL,
    joined_at    timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, group_id, owner_id),
    FOREIGN KEY (tenant_id, group_id) REFERENCES accounts (tenant_id, group_id) ON DELETE CASCADE
);
CREATE INDEX account_members_customer ON account_members (tenant_id, customer_id);
