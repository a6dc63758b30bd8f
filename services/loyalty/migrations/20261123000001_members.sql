-- Programme members, enrolled when first seen on crm.events.v1.
CREATE TABLE members (
    tenant_id        TEXT        NOT NULL,
    customer_id      UUID        NOT NULL,
    enrolled_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    orders_seen      BIGINT      NOT NULL DEFAULT 0,
    last_activity_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (tenant_id, customer_id)
);
