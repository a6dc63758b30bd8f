-- A send node may show the best offer of a placement for the customer, decided when the
-- message is sent (docs/campaign.md, "Offers in messages").
ALTER TABLE messages ADD COLUMN offer_placement text;
