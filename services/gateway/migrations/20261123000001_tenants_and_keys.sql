-- The gateway's tenants and API keys. Keys are stored as SHA-256 hashes: a key is 256 random
-- bits, so a fast hash is as strong as a slow one and keeps every request's check cheap.

CREATE TABLE tenants (
    id         TEXT        PRIMARY KEY,
    name       TEXT        NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE api_keys (
    id         UUID        PRIMARY KEY,
    tenant_id  TEXT        NOT NULL REFERENCES tenants (id),
    name       TEXT        NOT NULL,
    key_prefix TEXT        NOT NULL,              -- first characters, to recognise a key in lists
    key_hash   TEXT        NOT NULL CONSTRAINT api_keys_hash_unique UNIQUE,
    scopes     TEXT[]      NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    revoked_at TIMESTAMPTZ
);
CREATE INDEX api_keys_by_tenant ON api_keys (tenant_id);
