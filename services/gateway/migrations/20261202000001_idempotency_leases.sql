-- A request holds its key under a lease: when the gateway replica that claimed it died, or the
-- part's answer never came (an upstream timeout, whose effect may have happened), the key is
-- kept with its fingerprint and a retry with the same parameters takes it over once the lease
-- has run out. The part applies the write once per key itself, so a retaken key cannot apply
-- twice.
ALTER TABLE idempotency_keys
    ADD COLUMN lease_until TIMESTAMPTZ,
    ADD COLUMN attempts    INT NOT NULL DEFAULT 1;
