-- Issue 5: programmes, the double-entry points ledger, lots, tiers, rewards, redemptions.

CREATE TABLE programmes (
    tenant_id  TEXT        PRIMARY KEY,
    programme  JSONB       NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_by TEXT        NOT NULL
);

-- Accounts: one `customer` (available points) and one `reserved` (held by unconfirmed
-- redemptions) per customer; `issued`, `redeemed` and `expired` per tenant (customer_id nil).
CREATE TABLE accounts (
    tenant_id   TEXT   NOT NULL,
    kind        TEXT   NOT NULL CHECK (kind IN ('customer', 'reserved', 'issued', 'redeemed', 'expired')),
    customer_id UUID   NOT NULL,
    balance     BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, kind, customer_id)
);

-- A balanced set of entries; `source_key` makes each source (an event, an order, an API
-- request's idempotency key, a lot's expiry) post at most once.
CREATE TABLE ledger_transactions (
    tenant_id    TEXT        NOT NULL,
    id           BIGSERIAL,
    kind         TEXT        NOT NULL,   -- earn | bonus | refund | adjust | reserve | confirm | release | expire
    customer_id  UUID        NOT NULL,
    source_key   TEXT        NOT NULL,
    source_event TEXT,
    reason       TEXT        NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, source_key)
);
CREATE INDEX ledger_transactions_by_customer ON ledger_transactions (tenant_id, customer_id, created_at);

-- Immutable entries: a trigger refuses updates and deletes.
CREATE TABLE entries (
    tenant_id      TEXT        NOT NULL,
    id             BIGSERIAL,
    transaction_id BIGINT      NOT NULL,
    kind           TEXT        NOT NULL,
    customer_id    UUID        NOT NULL,
    amount         BIGINT      NOT NULL CHECK (amount <> 0),
    created_at     TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX entries_by_account ON entries (tenant_id, kind, customer_id, id);
CREATE INDEX entries_by_transaction ON entries (tenant_id, transaction_id);

CREATE FUNCTION entries_are_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'ledger entries are immutable: post a reversing transaction instead';
END $$;
CREATE TRIGGER entries_immutable BEFORE UPDATE OR DELETE ON entries
    FOR EACH ROW EXECUTE FUNCTION entries_are_immutable();

-- Earned points in lots, consumed oldest first, expiring after the programme's period.
CREATE TABLE lots (
    tenant_id   TEXT        NOT NULL,
    id          BIGSERIAL,
    customer_id UUID        NOT NULL,
    earned_at   TIMESTAMPTZ NOT NULL,
    expires_at  TIMESTAMPTZ,
    points      BIGINT      NOT NULL,
    remaining   BIGINT      NOT NULL CHECK (remaining >= 0),
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX lots_open ON lots (tenant_id, customer_id, earned_at, id) WHERE remaining > 0;
CREATE INDEX lots_expiring ON lots (expires_at) WHERE remaining > 0 AND expires_at IS NOT NULL;

-- Points from orders per cap period.
CREATE TABLE cap_usage (
    tenant_id   TEXT   NOT NULL,
    customer_id UUID   NOT NULL,
    period_key  TEXT   NOT NULL,
    points      BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, customer_id, period_key)
);

-- Orders that earned, for proportional refunds.
CREATE TABLE orders (
    tenant_id   TEXT   NOT NULL,
    order_id    TEXT   NOT NULL,
    customer_id UUID   NOT NULL,
    revenue     FLOAT8 NOT NULL,
    points      BIGINT NOT NULL,
    taken_back  BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, order_id)
);

CREATE TABLE tier_status (
    tenant_id   TEXT        NOT NULL,
    customer_id UUID        NOT NULL,
    tier        TEXT        NOT NULL,
    since       TIMESTAMPTZ NOT NULL,
    period_end  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (tenant_id, customer_id)
);
CREATE INDEX tier_status_period_end ON tier_status (period_end);

-- Birthdays from profile traits (for the birthday bonus); deleted on erasure.
CREATE TABLE profiles (
    tenant_id   TEXT NOT NULL,
    customer_id UUID NOT NULL,
    birthday    TEXT,
    PRIMARY KEY (tenant_id, customer_id)
);

CREATE TABLE rewards (
    tenant_id   TEXT        NOT NULL,
    id          UUID        NOT NULL,
    name        TEXT        NOT NULL,
    cost        BIGINT      NOT NULL CHECK (cost > 0),
    stock       INT         CHECK (stock IS NULL OR stock >= 0),
    valid_from  TIMESTAMPTZ,
    valid_to    TIMESTAMPTZ,
    active      BOOLEAN     NOT NULL DEFAULT TRUE,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id)
);

CREATE TABLE redemptions (
    tenant_id   TEXT        NOT NULL,
    id          UUID        NOT NULL,
    customer_id UUID        NOT NULL,
    reward_id   UUID        NOT NULL,
    points      BIGINT      NOT NULL,
    status      TEXT        NOT NULL,   -- reserved | confirmed | cancelled | released
    reserved_at TIMESTAMPTZ NOT NULL,
    expires_at  TIMESTAMPTZ NOT NULL,
    settled_at  TIMESTAMPTZ,
    coupon_code TEXT,
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, coupon_code)
);
CREATE INDEX redemptions_pending ON redemptions (expires_at) WHERE status = 'reserved';
