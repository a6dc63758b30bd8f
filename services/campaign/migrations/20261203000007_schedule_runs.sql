-- When each scheduled or date-trait journey was last looked at: the next pass fires what came
-- due since, so a pass missed (every replica down) is made up, never doubled.
CREATE TABLE journey_schedule_runs (
    tenant_id text NOT NULL,
    journey_id uuid NOT NULL,
    version int NOT NULL,
    last_run_at timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, journey_id)
);
