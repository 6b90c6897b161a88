-- The first schema, the SQLite one's as of its second migration: events, the reports merged
-- into them, the outbox of deliveries with their leases, ad-hoc maintenance windows, and one
-- head row per cluster that serialises the reports of that cluster. Times are epoch
-- milliseconds (UTC).
CREATE TABLE events (
    id             bigint  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    cluster        text,
    customer       text,
    active         text,
    previous       text,
    verdict        text    NOT NULL,
    at_ms          bigint  NOT NULL,
    received_ms    bigint  NOT NULL,
    flapping       boolean NOT NULL,
    failback_of    bigint,
    classification text    NOT NULL,
    context        text    NOT NULL,
    channels       text    NOT NULL,
    reports        integer NOT NULL DEFAULT 0
);
CREATE INDEX events_cluster_at ON events (cluster, at_ms);
CREATE INDEX events_customer ON events (customer, id);

-- Locked (an upsert) by every report of the cluster before its history is read.
CREATE TABLE cluster_heads (
    cluster text PRIMARY KEY
);

CREATE TABLE reports (
    id          bigint  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id    bigint  NOT NULL REFERENCES events (id),
    scope       text    NOT NULL,
    client_id   text,
    merged      boolean NOT NULL,
    host        text    NOT NULL,
    action      text    NOT NULL,
    previous    text,
    resource    text,
    source      text,
    occurred_ms bigint  NOT NULL,
    received_ms bigint  NOT NULL,
    UNIQUE (scope, client_id)
);
CREATE INDEX reports_event ON reports (event_id);

CREATE TABLE deliveries (
    id               bigint  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id         bigint  NOT NULL REFERENCES events (id),
    channel          text    NOT NULL,
    status           text    NOT NULL DEFAULT 'pending',
    attempts         integer NOT NULL DEFAULT 0,
    created_ms       bigint  NOT NULL,
    next_ms          bigint  NOT NULL,
    last_error       text,
    finished_ms      bigint,
    claimed_by       text,
    claimed_until_ms bigint
);
CREATE INDEX deliveries_due ON deliveries (next_ms) WHERE status = 'pending';
CREATE INDEX deliveries_event ON deliveries (event_id);

CREATE TABLE maintenance (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    target_kind text   NOT NULL,
    target      text   NOT NULL,
    customer    text,
    start_ms    bigint NOT NULL,
    end_ms      bigint NOT NULL,
    reason      text   NOT NULL,
    created_by  text   NOT NULL
);
CREATE INDEX maintenance_end ON maintenance (end_ms);
