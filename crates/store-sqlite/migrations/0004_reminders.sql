-- "Still not back" reminders: a planned failover away from the cluster's usual node records
-- when the cluster is expected back, and the channels of its reminder; a reminder is a
-- delivery due then (`reminder` = 1), cancelled when the cluster has moved by then.
ALTER TABLE events ADD COLUMN back_by_ms INTEGER;
ALTER TABLE events ADD COLUMN reminders TEXT NOT NULL DEFAULT '[]';
ALTER TABLE deliveries ADD COLUMN reminder INTEGER NOT NULL DEFAULT 0;
