-- Resolves added after the fact: an ad-hoc window that puts an unplanned failover inside
-- maintenance adds a delivery (`resolve` = 1) that resolves the alert the event raised on a
-- pager or an Alertmanager; one per event and channel.
ALTER TABLE deliveries ADD COLUMN resolve INTEGER NOT NULL DEFAULT 0;
CREATE UNIQUE INDEX deliveries_one_resolve ON deliveries (event_id, channel) WHERE resolve;
