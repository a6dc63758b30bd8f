-- Social listening (docs/conversations.md): a tenant's connectors to social networks, each
-- with the network's signing secrets (write-only; two during a rotation), the brand's account
-- on it, the terms it listens for, and its health: when it last received a call, the last
-- failure and how many calls in a row failed (a silently dead channel is the anchors' most
-- common complaint, so the health is kept with every call).
CREATE TABLE social_connectors (
    tenant_id text NOT NULL,
    id uuid NOT NULL,
    name text NOT NULL,
    network text NOT NULL CHECK (network IN ('mastodon', 'x')),
    account text NOT NULL,
    tracked jsonb NOT NULL,
    secrets text[] NOT NULL,
    enabled boolean NOT NULL DEFAULT true,
    received bigint NOT NULL DEFAULT 0,
    mentions bigint NOT NULL DEFAULT 0,
    last_received_at timestamptz,
    last_failure text,
    last_failure_at timestamptz,
    failures_in_row int NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id)
);
CREATE UNIQUE INDEX social_connectors_name ON social_connectors (tenant_id, lower(name));
