-- A send whose customer campaign has not yet heard of on crm.profiles.v1 (the trigger event
-- overtook the profile on another topic) is queued with a grace delay and passes the send gate
-- when it is delivered instead: what the gate needs is kept with it.
ALTER TABLE messages ADD COLUMN gate_pending boolean NOT NULL DEFAULT false;
ALTER TABLE messages ADD COLUMN purpose text NOT NULL DEFAULT 'marketing';
ALTER TABLE messages ADD COLUMN holdout_percent int NOT NULL DEFAULT 0;
ALTER TABLE messages ADD COLUMN time_zone text NOT NULL DEFAULT 'UTC';
