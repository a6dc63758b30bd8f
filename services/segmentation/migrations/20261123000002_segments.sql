-- Issue 4: aggregates per event name, segments and memberships, stages, scores, settings.

-- One row per customer: what rules read besides events, and where its stage and scores stand.
ALTER TABLE customer_activity
    ALTER COLUMN first_seen_at DROP NOT NULL,
    ALTER COLUMN last_seen_at DROP NOT NULL,
    ADD COLUMN traits             JSONB   NOT NULL DEFAULT '{}',
    ADD COLUMN loyalty_tier       TEXT,
    ADD COLUMN last_order_at      TIMESTAMPTZ,
    ADD COLUMN last_order_value   FLOAT8  NOT NULL DEFAULT 0,
    ADD COLUMN categories         TEXT[]  NOT NULL DEFAULT '{}',
    ADD COLUMN rfm_r              SMALLINT,
    ADD COLUMN rfm_f              SMALLINT,
    ADD COLUMN rfm_m              SMALLINT,
    ADD COLUMN rfm_group          TEXT,
    ADD COLUMN probability_alive  FLOAT8,
    ADD COLUMN expected_purchases FLOAT8,
    ADD COLUMN lifetime_value     FLOAT8,
    ADD COLUMN lead_score         FLOAT8  NOT NULL DEFAULT 0,
    ADD COLUMN lead_qualified     BOOLEAN NOT NULL DEFAULT FALSE,
    ADD COLUMN stage              TEXT,
    ADD COLUMN stage_since        TIMESTAMPTZ,
    -- When time alone may change a segment, stage or score of this customer.
    ADD COLUMN recheck_at         TIMESTAMPTZ;
CREATE INDEX customer_activity_due ON customer_activity (recheck_at) WHERE recheck_at IS NOT NULL;

-- Counts and sums per event name and day ("over time"); kept without limit.
CREATE TABLE daily_activity (
    tenant_id   TEXT   NOT NULL,
    customer_id UUID   NOT NULL,
    name        TEXT   NOT NULL,
    day         DATE   NOT NULL,
    events      BIGINT NOT NULL,
    total       FLOAT8 NOT NULL,
    PRIMARY KEY (tenant_id, customer_id, name, day)
);

-- Events with their properties, for windowed conditions with property filters and lead
-- scoring; purged after the tenant's retention.
CREATE TABLE customer_events (
    tenant_id   TEXT        NOT NULL,
    customer_id UUID        NOT NULL,
    event_id    TEXT        NOT NULL,
    name        TEXT        NOT NULL,
    occurred_at TIMESTAMPTZ NOT NULL,
    properties  JSONB       NOT NULL,
    PRIMARY KEY (tenant_id, customer_id, event_id)
);
CREATE INDEX customer_events_by_time ON customer_events (tenant_id, occurred_at);

CREATE TABLE segments (
    tenant_id   TEXT        NOT NULL,
    id          UUID        NOT NULL,
    name        TEXT        NOT NULL,
    description TEXT        NOT NULL DEFAULT '',
    rule        JSONB       NOT NULL,
    version     INT         NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_by  TEXT        NOT NULL,
    deleted_at  TIMESTAMPTZ,
    PRIMARY KEY (tenant_id, id)
);
CREATE UNIQUE INDEX segments_name ON segments (tenant_id, lower(name)) WHERE deleted_at IS NULL;

-- Every saved version: who changed what, when.
CREATE TABLE segment_versions (
    tenant_id   TEXT        NOT NULL,
    segment_id  UUID        NOT NULL,
    version     INT         NOT NULL,
    change      TEXT        NOT NULL,   -- created | updated | deleted
    name        TEXT        NOT NULL,
    description TEXT        NOT NULL,
    rule        JSONB       NOT NULL,
    changed_by  TEXT        NOT NULL,
    changed_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, segment_id, version)
);

-- Bumped by every change of a tenant's segments or settings; evaluators reload on a change.
CREATE TABLE tenant_generations (
    tenant_id  TEXT   PRIMARY KEY,
    generation BIGINT NOT NULL
);

CREATE TABLE memberships (
    tenant_id   TEXT        NOT NULL,
    segment_id  UUID        NOT NULL,
    customer_id UUID        NOT NULL,
    entered_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (tenant_id, segment_id, customer_id)
);
CREATE INDEX memberships_by_customer ON memberships (tenant_id, customer_id);

CREATE TABLE stage_transitions (
    id          BIGSERIAL   PRIMARY KEY,
    tenant_id   TEXT        NOT NULL,
    customer_id UUID        NOT NULL,
    from_stage  TEXT,
    to_stage    TEXT        NOT NULL,
    at          TIMESTAMPTZ NOT NULL
);
CREATE INDEX stage_transitions_by_time ON stage_transitions (tenant_id, at);
CREATE INDEX stage_transitions_by_customer ON stage_transitions (tenant_id, customer_id);

CREATE TABLE tenant_settings (
    tenant_id  TEXT        PRIMARY KEY,
    settings   JSONB       NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_by TEXT        NOT NULL
);

-- The tenant's last value-model fit.
CREATE TABLE value_models (
    tenant_id  TEXT        PRIMARY KEY,
    model      JSONB       NOT NULL,
    customers  BIGINT      NOT NULL,
    fitted_at  TIMESTAMPTZ NOT NULL
);

-- Scoring runs (RFM and value), scheduled or on demand.
CREATE TABLE scoring_runs (
    id          BIGSERIAL   PRIMARY KEY,
    tenant_id   TEXT        NOT NULL,
    trigger     TEXT        NOT NULL,
    started_at  TIMESTAMPTZ NOT NULL,
    finished_at TIMESTAMPTZ,
    customers   BIGINT,
    changed     BIGINT,
    error       TEXT
);
CREATE INDEX scoring_runs_by_tenant ON scoring_runs (tenant_id, id DESC);

-- Merged ids answer their survivor; erased ids are never recreated.
CREATE TABLE aliases (
    tenant_id   TEXT NOT NULL,
    merged_id   UUID NOT NULL,
    survivor_id UUID NOT NULL,
    PRIMARY KEY (tenant_id, merged_id)
);
CREATE TABLE erased (
    tenant_id   TEXT        NOT NULL,
    customer_id UUID        NOT NULL,
    erased_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, customer_id)
);
