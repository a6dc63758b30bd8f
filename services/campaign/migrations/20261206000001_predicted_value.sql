-- The customer's predicted lifetime value, mirrored from segmentation's `value.predicted`
-- (docs/events.md); lead priority and journey branches read it.
ALTER TABLE contacts ADD COLUMN predicted_value float8;
