-- Experiments (docs/campaign.md, "Experiments"): definitions with their lifecycle, and each
-- exposed customer with the arm they were assigned (by salted hash) and what they did after.
CREATE TABLE experiments (
    tenant_id text NOT NULL,
    id uuid NOT NULL,
    name text NOT NULL,
    status text NOT NULL DEFAULT 'draft' CHECK (status IN ('draft', 'running', 'stopped')),
    definition jsonb NOT NULL,
    -- The placement of an offers experiment: at most one runs per placement.
    placement text,
    goal_event text NOT NULL,
    version int NOT NULL DEFAULT 1,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    updated_by text NOT NULL,
    started_at timestamptz,
    stopped_at timestamptz,
    PRIMARY KEY (tenant_id, id)
);
CREATE UNIQUE INDEX experiments_running_placement ON experiments (tenant_id, placement)
    WHERE status = 'running' AND placement IS NOT NULL;

-- One row per exposed customer: the first exposure fixes the time the goal window starts.
-- `arm` is the arm's index, -1 for the holdout.
CREATE TABLE experiment_exposures (
    tenant_id text NOT NULL,
    experiment_id uuid NOT NULL,
    customer_id uuid NOT NULL,
    arm int NOT NULL,
    exposed_at timestamptz NOT NULL,
    converted_at timestamptz,
    revenue float8 NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, experiment_id, customer_id)
);
CREATE INDEX experiment_exposures_customer ON experiment_exposures (tenant_id, customer_id);
