//! The embedded backend: one SQLite file, shared by the server and the `pipit` CLI.
//!
//! Two processes use the file at once, so the connection runs in WAL mode (readers never
//! block the writer) with a busy timeout (a writer waits for the other process's write
//! to finish instead of failing). Every account statement is a single autocommit
//! statement, and an archive batch or a roster change is a `BEGIN IMMEDIATE`
//! transaction, so no transaction ever has to upgrade a read lock to a write lock,
//! which SQLite cannot wait out. Calls run on tokio's blocking pool, never
//! on the async runtime.

use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use pipit_proto::sasl::{ScramKeys, StoredCredentials};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use crate::credentials::{check_for_write, check_read, iterations_from_db};
use crate::error::one_row;
use crate::fast_tokens::{self, check_mechanism, count_to_db};
use crate::schema::{self, SQLITE_VERSION_TABLE};
use crate::{FastToken, Store, StoreError};

mod archive;
mod roster;

/// How long a write waits for another connection's write lock before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// A store in one SQLite file.
#[derive(Clone, Debug)]
pub struct SqliteStore {
    /// One connection; SQLite serialises writers anyway, and account operations are rare.
    conn: Arc<Mutex<Connection>>,
}

impl SqliteStore {
    /// Opens (creating if missing, with its parent directory) the SQLite file at `path`
    /// and runs pending migrations. Blocking: from async code, call it through
    /// [`crate::open`] or `spawn_blocking`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        // A bare file name has an empty parent: the current directory, nothing to create.
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)?;
        }
        let mut conn = Connection::open(path)?;
        // The busy timeout first: switching to WAL itself may wait for the other process.
        conn.busy_timeout(BUSY_TIMEOUT)?;
        let _mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))?;
        conn.pragma_update(None, "foreign_keys", true)?;
        migrate(&mut conn)?;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    /// Runs `f` with the connection on the blocking pool.
    async fn with_conn<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let conn = Arc::clone(&self.conn);
        let task = tokio::task::spawn_blocking(move || {
            // A panic while holding the lock cannot leave SQLite half-written: every
            // statement is atomic. So a poisoned lock is still a usable connection.
            let conn = conn.lock().unwrap_or_else(PoisonError::into_inner);
            f(&conn)
        });
        match task.await {
            Ok(result) => result,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => Err(StoreError::Io(std::io::Error::other(e))),
        }
    }
}

/// Applies pending migrations in one `BEGIN IMMEDIATE` transaction: it takes the write
/// lock up front, so a second process opening the file waits, then sees them applied.
fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    tx.execute_batch(SQLITE_VERSION_TABLE)?;
    let current: i64 = tx.query_row(
        "SELECT COALESCE(MAX(version), 0) FROM schema_version",
        [],
        |row| row.get(0),
    )?;
    for m in schema::pending(current)? {
        tx.execute_batch(m.sqlite)?;
        tx.execute(
            "INSERT INTO schema_version (version, name) VALUES (?1, ?2)",
            params![m.version, m.name],
        )?;
    }
    tx.commit()?;
    Ok(())
}

/// The credential columns, in the order [`row_to_credentials`] reads them.
const CREDENTIAL_COLUMNS: &str = "salt, iterations, sha1_stored_key, sha1_server_key, \
     sha256_stored_key, sha256_server_key";

/// Runs `sql` with parameters `localpart, domain` followed by the credential columns
/// in [`CREDENTIAL_COLUMNS`] order; returns how many rows changed.
fn execute_with_credentials(
    conn: &rusqlite::Connection,
    sql: &str,
    localpart: &str,
    domain: &str,
    c: &StoredCredentials,
) -> rusqlite::Result<usize> {
    conn.prepare_cached(sql)?.execute(params![
        localpart,
        domain,
        c.salt,
        i64::from(c.iterations),
        c.sha1.stored_key,
        c.sha1.server_key,
        c.sha256.stored_key,
        c.sha256.server_key,
    ])
}

/// Reads a row of [`CREDENTIAL_COLUMNS`]; the iteration count is checked by the caller.
fn row_to_credentials(row: &rusqlite::Row<'_>) -> rusqlite::Result<(i64, StoredCredentials)> {
    Ok((
        row.get(1)?,
        StoredCredentials {
            salt: row.get(0)?,
            iterations: 0,
            sha1: ScramKeys {
                stored_key: row.get(2)?,
                server_key: row.get(3)?,
            },
            sha256: ScramKeys {
                stored_key: row.get(4)?,
                server_key: row.get(5)?,
            },
        },
    ))
}

