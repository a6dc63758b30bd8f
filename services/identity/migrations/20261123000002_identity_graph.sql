-- The identity graph: merges with their evidence, aliases, per-trait provenance, per-tenant
-- settings and the review queue.

-- A merged customer stays as an alias of its survivor; reading it answers the survivor.
ALTER TABLE customers
    ADD COLUMN status        TEXT  NOT NULL DEFAULT 'active'
        CHECK (status IN ('active', 'merged', 'erased')),
    ADD COLUMN merged_into   UUID,
    -- Per trait: {"source": ..., "at": ...}, for survivorship rules.
    ADD COLUMN trait_sources JSONB NOT NULL DEFAULT '{}'::jsonb;
CREATE INDEX customers_merged_into ON customers (tenant_id, merged_into) WHERE merged_into IS NOT NULL;

-- One row per merge, undone or not: who survived, who was merged, why, and what the merged
-- customer held (so an unmerge can split it again).
CREATE TABLE merges (
    tenant_id    TEXT        NOT NULL,
    id           UUID        NOT NULL,
    survivor_id  UUID        NOT NULL,
    merged_id    UUID        NOT NULL,
    kind         TEXT        NOT NULL CHECK (kind IN ('deterministic', 'probabilistic', 'manual')),
    evidence     JSONB       NOT NULL,
    snapshot     JSONB       NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    undone_at    TIMESTAMPTZ,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX merges_by_customer ON merges (tenant_id, survivor_id);
CREATE INDEX merges_by_merged ON merges (tenant_id, merged_id);

-- Pairs of customers that may be one person but were not merged automatically.
CREATE TABLE match_reviews (
    tenant_id    TEXT        NOT NULL,
    id           UUID        NOT NULL,
    customer_a   UUID        NOT NULL,
    customer_b   UUID        NOT NULL,
    reason       TEXT        NOT NULL,   -- different_user_id, identifier_cap, probabilistic
    probability  DOUBLE PRECISION,
    evidence     JSONB       NOT NULL,
    status       TEXT        NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'accepted', 'rejected')),
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    decided_at   TIMESTAMPTZ,
    PRIMARY KEY (tenant_id, id)
);
-- One open review per pair (stored with customer_a < customer_b).
CREATE UNIQUE INDEX match_reviews_open_pair ON match_reviews (tenant_id, customer_a, customer_b)
    WHERE status = 'pending';

-- Per-tenant identity settings (JSON, validated by the service; absent means defaults).
CREATE TABLE identity_settings (
    tenant_id  TEXT        PRIMARY KEY,
    settings   JSONB       NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Identifiers that failed standardisation, kept as received with their quality flag:
-- {"email": {"value": "ana@", "quality": "invalid"}}.
ALTER TABLE customers ADD COLUMN quality JSONB NOT NULL DEFAULT '{}'::jsonb;

-- The data-quality report: per tenant and field, how many values arrived and how they fared.
CREATE TABLE data_quality (
    tenant_id    TEXT   NOT NULL,
    field        TEXT   NOT NULL,
    present      BIGINT NOT NULL DEFAULT 0,
    valid        BIGINT NOT NULL DEFAULT 0,
    invalid      BIGINT NOT NULL DEFAULT 0,
    standardised BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, field)
);
