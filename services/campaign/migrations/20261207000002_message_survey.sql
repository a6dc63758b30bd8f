-- A journey message that links to a survey (docs/surveys.md): its template shows
-- `survey_url`, a personal link for the customer whose id is the message's.
ALTER TABLE messages ADD COLUMN survey_id uuid;
