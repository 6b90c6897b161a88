//! Dashboard sessions.

use jiff::Timestamp;
use rusqlite::{Connection, OptionalExtension, params};

use failover_store::{Session, StoreError};

use crate::rows::{db, ms, row_ts};

/// Adds session `s`, deleting the expired ones on the way.
pub(crate) fn add(conn: &Connection, s: Session, now: Timestamp) -> Result<(), StoreError> {
    conn.prepare_cached("DELETE FROM sessions WHERE expires_ms <= ?1")
        .map_err(db)?
        .execute([ms(now)])
        .map_err(db)?;
    conn.prepare_cached(
        "INSERT INTO sessions (token_hash, key_name, key_check, expires_ms)
         VALUES (?1, ?2, ?3, ?4)",
    )
    .map_err(db)?
    .execute(params![s.token_hash, s.key, s.key_check, ms(s.expires)])
    .map_err(db)?;
    Ok(())
}

/// The unexpired session of `token_hash`.
pub(crate) fn get(
    conn: &Connection,
    token_hash: &str,
    now: Timestamp,
) -> Result<Option<Session>, StoreError> {
    conn.prepare_cached(
        "SELECT key_name, key_check, expires_ms FROM sessions
         WHERE token_hash = ?1 AND expires_ms > ?2",
    )
    .map_err(db)?
    .query_row(params![token_hash, ms(now)], |r| {
        Ok(Session {
            token_hash: token_hash.to_owned(),
            key: r.get(0)?,
            key_check: r.get(1)?,
            expires: row_ts(r.get(2)?)?,
        })
    })
    .optional()
    .map_err(db)
}

/// Ends the session of `token_hash`.
pub(crate) fn end(conn: &Connection, token_hash: String) -> Result<(), StoreError> {
    conn.prepare_cached("DELETE FROM sessions WHERE token_hash = ?1")
        .map_err(db)?
        .execute([token_hash])
        .map_err(db)?;
    Ok(())
}

/// Ends every session not signed in with one of the keys of `keep` (JSON pairs of name and check).
pub(crate) fn end_except(conn: &Connection, keep: String) -> Result<u64, StoreError> {
    conn.prepare_cached(
        "DELETE FROM sessions WHERE NOT EXISTS (
             SELECT 1 FROM json_each(?1) AS k
             WHERE k.value ->> 0 = key_name AND k.value ->> 1 = key_check)",
    )
    .map_err(db)?
    .execute([keep])
    .map(|n| n as u64)
    .map_err(db)
}
