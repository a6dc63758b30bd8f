-- Journey instances (one customer's way through one journey version), their pending timer,
-- and the steps already applied (so a retried step applies nothing twice).
CREATE TABLE journey_instances (
    tenant_id text NOT NULL,
    id uuid NOT NULL,
    journey_id uuid NOT NULL,
    version int NOT NULL,
    customer_id uuid NOT NULL,
    -- The customer id, or for event triggers with an entry key, that property's value.
    entry_key text NOT NULL,
    status text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'exited')),
    node text NOT NULL,
    arm text,
    entered_at timestamptz NOT NULL,
    exited_at timestamptz,
    exit_reason text,
    PRIMARY KEY (tenant_id, id)
);
-- One live instance per journey and entry key.
CREATE UNIQUE INDEX journey_instances_live
    ON journey_instances (tenant_id, journey_id, entry_key) WHERE status = 'active';
CREATE INDEX journey_instances_customer ON journey_instances (tenant_id, customer_id);

-- At most one pending timer per instance: a wait's end, or a wait-for's deadline.
CREATE TABLE journey_timers (
    tenant_id text NOT NULL,
    instance_id uuid NOT NULL,
    due_at timestamptz NOT NULL,
    node text NOT NULL,
    PRIMARY KEY (tenant_id, instance_id),
    FOREIGN KEY (tenant_id, instance_id) REFERENCES journey_instances (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX journey_timers_due ON journey_timers (due_at);

CREATE TABLE journey_steps (
    tenant_id text NOT NULL,
    instance_id uuid NOT NULL,
    node text NOT NULL,
    occurrence int NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, instance_id, node, occurrence),
    FOREIGN KEY (tenant_id, instance_id) REFERENCES journey_instances (tenant_id, id) ON DELETE CASCADE
);
