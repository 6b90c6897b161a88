-- "Still not back" reminders: a planned failover away from the cluster's usual node records
-- when the cluster is expected back, and the channels of its reminder; a reminder is a
-- delivery due then (`reminder`), cancelled when the cluster has moved by then.
ALTER TABLE events ADD COLUMN back_by_ms bigint;
ALTER TABLE events ADD COLUMN reminders text NOT NULL DEFAULT '[]';
ALTER TABLE deliveries ADD COLUMN reminder boolean NOT NULL DEFAULT false;
