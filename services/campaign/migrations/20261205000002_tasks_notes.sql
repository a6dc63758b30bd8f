-- Tasks and notes on leads and opportunities (docs/campaign.md, "Leads and opportunities").

-- Calls, emails, meetings and to-dos with a due time; `due_announced_at` marks the one
-- `task.due` each gets when its time comes (a pass with SKIP LOCKED, so replicas share it).
CREATE TABLE tasks (
    tenant_id text NOT NULL,
    id uuid NOT NULL,
    kind text NOT NULL CHECK (kind IN ('call', 'email', 'meeting', 'todo')),
    subject text NOT NULL,
    due_at timestamptz,
    customer_id uuid NOT NULL,
    lead_id uuid,
    opportunity_id uuid,
    owner text,
    completed_at timestamptz,
    due_announced_at timestamptz,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, id),
    CHECK (lead_id IS NOT NULL OR opportunity_id IS NOT NULL)
);
CREATE INDEX tasks_due ON tasks (due_at)
    WHERE completed_at IS NULL AND due_announced_at IS NULL AND due_at IS NOT NULL;
CREATE INDEX tasks_owner ON tasks (tenant_id, owner, due_at, id);
CREATE INDEX tasks_customer ON tasks (tenant_id, customer_id);

-- Notes: free text on a lead or an opportunity (personal data: erased with the customer).
CREATE TABLE notes (
    tenant_id text NOT NULL,
    id uuid NOT NULL,
    customer_id uuid NOT NULL,
    lead_id uuid,
    opportunity_id uuid,
    body text NOT NULL,
    author text NOT NULL,
    created_at timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, id),
    CHECK (lead_id IS NOT NULL OR opportunity_id IS NOT NULL)
);
CREATE INDEX notes_lead ON notes (tenant_id, lead_id, created_at);
CREATE INDEX notes_opportunity ON notes (tenant_id, opportunity_id, created_at);
CREATE INDEX notes_customer ON notes (tenant_id, customer_id);
