//! Browser sessions and API tokens. Only hashes are stored: a leaked database does not hand
//! out live credentials.

use super::Db;
use crate::error::Result;
use rusqlite::{params, OptionalExtension};

/// A live browser session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRow {
    /// Unix time after which the session is refused.
    pub expires_at: i64,
}

/// An API token as listed (never its value).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ApiToken {
    /// Id used to revoke it.
    pub id: i64,
    /// What the operator called it.
    pub name: String,
    /// Creation time.
    pub created_at: String,
    /// Last successful use.
    pub last_used_at: Option<String>,
}

impl Db {
    /// Stores a new session by the hash of its id.
    pub fn create_session(&self, id_hash: &str, expires_at: i64, ip: &str) -> Result<()> {
        let now = super::now();
        self.write(|c| {
            c.execute(
                "INSERT INTO sessions (id_hash, created_at, expires_at, source_ip) VALUES (?1, ?2, ?3, ?4)",
                params![id_hash, now, expires_at, ip],
            )?;
            Ok(())
        })
    }

    /// The session with this id hash, if it was not logged out.
    pub fn session(&self, id_hash: &str) -> Result<Option<SessionRow>> {
        self.with(|c| {
            c.query_row("SELECT expires_at FROM sessions WHERE id_hash = ?1", [id_hash], |r| {
                Ok(SessionRow { expires_at: r.get(0)? })
            })
            .optional()
        })
    }

    /// Slides a session's expiry forward.
    pub fn extend_session(&self, id_hash: &str, expires_at: i64) -> Result<()> {
        self.write(|c| {
            c.execute(
                "UPDATE sessions SET expires_at = ?2 WHERE id_hash = ?1",
                params![id_hash, expires_at],
            )?;
            Ok(())
        })
    }

    /// Ends a session (logout).
    pub fn delete_session(&self, id_hash: &str) -> Result<()> {
        self.write(|c| c.execute("DELETE FROM sessions WHERE id_hash = ?1", [id_hash]).map(|_| ()))
    }

    /// Ends every session but `keep` (after a password change); how many ended.
    pub fn delete_other_sessions(&self, keep: Option<&str>) -> Result<u64> {
        self.write(|c| c.execute("DELETE FROM sessions WHERE id_hash IS NOT ?1", [keep]).map(|n| n as u64))
    }

    /// Revokes every API token; how many there were.
    pub fn delete_all_tokens(&self) -> Result<u64> {
        self.write(|c| c.execute("DELETE FROM api_tokens", []).map(|n| n as u64))
    }

    /// Forgets sessions that expired before `now_unix`.
    pub fn prune_sessions(&self, now_unix: i64) -> Result<u64> {
        self.write(|c| c.execute("DELETE FROM sessions WHERE expires_at < ?1", [now_unix]).map(|n| n as u64))
    }

    /// Stores a new API token by its hash; returns its id.
    pub fn create_token(&self, name: &str, token_hash: &str) -> Result<ApiToken> {
        let now = super::now();
        self.write(|c| {
            c.execute(
                "INSERT INTO api_tokens (name, token_hash, created_at) VALUES (?1, ?2, ?3)",
                params![name, token_hash, now],
            )?;
            Ok(ApiToken {
                id: c.last_insert_rowid(),
                name: name.to_string(),
                created_at: now.clone(),
                last_used_at: None,
            })
        })
    }

    /// Every token, oldest first.
    pub fn tokens(&self) -> Result<Vec<ApiToken>> {
        self.with(|c| {
            let mut st =
                c.prepare("SELECT id, name, created_at, last_used_at FROM api_tokens ORDER BY id")?;
            let rows = st
                .query_map([], |r| {
                    Ok(ApiToken {
                        id: r.get(0)?,
                        name: r.get(1)?,
                        created_at: r.get(2)?,
                        last_used_at: r.get(3)?,
                    })
                })?
                .collect();
            rows
        })
    }

    /// Looks a token up by hash and records the use (at most once a minute, so a busy script
    /// does not turn every read into a write); its id when valid.
    pub fn use_token(&self, token_hash: &str) -> Result<Option<i64>> {
        let now = time::OffsetDateTime::now_utc();
        let (stamp, stale) = (super::format_ts(now), super::format_ts(now - time::Duration::minutes(1)));
        let found: Option<(i64, Option<String>)> = self.with(|c| {
            c.query_row("SELECT id, last_used_at FROM api_tokens WHERE token_hash = ?1", [token_hash], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()
        })?;
        let Some((id, last_used)) = found else { return Ok(None) };
        // Only a stale stamp takes the write gate; the guard in the UPDATE keeps two
        // concurrent uses from both writing.
        if last_used.is_none_or(|t| t < stale) {
            self.write(|c| {
                c.execute(
                    "UPDATE api_tokens SET last_used_at = ?2
                       WHERE id = ?1 AND (last_used_at IS NULL OR last_used_at < ?3)",
                    params![id, stamp, stale],
                )
            })?;
        }
        Ok(Some(id))
    }

    /// Revokes a token; whether it existed.
    pub fn delete_token(&self, id: i64) -> Result<bool> {
        self.write(|c| c.execute("DELETE FROM api_tokens WHERE id = ?1", [id]).map(|n| n > 0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_and_tokens_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("state.db")).unwrap();
        db.create_session("h1", 100, "ip").unwrap();
        assert_eq!(db.session("h1").unwrap(), Some(SessionRow { expires_at: 100 }));
        db.extend_session("h1", 200).unwrap();
        assert_eq!(db.session("h1").unwrap().unwrap().expires_at, 200);
        assert_eq!(db.prune_sessions(150).unwrap(), 0);
        db.delete_session("h1").unwrap();
        assert_eq!(db.session("h1").unwrap(), None);
        let t = db.create_token("ci", "th").unwrap();
        assert_eq!(db.use_token("th").unwrap(), Some(t.id));
        let stamped = db.tokens().unwrap()[0].last_used_at.clone();
        assert!(stamped.is_some());
        // A second use within the minute leaves the stamp alone.
        assert_eq!(db.use_token("th").unwrap(), Some(t.id));
        assert_eq!(db.tokens().unwrap()[0].last_used_at, stamped);
        assert!(db.delete_token(t.id).unwrap());
        assert_eq!(db.use_token("th").unwrap(), None);
    }
}
