-- Campaign follows identity's merges and erasures (docs/events.md): a merged id is an alias of
-- its survivor; an erased id is remembered (without personal data) so that a late message
-- cannot bring its contact back.
CREATE TABLE aliases (
    tenant_id   TEXT NOT NULL,
    merged_id   UUID NOT NULL,
    survivor_id UUID NOT NULL,
    PRIMARY KEY (tenant_id, merged_id)
);
CREATE TABLE erased (
    tenant_id   TEXT        NOT NULL,
    customer_id UUID        NOT NULL,
    erased_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, customer_id)
);
