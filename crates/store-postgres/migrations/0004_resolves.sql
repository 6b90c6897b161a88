-- Resolves added after the fact: an ad-hoc window that puts an unplanned failover inside
-- maintenance adds a delivery (`resolve`) that resolves the alert the event raised on a
-- pager or an Alertmanager; one per event and channel.
ALTER TABLE deliveries ADD COLUMN resolve boolean NOT NULL DEFAULT false;
CREATE UNIQUE INDEX deliveries_one_resolve ON deliveries (event_id, channel) WHERE resolve;
