-- A folded search text per customer (names and emails), rewritten with its traits, so search
-- finds "José" by "jose" without database extensions.
ALTER TABLE customers ADD COLUMN search_text TEXT NOT NULL DEFAULT '';
CREATE INDEX customers_active ON customers (tenant_id, id) WHERE status = 'active';
