-- Shared by every part (crm-service): long-running work (model fits, scoring runs, clean-ups,
-- imports) as persistent jobs. A replica claims one with FOR UPDATE SKIP LOCKED and holds a
-- lease it renews while working; when the holder dies, the lease runs out and another replica
-- takes the job over. Status and progress are read through the API.
CREATE TABLE IF NOT EXISTS jobs (
    id          BIGSERIAL   PRIMARY KEY,
    tenant_id   TEXT        NOT NULL,
    kind        TEXT        NOT NULL,
    params      JSONB       NOT NULL DEFAULT '{}'::jsonb,
    status      TEXT        NOT NULL DEFAULT 'queued'
                CHECK (status IN ('queued', 'running', 'succeeded', 'failed')),
    progress    JSONB,
    result      JSONB,
    error       TEXT,
    attempts    INTEGER     NOT NULL DEFAULT 0,
    lease_owner TEXT,
    lease_until TIMESTAMPTZ,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    started_at  TIMESTAMPTZ,
    finished_at TIMESTAMPTZ
);
CREATE INDEX IF NOT EXISTS jobs_open ON jobs (kind, id) WHERE status IN ('queued', 'running');
CREATE INDEX IF NOT EXISTS jobs_by_tenant ON jobs (tenant_id, id DESC);
