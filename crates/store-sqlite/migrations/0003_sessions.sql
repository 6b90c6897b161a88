-- Dashboard sessions: only the SHA-256 of each token is kept, with the key that signed in.
CREATE TABLE sessions (
    token_hash TEXT    PRIMARY KEY,
    key_name   TEXT    NOT NULL,
    key_check  TEXT    NOT NULL,
    expires_ms INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX sessions_expires ON sessions (expires_ms);
