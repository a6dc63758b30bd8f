-- Identifiers an event carried that were not attached to its customer, and why (another
-- customer holds the value and a merge was refused, the tenant's cap per kind was reached):
-- shown in the profile's `unattached`, so a missing email is explained instead of silently
-- dropped. No values are kept: the kind, the reason and the customer that holds it.
CREATE TABLE unattached_identifiers (
    tenant_id   TEXT        NOT NULL,
    customer_id UUID        NOT NULL,
    kind        TEXT        NOT NULL,
    held_by     UUID,
    reason      TEXT        NOT NULL,
    event_id    TEXT        NOT NULL,
    at          TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX unattached_identifiers_key
    ON unattached_identifiers (tenant_id, customer_id, kind, coalesce(held_by, '00000000-0000-0000-0000-000000000000'::uuid));
CREATE INDEX unattached_identifiers_held_by ON unattached_identifiers (tenant_id, held_by);
