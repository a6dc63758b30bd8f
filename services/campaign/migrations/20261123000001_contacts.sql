-- Customers campaigns can reach: email from profile changes, activity from resolved events.
CREATE TABLE contacts (
    tenant_id     TEXT        NOT NULL,
    customer_id   UUID        NOT NULL,
    email         TEXT,
    events_seen   BIGINT      NOT NULL DEFAULT 0,
    last_event_at TIMESTAMPTZ,
    updated_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, customer_id)
);