#[async_trait::async_trait]
impl Store for SqliteStore {
    async fn create_user(
        &self,
        localpart: &str,
        domain: &str,
        creds: &StoredCredentials,
    ) -> Result<(), StoreError> {
        check_for_write(creds)?;
        let (localpart, domain, c) = (localpart.to_owned(), domain.to_owned(), creds.clone());
        self.with_conn(move |conn| {
            // ON CONFLICT DO NOTHING rather than catching the constraint error: a duplicate
            // is an expected outcome, and this way no other constraint can masquerade as one.
            let sql = format!(
                "INSERT INTO users (localpart, domain, {CREDENTIAL_COLUMNS}) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) \
                 ON CONFLICT (domain, localpart) DO NOTHING"
            );
            let inserted = execute_with_credentials(conn, &sql, &localpart, &domain, &c)?;
            one_row(inserted as u64, StoreError::UserExists)
        })
        .await
    }

    async fn set_credentials(
        &self,
        localpart: &str,
        domain: &str,
        creds: &StoredCredentials,
    ) -> Result<(), StoreError> {
        check_for_write(creds)?;
        let (localpart, domain, c) = (localpart.to_owned(), domain.to_owned(), creds.clone());
        self.with_conn(move |conn| {
            let updated = execute_with_credentials(
                conn,
                "UPDATE users SET salt = ?3, iterations = ?4, \
                 sha1_stored_key = ?5, sha1_server_key = ?6, \
                 sha256_stored_key = ?7, sha256_server_key = ?8 \
                 WHERE localpart = ?1 AND domain = ?2",
                &localpart,
                &domain,
                &c,
            )?;
            one_row(updated as u64, StoreError::NoSuchUser)
        })
        .await
    }

    async fn delete_user(&self, localpart: &str, domain: &str) -> Result<(), StoreError> {
        let (localpart, domain) = (localpart.to_owned(), domain.to_owned());
        self.with_conn(move |conn| {
            let deleted = conn
                .prepare_cached("DELETE FROM users WHERE localpart = ?1 AND domain = ?2")?
                .execute(params![localpart, domain])?;
            one_row(deleted as u64, StoreError::NoSuchUser)
        })
        .await
    }

    async fn credentials(
        &self,
        localpart: &str,
        domain: &str,
    ) -> Result<Option<StoredCredentials>, StoreError> {
        let (localpart, domain) = (localpart.to_owned(), domain.to_owned());
        self.with_conn(move |conn| {
            let row = conn
                .prepare_cached(&format!(
                    "SELECT {CREDENTIAL_COLUMNS} FROM users WHERE localpart = ?1 AND domain = ?2"
                ))?
                .query_row(params![localpart, domain], row_to_credentials)
                .optional()?;
            let Some((iterations, mut creds)) = row else {
                return Ok(None);
            };
            let who = || format!("account {localpart}@{domain}");
            creds.iterations = iterations_from_db(iterations, who)?;
            check_read(creds, who).map(Some)
        })
        .await
    }

    async fn user_exists(&self, localpart: &str, domain: &str) -> Result<bool, StoreError> {
        let (localpart, domain) = (localpart.to_owned(), domain.to_owned());
        self.with_conn(move |conn| {
            let found = conn
                .prepare_cached("SELECT 1 FROM users WHERE localpart = ?1 AND domain = ?2")?
                .exists(params![localpart, domain])?;
            Ok(found)
        })
        .await
    }

