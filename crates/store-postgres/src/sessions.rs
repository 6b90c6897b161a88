//! Dashboard sessions.

use deadpool_postgres::Object;
use jiff::Timestamp;

use failover_store::{Session, StoreError};

use crate::rows::{db, ms, row_ts};

/// Adds session `s`, deleting the expired ones on the way.
pub(crate) async fn add(client: &Object, s: Session, now: Timestamp) -> Result<(), StoreError> {
    client
        .execute(
            "WITH gone AS (DELETE FROM sessions WHERE expires_ms <= $5)
             INSERT INTO sessions (token_hash, key_name, key_check, expires_ms)
             VALUES ($1, $2, $3, $4)",
            &[
                &s.token_hash,
                &s.key,
                &s.key_check,
                &ms(s.expires),
                &ms(now),
            ],
        )
        .await
        .map_err(db)?;
    Ok(())
}

/// The unexpired session of `token_hash`.
pub(crate) async fn get(
    client: &Object,
    token_hash: String,
    now: Timestamp,
) -> Result<Option<Session>, StoreError> {
    let row = client
        .query_opt(
            "SELECT key_name, key_check, expires_ms FROM sessions
             WHERE token_hash = $1 AND expires_ms > $2",
            &[&token_hash, &ms(now)],
        )
        .await
        .map_err(db)?;
    row.map(|r| {
        Ok(Session {
            key: r.get(0),
            key_check: r.get(1),
            expires: row_ts(r.get(2))?,
            token_hash,
        })
    })
    .transpose()
}

/// Ends the session of `token_hash`.
pub(crate) async fn end(client: &Object, token_hash: String) -> Result<(), StoreError> {
    client
        .execute("DELETE FROM sessions WHERE token_hash = $1", &[&token_hash])
        .await
        .map_err(db)?;
    Ok(())
}

/// Ends every session not signed in with one of the keys (`names[i]`, `checks[i]`).
pub(crate) async fn end_except(
    client: &Object,
    names: Vec<String>,
    checks: Vec<String>,
) -> Result<u64, StoreError> {
    client
        .execute(
            "DELETE FROM sessions s WHERE NOT EXISTS (
                 SELECT 1 FROM unnest($1::text[], $2::text[]) AS k(name, checked)
                 WHERE k.name = s.key_name AND k.checked = s.key_check)",
            &[&names, &checks],
        )
        .await
        .map_err(db)
}
