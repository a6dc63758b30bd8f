-- Surveys and forms (docs/surveys.md): a definition (questions, hidden fields, trait mappings)
-- checked when saved, and every answer, keyed so that a link answered twice, or a form posted
-- twice with the same response id, records one answer.
CREATE TABLE surveys (
    tenant_id text NOT NULL,
    id uuid NOT NULL,
    name text NOT NULL,
    definition jsonb NOT NULL,
    -- `open` takes answers; `closed` keeps its answers and refuses new ones.
    status text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'closed')),
    version int NOT NULL DEFAULT 1,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    updated_by text NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE UNIQUE INDEX surveys_name ON surveys (tenant_id, lower(name));

CREATE TABLE survey_answers (
    tenant_id text NOT NULL,
    survey_id uuid NOT NULL,
    id uuid NOT NULL,
    -- A personal link: its id (one answer per link). A public link: the response id the page
    -- sent, or the answer's own id.
    answer_key text NOT NULL,
    customer_id uuid,
    -- Whether the respondent is known by a signed personal link (verified) or only by what
    -- they typed (anonymous).
    verified boolean NOT NULL,
    answers jsonb NOT NULL,
    hidden jsonb NOT NULL DEFAULT '{}',
    nps smallint,
    survey_version int NOT NULL,
    at timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, survey_id, id),
    FOREIGN KEY (tenant_id, survey_id) REFERENCES surveys (tenant_id, id) ON DELETE CASCADE
);
CREATE UNIQUE INDEX survey_answers_key ON survey_answers (tenant_id, survey_id, answer_key);
