-- Hot-profile cache keys that a failed Redis call left possibly stale (a write that did not
-- land, an eviction or tombstone that did not land). A loop in identity repairs them once Redis
-- answers again: a stale copy of a merged or erased customer must not outlive the outage.
CREATE TABLE cache_repairs (
    tenant_id   TEXT        NOT NULL,
    customer_id UUID        NOT NULL,
    tombstone   BOOLEAN     NOT NULL,   -- leave a tombstone (merged away or erased), or only drop the copy
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, customer_id)
);
