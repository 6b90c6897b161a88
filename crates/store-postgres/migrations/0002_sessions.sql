-- Dashboard sessions: only the SHA-256 of each token is kept, with the key that signed in.
CREATE TABLE sessions (
    token_hash text   PRIMARY KEY,
    key_name   text   NOT NULL,
    key_check  text   NOT NULL,
    expires_ms bigint NOT NULL
);
CREATE INDEX sessions_expires ON sessions (expires_ms);
