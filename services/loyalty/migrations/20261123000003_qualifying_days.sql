-- Points that count for tiers (earned, bonus, taken back), per customer and UTC day: the rolling
-- window is a sum over at most `tier_window_days` rows, read by primary key.
CREATE TABLE qualifying_days (
    tenant_id   TEXT   NOT NULL,
    customer_id UUID   NOT NULL,
    day         DATE   NOT NULL,
    points      BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, customer_id, day)
);
