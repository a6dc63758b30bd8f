-- Each consent row keeps the customer it was first recorded on, like timeline rows: a merge
-- moves the rows to the survivor, an unmerge gives the restored customer its own back.
ALTER TABLE consent_events ADD COLUMN owner_id UUID;
UPDATE consent_events SET owner_id = customer_id;
ALTER TABLE consent_events ALTER COLUMN owner_id SET NOT NULL;
