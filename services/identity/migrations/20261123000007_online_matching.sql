-- Online probabilistic matching: each active customer's blocking keys (person schema), and
-- the per-tenant Fellegi–Sunter model fitted by the last clean-up.
CREATE TABLE match_keys (
    tenant_id   TEXT NOT NULL,
    key         TEXT NOT NULL,
    customer_id UUID NOT NULL,
    PRIMARY KEY (tenant_id, key, customer_id)
);
CREATE INDEX match_keys_by_customer ON match_keys (tenant_id, customer_id);

CREATE TABLE match_models (
    tenant_id       TEXT        PRIMARY KEY,
    model           JSONB       NOT NULL,
    candidate_pairs BIGINT      NOT NULL,
    fitted_at       TIMESTAMPTZ NOT NULL DEFAULT now()
);
