-- Webhook subscriptions (issue 15): endpoints per tenant, the deliveries queued for them from
-- the output topics, and every attempt. docs/webhooks.md explains the states.

CREATE TABLE webhook_endpoints (
    tenant_id             text        NOT NULL REFERENCES tenants (id),
    id                    uuid        NOT NULL,
    url                   text        NOT NULL,
    description           text        NOT NULL DEFAULT '',
    event_types           text[]      NOT NULL,
    -- Signing secrets (`whsec_…`): they must be readable to sign, unlike API keys.
    secret                text        NOT NULL,
    previous_secret       text,
    previous_secret_until timestamptz,
    enabled               boolean     NOT NULL DEFAULT true,
    disabled_reason       text        CHECK (disabled_reason IN ('gone', 'failing', 'manual')),
    disabled_at           timestamptz,
    failing_since         timestamptz,
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id)
);

CREATE TABLE webhook_deliveries (
    tenant_id       text        NOT NULL,
    id              uuid        NOT NULL,
    endpoint_id     uuid        NOT NULL,
    event_id        text        NOT NULL,
    event_type      text        NOT NULL,
    customer_id     uuid,
    -- The exact body sent, so every attempt signs the same bytes.
    payload         text        NOT NULL,
    status          text        NOT NULL DEFAULT 'pending'
                                CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts        integer     NOT NULL DEFAULT 0,
    round_attempts  integer     NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_status     integer,
    last_error      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    delivered_at    timestamptz,
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, endpoint_id, event_id),
    FOREIGN KEY (tenant_id, endpoint_id) REFERENCES webhook_endpoints (tenant_id, id)
        ON DELETE CASCADE
);

CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at)
    WHERE status = 'pending';
CREATE INDEX webhook_deliveries_log ON webhook_deliveries (tenant_id, endpoint_id, created_at DESC);
CREATE INDEX webhook_deliveries_customer ON webhook_deliveries (tenant_id, customer_id)
    WHERE customer_id IS NOT NULL;

CREATE TABLE webhook_attempts (
    tenant_id    text        NOT NULL,
    delivery_id  uuid        NOT NULL,
    n            integer     NOT NULL,
    attempted_at timestamptz NOT NULL DEFAULT now(),
    status_code  integer,
    error        text,
    duration_ms  integer     NOT NULL,
    PRIMARY KEY (tenant_id, delivery_id, n),
    FOREIGN KEY (tenant_id, delivery_id) REFERENCES webhook_deliveries (tenant_id, id)
        ON DELETE CASCADE
);
