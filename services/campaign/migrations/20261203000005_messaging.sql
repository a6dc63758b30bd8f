-- What journeys read about a customer when a node runs, mirrored from the topics: identifiers
-- (for set_trait and add_points events), phone, consent per purpose and channel, segment
-- memberships, lifecycle stage and loyalty tier.
ALTER TABLE contacts ADD COLUMN user_id text;
ALTER TABLE contacts ADD COLUMN anonymous_id text;
ALTER TABLE contacts ADD COLUMN phone text;
-- {"marketing:email": {"granted": true, "at": "..."}}; the newest change per key wins.
ALTER TABLE contacts ADD COLUMN consents jsonb NOT NULL DEFAULT '{}'::jsonb;
ALTER TABLE contacts ADD COLUMN segments uuid[] NOT NULL DEFAULT '{}';
ALTER TABLE contacts ADD COLUMN stage text;
ALTER TABLE contacts ADD COLUMN tier text;

-- Event names an instance has seen since it entered (branches on `event_seen`), and when it
-- reached the journey's goal (counted in every arm and in the holdout).
ALTER TABLE journey_instances ADD COLUMN seen text[] NOT NULL DEFAULT '{}';
ALTER TABLE journey_instances ADD COLUMN goal_at timestamptz;
ALTER TABLE journey_instances ADD COLUMN held_out boolean NOT NULL DEFAULT false;

-- Templates: subject, HTML and text parts, checked when saved.
CREATE TABLE templates (
    tenant_id text NOT NULL,
    key text NOT NULL,
    channel text NOT NULL CHECK (channel IN ('email', 'sms', 'push')),
    -- Frequency caps count by type; consent is asked for this purpose.
    message_type text NOT NULL DEFAULT 'marketing',
    purpose text NOT NULL DEFAULT 'marketing',
    subject text NOT NULL,
    html text,
    text text,
    version int NOT NULL DEFAULT 1,
    updated_at timestamptz NOT NULL DEFAULT now(),
    updated_by text NOT NULL,
    PRIMARY KEY (tenant_id, key)
);

-- Channels: per-tenant sender settings (email), provider settings (sms, push) and webhook
-- endpoints with their signing secrets (several during a rotation).
CREATE TABLE channels (
    tenant_id text NOT NULL,
    key text NOT NULL,
    kind text NOT NULL CHECK (kind IN ('email', 'sms', 'push', 'webhook')),
    settings jsonb NOT NULL,
    secrets text[] NOT NULL DEFAULT '{}',
    disabled_at timestamptz,
    disabled_reason text,
    updated_at timestamptz NOT NULL DEFAULT now(),
    updated_by text NOT NULL,
    PRIMARY KEY (tenant_id, key)
);

-- Contact pressure per tenant: frequency caps, quiet hours, the global control group.
CREATE TABLE contact_policies (
    tenant_id text PRIMARY KEY,
    policy jsonb NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    updated_by text NOT NULL
);

-- Every message a journey sends or skips, keyed by its step: one row per (instance, node,
-- occurrence), so a retried step makes no second message. `queued` rows are sent by the
-- delivery loop once `not_before` has passed; `sending` marks the one SMTP (or HTTP)
-- transaction in flight: a row left `sending` by a crash is not sent again (at most once).
CREATE TABLE messages (
    tenant_id text NOT NULL,
    id uuid NOT NULL,
    send_key text NOT NULL,
    customer_id uuid NOT NULL,
    journey_id uuid,
    instance_id uuid,
    node text,
    channel text NOT NULL,
    template text,
    message_type text NOT NULL DEFAULT 'marketing',
    transactional boolean NOT NULL DEFAULT false,
    priority int NOT NULL DEFAULT 0,
    status text NOT NULL CHECK (status IN ('queued', 'sending', 'sent', 'skipped', 'failed',
        'delivered', 'opened', 'clicked', 'soft_bounced', 'bounced', 'complained')),
    skip_reason text,
    address text,
    subject text,
    -- Links the message contained (a click redirects only to these).
    links text[] NOT NULL DEFAULT '{}',
    provider_id text,
    attempts int NOT NULL DEFAULT 0,
    not_before timestamptz NOT NULL DEFAULT now(),
    created_at timestamptz NOT NULL DEFAULT now(),
    sending_at timestamptz,
    sent_at timestamptz,
    opened_at timestamptz,
    clicked_at timestamptz,
    last_error text,
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, send_key)
);
CREATE INDEX messages_due ON messages (not_before) WHERE status = 'queued';
CREATE INDEX messages_customer ON messages (tenant_id, customer_id, created_at);
CREATE INDEX messages_instance ON messages (tenant_id, instance_id);
