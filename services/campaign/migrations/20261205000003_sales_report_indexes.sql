-- The sales reports read only these (pipeline_bench: without them a report over 1,000,000
-- opportunities scanned the table three times and outlasted the gateway's timeout).
-- Open opportunities by stage, currency and expected close: an index-only scan.
CREATE INDEX opportunities_open_report ON opportunities (tenant_id, pipeline_id, stage, currency)
    INCLUDE (amount, probability, expected_close) WHERE status = 'open';
-- Closed opportunities by the time they closed: the period's rows only.
CREATE INDEX opportunities_closed_report ON opportunities (tenant_id, pipeline_id, closed_at)
    INCLUDE (owner, status, created_at) WHERE status IN ('won', 'lost');
