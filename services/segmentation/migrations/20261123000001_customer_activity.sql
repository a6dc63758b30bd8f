-- Per-customer activity aggregates, kept from crm.events.v1.
CREATE TABLE customer_activity (
    tenant_id     TEXT           NOT NULL,
    customer_id   UUID           NOT NULL,
    events_total  BIGINT         NOT NULL DEFAULT 0,
    orders_total  BIGINT         NOT NULL DEFAULT 0,
    revenue_total NUMERIC(20, 4) NOT NULL DEFAULT 0,
    first_seen_at TIMESTAMPTZ    NOT NULL,
    last_seen_at  TIMESTAMPTZ    NOT NULL,
    PRIMARY KEY (tenant_id, customer_id)
);
