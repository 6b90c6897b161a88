-- A claim on a delivery is a lease: who holds it and until when (epoch ms), as in every
-- backend, instead of a flag that only a restart cleared.
ALTER TABLE deliveries ADD COLUMN claimed_by TEXT;
ALTER TABLE deliveries ADD COLUMN claimed_until_ms INTEGER;
ALTER TABLE deliveries DROP COLUMN claimed;
