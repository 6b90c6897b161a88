-- The first schema: events, the reports merged into them, the outbox of deliveries, and
-- ad-hoc maintenance windows. Times are epoch milliseconds (UTC).
CREATE TABLE events (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    cluster        TEXT,
    customer       TEXT,
    active         TEXT,
    previous       TEXT,
    verdict        TEXT    NOT NULL,
    at_ms          INTEGER NOT NULL,
    received_ms    INTEGER NOT NULL,
    flapping       INTEGER NOT NULL,
    failback_of    INTEGER,
    classification TEXT    NOT NULL,
    context        TEXT    NOT NULL,
    channels       TEXT    NOT NULL,
    reports        INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX events_cluster_at ON events (cluster, at_ms);
CREATE TABLE reports (
    id          INTEGER PRIMARY KEY,
    event_id    INTEGER NOT NULL REFERENCES events (id),
    scope       TEXT    NOT NULL,
    client_id   TEXT,
    merged      INTEGER NOT NULL,
    host        TEXT    NOT NULL,
    action      TEXT    NOT NULL,
    previous    TEXT,
    resource    TEXT,
    source      TEXT,
    occurred_ms INTEGER NOT NULL,
    received_ms INTEGER NOT NULL
);
CREATE UNIQUE INDEX reports_client ON reports (scope, client_id) WHERE client_id IS NOT NULL;
CREATE INDEX reports_event ON reports (event_id);
CREATE TABLE deliveries (
    id          INTEGER PRIMARY KEY,
    event_id    INTEGER NOT NULL REFERENCES events (id),
    channel     TEXT    NOT NULL,
    status      TEXT    NOT NULL DEFAULT 'pending',
    attempts    INTEGER NOT NULL DEFAULT 0,
    created_ms  INTEGER NOT NULL,
    next_ms     INTEGER NOT NULL,
    claimed     INTEGER NOT NULL DEFAULT 0,
    last_error  TEXT,
    finished_ms INTEGER
);
CREATE INDEX deliveries_due ON deliveries (next_ms) WHERE status = 'pending';
CREATE INDEX deliveries_event ON deliveries (event_id);
CREATE TABLE maintenance (
    id          INTEGER PRIMARY KEY,
    target_kind TEXT    NOT NULL,
    target      TEXT    NOT NULL,
    customer    TEXT,
    start_ms    INTEGER NOT NULL,
    end_ms      INTEGER NOT NULL,
    reason      TEXT    NOT NULL,
    created_by  TEXT    NOT NULL
);
