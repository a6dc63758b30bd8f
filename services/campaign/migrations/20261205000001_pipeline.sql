-- The sales pipeline (docs/campaign.md, "Leads and opportunities"): each tenant's lead
-- settings, leads with their history, pipelines as data, opportunities with their stage
-- history.

-- Per tenant: disqualify reasons, assignment rules, priority weights and the first-touch SLA
-- (domain::pipeline, checked when saved).
CREATE TABLE lead_settings (
    tenant_id text PRIMARY KEY,
    settings jsonb NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    updated_by text NOT NULL
);

-- Each assignment rule's last pick, for round robin (by the rule's name).
CREATE TABLE assignment_turns (
    tenant_id text NOT NULL,
    rule_name text NOT NULL,
    last_owner text NOT NULL,
    PRIMARY KEY (tenant_id, rule_name)
);

-- Leads: one open lead per customer and source. `origin` keys a lead to what created it (the
-- event id of a qualification, the caller's Idempotency-Key), so a replay creates none.
-- `waiting_since` runs the first-touch SLA until the first touch; `priority` is the score of
-- domain::pipeline::priority as of `priority_at`, refreshed in passes and on every change.
CREATE TABLE leads (
    tenant_id text NOT NULL,
    id uuid NOT NULL,
    customer_id uuid NOT NULL,
    source text NOT NULL CHECK (source IN ('score', 'form', 'survey', 'social', 'journey', 'import', 'api')),
    campaign text,
    status text NOT NULL CHECK (status IN ('new', 'assigned', 'working', 'converted', 'disqualified')),
    owner text,
    disqualify_reason text,
    assigned_by text,
    priority float8 NOT NULL DEFAULT 0,
    priority_at timestamptz NOT NULL,
    waiting_since timestamptz,
    status_since timestamptz NOT NULL,
    opportunity_id uuid,
    origin text,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE UNIQUE INDEX leads_open ON leads (tenant_id, customer_id, source)
    WHERE status NOT IN ('converted', 'disqualified');
CREATE UNIQUE INDEX leads_origin ON leads (tenant_id, origin) WHERE origin IS NOT NULL;
CREATE INDEX leads_queue ON leads (tenant_id, owner, priority DESC, id)
    WHERE status NOT IN ('converted', 'disqualified');
CREATE INDEX leads_customer ON leads (tenant_id, customer_id);
CREATE INDEX leads_page ON leads (tenant_id, id DESC);

-- Every status or owner change of a lead: who, when, why.
CREATE TABLE lead_history (
    tenant_id text NOT NULL,
    lead_id uuid NOT NULL,
    seq bigserial,
    at timestamptz NOT NULL,
    status text NOT NULL,
    owner text,
    reason text,
    actor text NOT NULL,
    PRIMARY KEY (tenant_id, lead_id, seq)
);

-- Pipelines as data: the stages in order, lost reasons, default currency.
CREATE TABLE pipelines (
    tenant_id text NOT NULL,
    id uuid NOT NULL,
    name text NOT NULL,
    definition jsonb NOT NULL,
    archived boolean NOT NULL DEFAULT false,
    version int NOT NULL DEFAULT 1,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    updated_by text NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE UNIQUE INDEX pipelines_name ON pipelines (tenant_id, lower(name)) WHERE NOT archived;

-- Opportunities: where each stands; the amount in the currency named, exact.
CREATE TABLE opportunities (
    tenant_id text NOT NULL,
    id uuid NOT NULL,
    pipeline_id uuid NOT NULL,
    customer_id uuid NOT NULL,
    account text,
    name text NOT NULL,
    amount numeric(18, 2) NOT NULL DEFAULT 0,
    currency text NOT NULL,
    stage text NOT NULL,
    probability smallint NOT NULL CHECK (probability BETWEEN 0 AND 100),
    status text NOT NULL CHECK (status IN ('open', 'won', 'lost')),
    lost_reason text,
    expected_close date,
    owner text,
    lead_id uuid,
    stage_since timestamptz NOT NULL,
    closed_at timestamptz,
    origin text,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, pipeline_id) REFERENCES pipelines (tenant_id, id)
);
CREATE UNIQUE INDEX opportunities_origin ON opportunities (tenant_id, origin) WHERE origin IS NOT NULL;
CREATE INDEX opportunities_pipeline ON opportunities (tenant_id, pipeline_id, stage);
CREATE INDEX opportunities_customer ON opportunities (tenant_id, customer_id);
CREATE INDEX opportunities_page ON opportunities (tenant_id, id DESC);

-- Each stage an opportunity entered, with when it left (velocity: time per stage).
CREATE TABLE opportunity_history (
    tenant_id text NOT NULL,
    opportunity_id uuid NOT NULL,
    seq int NOT NULL,
    stage text NOT NULL,
    entered_at timestamptz NOT NULL,
    left_at timestamptz,
    actor text NOT NULL,
    PRIMARY KEY (tenant_id, opportunity_id, seq)
);
