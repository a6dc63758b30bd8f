-- Addresses no marketing message may reach: unsubscribes, hard bounces, complaints, or added
-- by hand. Kept per channel; the gate refuses them before anything else but consent.
CREATE TABLE suppressions (
    tenant_id text NOT NULL,
    channel text NOT NULL CHECK (channel IN ('email', 'sms', 'push')),
    address text NOT NULL,
    reason text NOT NULL CHECK (reason IN ('unsubscribe', 'hard_bounce', 'complaint', 'soft_bounces', 'manual')),
    created_at timestamptz NOT NULL DEFAULT now(),
    created_by text NOT NULL,
    PRIMARY KEY (tenant_id, channel, address)
);
