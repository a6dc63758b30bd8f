-- Import jobs: status, counts, the per-row error report and the clean-up that ended the job.
CREATE TABLE import_jobs (
    tenant_id    TEXT        NOT NULL,
    id           UUID        NOT NULL,
    format       TEXT        NOT NULL,
    status       TEXT        NOT NULL CHECK (status IN ('running', 'deduplicating', 'done', 'failed')),
    total_rows   BIGINT      NOT NULL DEFAULT 0,
    processed    BIGINT      NOT NULL DEFAULT 0,
    imported     BIGINT      NOT NULL DEFAULT 0,   -- rows applied
    unchanged    BIGINT      NOT NULL DEFAULT 0,   -- rows already imported before
    failed       BIGINT      NOT NULL DEFAULT 0,   -- rows in the error report
    errors       JSONB       NOT NULL DEFAULT '[]'::jsonb,   -- the first 1,000 row errors
    cleanup      JSONB,
    failure      TEXT,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    finished_at  TIMESTAMPTZ,
    PRIMARY KEY (tenant_id, id)
);
