-- Shared by every part (crm-service): one row per periodic task. A replica runs a tick only
-- after taking the row (next_run_at has come and no live run holds it), so several replicas
-- run each tick once, and a restart neither skips nor repeats the schedule.
CREATE TABLE IF NOT EXISTS schedules (
    name          TEXT        PRIMARY KEY,
    next_run_at   TIMESTAMPTZ NOT NULL,
    holder        TEXT,
    running_until TIMESTAMPTZ,
    runs          BIGINT      NOT NULL DEFAULT 0,
    last_started_at  TIMESTAMPTZ,
    last_finished_at TIMESTAMPTZ,
    last_error    TEXT
);
