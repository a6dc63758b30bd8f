-- Identity's customers and the identifiers that point at them.

CREATE TABLE customers (
    tenant_id     TEXT        NOT NULL,
    id            UUID        NOT NULL,
    traits        JSONB       NOT NULL DEFAULT '{}'::jsonb,
    event_count   BIGINT      NOT NULL DEFAULT 0,
    version       BIGINT      NOT NULL DEFAULT 0,   -- bumped by every applied event
    first_seen_at TIMESTAMPTZ NOT NULL,
    last_seen_at  TIMESTAMPTZ NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id)
);

-- One identifier (kind, value) belongs to at most one customer of a tenant.
-- kind: user_id, anonymous_id, email, phone, or handle:<network>.
CREATE TABLE identifiers (
    tenant_id     TEXT        NOT NULL,
    kind          TEXT        NOT NULL,
    value         TEXT        NOT NULL,
    customer_id   UUID        NOT NULL,
    first_seen_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, kind, value),
    FOREIGN KEY (tenant_id, customer_id) REFERENCES customers (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX identifiers_by_customer ON identifiers (tenant_id, customer_id);
