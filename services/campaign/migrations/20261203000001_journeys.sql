-- Journeys: the definition being edited (the draft) and every published version, frozen.
-- Running instances refer to the version they entered with, so publishing moves nobody.
CREATE TABLE journeys (
    tenant_id text NOT NULL,
    id uuid NOT NULL,
    name text NOT NULL,
    status text NOT NULL DEFAULT 'draft'
        CHECK (status IN ('draft', 'published', 'paused', 'archived')),
    draft jsonb NOT NULL,
    -- The version the draft becomes when published.
    draft_version int NOT NULL DEFAULT 1,
    -- The live version (NULL until first published).
    published_version int,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    updated_by text NOT NULL,
    PRIMARY KEY (tenant_id, id)
);

CREATE TABLE journey_versions (
    tenant_id text NOT NULL,
    journey_id uuid NOT NULL,
    version int NOT NULL,
    definition jsonb NOT NULL,
    published_at timestamptz NOT NULL DEFAULT now(),
    published_by text NOT NULL,
    PRIMARY KEY (tenant_id, journey_id, version),
    FOREIGN KEY (tenant_id, journey_id) REFERENCES journeys (tenant_id, id)
);
