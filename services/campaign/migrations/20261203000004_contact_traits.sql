-- The customer's traits as identity last published them (and when), for journey branches and
-- templates; an older profile message arriving late never overwrites a newer one.
ALTER TABLE contacts ADD COLUMN traits jsonb NOT NULL DEFAULT '{}'::jsonb;
ALTER TABLE contacts ADD COLUMN traits_at timestamptz;