    async fn list_users(&self, domain: Option<&str>) -> Result<Vec<(String, String)>, StoreError> {
        let domain = domain.map(str::to_owned);
        self.with_conn(move |conn| {
            // TEXT compares with BINARY collation, i.e. UTF-8 byte order, like Rust's `str`.
            let mut stmt = conn.prepare_cached(
                "SELECT localpart, domain FROM users \
                 WHERE ?1 IS NULL OR domain = ?1 ORDER BY domain, localpart",
            )?;
            let rows = stmt.query_map(params![domain], |row| Ok((row.get(0)?, row.get(1)?)))?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn add_fast_token(
        &self,
        localpart: &str,
        domain: &str,
        token_hash: &[u8; 32],
        mechanism: &str,
        expires_at: i64,
        user_agent_id: Option<&str>,
    ) -> Result<(), StoreError> {
        check_mechanism(mechanism)?;
        let (localpart, domain, hash) = (localpart.to_owned(), domain.to_owned(), *token_hash);
        let (mechanism, agent) = (mechanism.to_owned(), user_agent_id.map(str::to_owned));
        self.with_conn(move |conn| {
            // The EXISTS makes a missing account "no row inserted" rather than a foreign-key
            // error; ON CONFLICT does the same for a duplicate, told apart below.
            let inserted = conn
                .prepare_cached(
                    "INSERT INTO fast_tokens \
                     (domain, localpart, token_hash, mechanism, expires_at, user_agent_id) \
                     SELECT ?2, ?1, ?3, ?4, ?5, ?6 \
                     WHERE EXISTS (SELECT 1 FROM users WHERE localpart = ?1 AND domain = ?2) \
                     ON CONFLICT (domain, localpart, token_hash) DO NOTHING",
                )?
                .execute(params![
                    localpart,
                    domain,
                    &hash[..],
                    mechanism,
                    expires_at,
                    agent
                ])?;
            if inserted == 1 {
                return Ok(());
            }
            let exists = conn
                .prepare_cached("SELECT 1 FROM users WHERE localpart = ?1 AND domain = ?2")?
                .exists(params![localpart, domain])?;
            Err(if exists {
                StoreError::FastTokenExists
            } else {
                StoreError::NoSuchUser
            })
        })
        .await
    }

    async fn fast_tokens(
        &self,
        localpart: &str,
        domain: &str,
        now: i64,
    ) -> Result<Vec<FastToken>, StoreError> {
        let (localpart, domain) = (localpart.to_owned(), domain.to_owned());
        self.with_conn(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT token_hash, mechanism, expires_at, last_count, user_agent_id \
                 FROM fast_tokens WHERE localpart = ?1 AND domain = ?2 AND expires_at > ?3 \
                 ORDER BY expires_at DESC, token_hash",
            )?;
            let rows = stmt.query_map(params![localpart, domain, now], |row| {
                Ok((
                    row.get(0)?,
                    row.get(1)?,
                    row.get(2)?,
                    row.get(3)?,
                    row.get(4)?,
                ))
            })?;
            let who = || format!("account {localpart}@{domain}");
            rows.map(|row| {
                let (hash, mechanism, expires_at, count, agent) = row?;
                fast_tokens::from_db(hash, mechanism, expires_at, count, agent, who)
            })
            .collect()
        })
        .await
    }

    async fn bump_fast_count(
        &self,
        localpart: &str,
        domain: &str,
        token_hash: &[u8; 32],
        count: u64,
    ) -> Result<bool, StoreError> {
        let count = count_to_db(count)?;
        let (localpart, domain, hash) = (localpart.to_owned(), domain.to_owned(), *token_hash);
        self.with_conn(move |conn| {
            // One statement: the comparison and the write cannot be split by another caller.
            let updated = conn
                .prepare_cached(
                    "UPDATE fast_tokens SET last_count = ?4 \
                     WHERE localpart = ?1 AND domain = ?2 AND token_hash = ?3 \
                     AND last_count < ?4",
                )?
                .execute(params![localpart, domain, &hash[..], count])?;
            Ok(updated == 1)
        })
        .await
    }

    async fn delete_fast_token(
        &self,
        localpart: &str,
        domain: &str,
        token_hash: &[u8; 32],
    ) -> Result<bool, StoreError> {
        let (localpart, domain, hash) = (localpart.to_owned(), domain.to_owned(), *token_hash);
        self.with_conn(move |conn| {
            let deleted = conn
                .prepare_cached(
                    "DELETE FROM fast_tokens \
                     WHERE localpart = ?1 AND domain = ?2 AND token_hash = ?3",
                )?
                .execute(params![localpart, domain, &hash[..]])?;
            Ok(deleted == 1)
        })
        .await
    }

    async fn delete_fast_tokens(&self, localpart: &str, domain: &str) -> Result<u64, StoreError> {
        let (localpart, domain) = (localpart.to_owned(), domain.to_owned());
        self.with_conn(move |conn| {
            let deleted = conn
                .prepare_cached("DELETE FROM fast_tokens WHERE localpart = ?1 AND domain = ?2")?
                .execute(params![localpart, domain])?;
            Ok(deleted as u64)
        })
        .await
    }

    async fn retire_older_fast_tokens(
        &self,
        localpart: &str,
        domain: &str,
        user_agent_id: Option<&str>,
        expires_at: i64,
    ) -> Result<u64, StoreError> {
        let (localpart, domain) = (localpart.to_owned(), domain.to_owned());
        let agent = user_agent_id.map(str::to_owned);
        self.with_conn(move |conn| {
            // `IS` is equality that also matches NULL with NULL.
            let deleted = conn
                .prepare_cached(
                    "DELETE FROM fast_tokens WHERE localpart = ?1 AND domain = ?2 \
                     AND user_agent_id IS ?3 AND expires_at < ?4",
                )?
                .execute(params![localpart, domain, agent, expires_at])?;
            Ok(deleted as u64)
        })
        .await
    }

    async fn delete_expired_fast_tokens(&self, now: i64) -> Result<u64, StoreError> {
        self.with_conn(move |conn| {
            let deleted = conn
                .prepare_cached("DELETE FROM fast_tokens WHERE expires_at <= ?1")?
                .execute(params![now])?;
            Ok(deleted as u64)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn connection_settings() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("a/b/pipit.db")).unwrap();
        let conn = store.conn.lock().unwrap();
        let mode: String = conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        let fk: i64 = conn
            .query_row("PRAGMA foreign_keys", [], |r| r.get(0))
            .unwrap();
        let busy: i64 = conn
            .query_row("PRAGMA busy_timeout", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        assert_eq!(fk, 1);
        assert_eq!(busy, 5000);
    }
}
