-- An import's file as it arrived, in chunks of about 1 MiB: the HTTP call streams the body in
-- and answers as soon as it is stored, and the import runs as a persistent job that any
-- replica can take over from its last checkpoint (`processed`). Deleted when the job ends.
CREATE TABLE import_chunks (
    tenant_id  TEXT    NOT NULL,
    import_id  UUID    NOT NULL,
    seq        INT     NOT NULL,
    data       BYTEA   NOT NULL,
    PRIMARY KEY (tenant_id, import_id, seq)
);

ALTER TABLE import_jobs DROP CONSTRAINT import_jobs_status_check;
ALTER TABLE import_jobs ADD CONSTRAINT import_jobs_status_check
    CHECK (status IN ('receiving', 'queued', 'running', 'deduplicating', 'done', 'failed'));
