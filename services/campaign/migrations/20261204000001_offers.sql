-- Personalize (docs/campaign.md, "Personalize"): the offer catalogue, the decisions made and
-- the outcomes reported, and what arbitration counts (caps, budgets, propensities).

-- Decision-time facts the consumer mirrors besides those journeys read: the lead score (from
-- `lead.qualified` / `lead.unqualified`) and the RFM scores (from `rfm.changed`).
ALTER TABLE contacts ADD COLUMN lead_score float8;
ALTER TABLE contacts ADD COLUMN rfm jsonb;

-- The catalogue: each offer's definition as written (checked when saved by
-- domain::offers::catalogue; eligibility is a rule of crm-rules restricted to decision-time
-- nodes), its name and status as columns for the unique name and the live list.
CREATE TABLE offers (
    tenant_id text NOT NULL,
    id uuid NOT NULL,
    name text NOT NULL,
    status text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'paused', 'archived')),
    definition jsonb NOT NULL,
    version int NOT NULL DEFAULT 1,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    updated_by text NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE UNIQUE INDEX offers_name ON offers (tenant_id, lower(name)) WHERE status <> 'archived';

-- Per offer: impressions and acceptances by every customer (global cap), spent budget.
CREATE TABLE offer_totals (
    tenant_id text NOT NULL,
    offer_id uuid NOT NULL,
    impressions bigint NOT NULL DEFAULT 0,
    accepts bigint NOT NULL DEFAULT 0,
    spent float8 NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, offer_id)
);

-- The propensity model's evidence, per offer and cohort (the customer's lifecycle stage when
-- the decision was made, `none` without one): impressions and acceptances.
CREATE TABLE offer_stats (
    tenant_id text NOT NULL,
    offer_id uuid NOT NULL,
    cohort text NOT NULL,
    shown bigint NOT NULL DEFAULT 0,
    accepted bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, offer_id, cohort)
);

-- Every decision answered: who, where, what was offered and why, until when it holds.
CREATE TABLE decisions (
    tenant_id text NOT NULL,
    id uuid NOT NULL,
    customer_id uuid NOT NULL,
    placement text NOT NULL,
    context jsonb NOT NULL DEFAULT '{}'::jsonb,
    cohort text NOT NULL,
    control boolean NOT NULL,
    offers jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX decisions_customer ON decisions (tenant_id, customer_id, created_at DESC);

-- Outcomes of a decision's offers, once each per kind: a repeated report changes nothing.
CREATE TABLE offer_outcomes (
    tenant_id text NOT NULL,
    decision_id uuid NOT NULL,
    offer_id uuid NOT NULL,
    kind text NOT NULL CHECK (kind IN ('impression', 'click', 'accept', 'reject')),
    customer_id uuid NOT NULL,
    source text NOT NULL,
    at timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, decision_id, offer_id, kind)
);
CREATE INDEX offer_outcomes_customer ON offer_outcomes (tenant_id, customer_id, offer_id, at);

-- Per tenant: arbitration (exploration, suppression), the control group, a decision's TTL.
CREATE TABLE decision_settings (
    tenant_id text PRIMARY KEY,
    settings jsonb NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    updated_by text NOT NULL
);

-- A decision names its customer by id or by any identifier the mirror holds.
CREATE INDEX contacts_user_id ON contacts (tenant_id, user_id) WHERE user_id IS NOT NULL;
CREATE INDEX contacts_anonymous_id ON contacts (tenant_id, anonymous_id) WHERE anonymous_id IS NOT NULL;
CREATE INDEX contacts_email ON contacts (tenant_id, lower(email)) WHERE email IS NOT NULL;
