//! The PostgreSQL backend, over one `tokio-postgres` connection without TLS (meant for
//! a database on loopback or a Unix socket).
//!
//! `tokio_postgres::Client` pipelines concurrent queries from many tasks over the one
//! connection, so no pool is needed for account traffic. A transaction needs a
//! connection of its own (statements of other tasks would land inside it), so archive
//! batches and roster changes take turns on a second one. If a connection drops, every
//! call on it fails with [`StoreError::Postgres`]; reconnecting is left to whoever owns
//! the store (restart, or open a new one).

use pipit_proto::sasl::{ScramKeys, StoredCredentials};
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, NoTls, Row};

use crate::credentials::{check_for_write, check_read, iterations_from_db};
use crate::error::one_row;
use crate::fast_tokens::{self, check_mechanism, count_to_db};
use crate::schema::{self, POSTGRES_VERSION_TABLE};
use crate::{FastToken, Store, StoreError};

mod archive;
mod roster;

/// Key for the advisory lock that serialises migrations across connections.
/// Arbitrary but fixed: the ASCII bytes of "pipitmig".
const MIGRATION_LOCK: i64 = 0x7069_7069_746d_6967;

/// A store in a PostgreSQL database.
#[derive(Debug)]
pub struct PostgresStore {
    /// The client half; the connection half runs on its own tokio task.
    client: Client,
    /// A second connection for multi-statement transactions (archive batches, roster changes): a
    /// transaction needs its connection to itself, and `client` is shared by
    /// concurrent callers whose statements would otherwise land inside it.
    transactions: tokio::sync::Mutex<Client>,
}

impl PostgresStore {
    /// Connects to `url` (`postgres://user:pass@host:port/db`, libpq key/value strings
    /// also work) without TLS, and runs pending migrations. Needs a tokio runtime: the
    /// connection is driven by a spawned task.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let mut client = open_connection(url).await?;
        migrate(&mut client).await?;
        let transactions = tokio::sync::Mutex::new(open_connection(url).await?);
        Ok(Self {
            client,
            transactions,
        })
    }
}

/// Connects, with the connection half on its own task. The task ends when the
/// client is dropped or the server goes away; in the latter case every later query
/// reports the failure, so the error is not lost.
async fn open_connection(url: &str) -> Result<Client, StoreError> {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

/// Applies pending migrations in one transaction holding an advisory lock, so two
/// processes connecting at once cannot both create the same tables.
async fn migrate(client: &mut Client) -> Result<(), StoreError> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    tx.batch_execute(POSTGRES_VERSION_TABLE).await?;
    let current: i64 = tx
        .query_one("SELECT COALESCE(MAX(version), 0) FROM schema_version", &[])
        .await?
        .get(0);
    for m in schema::pending(current)? {
        tx.batch_execute(m.postgres).await?;
        tx.execute(
            "INSERT INTO schema_version (version, name) VALUES ($1, $2)",
            &[&m.version, &m.name],
        )
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Maps a unique violation on insert to [`StoreError::UserExists`]. `ON CONFLICT DO
/// NOTHING` means it should not happen; this keeps the contract if it ever does.
fn map_insert_error(e: tokio_postgres::Error) -> StoreError {
    if e.code() == Some(&SqlState::UNIQUE_VIOLATION) {
        StoreError::UserExists
    } else {
        e.into()
    }
}

impl PostgresStore {
    /// Runs `sql` with parameters `localpart, domain` followed by the credential
    /// columns (salt, iterations, SHA-1 then SHA-256 keys); returns rows changed.
    async fn execute_with_credentials(
        &self,
        sql: &str,
        localpart: &str,
        domain: &str,
        creds: &StoredCredentials,
    ) -> Result<u64, tokio_postgres::Error> {
        let iterations = i64::from(creds.iterations);
        self.client
            .execute(
                sql,
                &[
                    &localpart,
                    &domain,
                    &creds.salt,
                    &iterations,
                    &creds.sha1.stored_key,
                    &creds.sha1.server_key,
                    &creds.sha256.stored_key,
                    &creds.sha256.server_key,
                ],
            )
            .await
    }
}

/// Reads a row of `salt, iterations, sha1_stored_key, sha1_server_key,
/// sha256_stored_key, sha256_server_key`.
fn row_to_credentials(
    row: &Row,
    who: impl Fn() -> String,
) -> Result<StoredCredentials, StoreError> {
    let creds = StoredCredentials {
        salt: row.try_get(0)?,
        iterations: iterations_from_db(row.try_get(1)?, &who)?,
        sha1: ScramKeys {
            stored_key: row.try_get(2)?,
            server_key: row.try_get(3)?,
        },
        sha256: ScramKeys {
            stored_key: row.try_get(4)?,
            server_key: row.try_get(5)?,
        },
    };
    check_read(creds, who)
}

#[async_trait::async_trait]
impl Store for PostgresStore {
    async fn create_user(
        &self,
        localpart: &str,
        domain: &str,
        creds: &StoredCredentials,
    ) -> Result<(), StoreError> {
        check_for_write(creds)?;
        let inserted = self
            .execute_with_credentials(
                "INSERT INTO users (localpart, domain, salt, iterations, \
                 sha1_stored_key, sha1_server_key, sha256_stored_key, sha256_server_key) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
                 ON CONFLICT (domain, localpart) DO NOTHING",
                localpart,
                domain,
                creds,
            )
            .await
            .map_err(map_insert_error)?;
        one_row(inserted, StoreError::UserExists)
    }

    async fn set_credentials(
        &self,
        localpart: &str,
        domain: &str,
        creds: &StoredCredentials,
    ) -> Result<(), StoreError> {
        check_for_write(creds)?;
        let updated = self
            .execute_with_credentials(
                "UPDATE users SET salt = $3, iterations = $4, \
                 sha1_stored_key = $5, sha1_server_key = $6, \
                 sha256_stored_key = $7, sha256_server_key = $8 \
                 WHERE localpart = $1 AND domain = $2",
                localpart,
                domain,
                creds,
            )
            .await?;
        one_row(updated, StoreError::NoSuchUser)
    }

    async fn delete_user(&self, localpart: &str, domain: &str) -> Result<(), StoreError> {
        let deleted = self
            .client
            .execute(
                "DELETE FROM users WHERE localpart = $1 AND domain = $2",
                &[&localpart, &domain],
            )
            .await?;
        one_row(deleted, StoreError::NoSuchUser)
    }

    async fn credentials(
        &self,
        localpart: &str,
        domain: &str,
    ) -> Result<Option<StoredCredentials>, StoreError> {
        let row = self
            .client
            .query_opt(
                "SELECT salt, iterations, sha1_stored_key, sha1_server_key, \
                 sha256_stored_key, sha256_server_key \
                 FROM users WHERE localpart = $1 AND domain = $2",
                &[&localpart, &domain],
            )
            .await?;
        row.map(|row| row_to_credentials(&row, || format!("account {localpart}@{domain}")))
            .transpose()
    }

    async fn user_exists(&self, localpart: &str, domain: &str) -> Result<bool, StoreError> {
        let row = self
            .client
            .query_opt(
                "SELECT 1 FROM users WHERE localpart = $1 AND domain = $2",
                &[&localpart, &domain],
            )
            .await?;
        Ok(row.is_some())
    }

    async fn list_users(&self, domain: Option<&str>) -> Result<Vec<(String, String)>, StoreError> {
        // The columns are COLLATE "C", so this is byte order, matching SQLite and Rust.
        let rows = self
            .client
            .query(
                "SELECT localpart, domain FROM users \
                 WHERE $1::TEXT IS NULL OR domain = $1 ORDER BY domain, localpart",
                &[&domain],
            )
            .await?;
        rows.iter()
            .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
            .collect()
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
        let hash = &token_hash[..];
        // The EXISTS makes a missing account "no row inserted" rather than a foreign-key
        // error; ON CONFLICT does the same for a duplicate, told apart below.
        let inserted = self
            .client
            .execute(
                "INSERT INTO fast_tokens \
                 (domain, localpart, token_hash, mechanism, expires_at, user_agent_id) \
                 SELECT $2::TEXT, $1::TEXT, $3::BYTEA, $4::TEXT, $5::BIGINT, $6::TEXT \
                 WHERE EXISTS (SELECT 1 FROM users WHERE localpart = $1 AND domain = $2) \
                 ON CONFLICT (domain, localpart, token_hash) DO NOTHING",
                &[
                    &localpart,
                    &domain,
                    &hash,
                    &mechanism,
                    &expires_at,
                    &user_agent_id,
                ],
            )
            .await
            .map_err(|e| {
                // The account was deleted between the EXISTS and the insert.
                if e.code() == Some(&SqlState::FOREIGN_KEY_VIOLATION) {
                    StoreError::NoSuchUser
                } else {
                    e.into()
                }
            })?;
        if inserted == 1 {
            return Ok(());
        }
        Err(if self.user_exists(localpart, domain).await? {
            StoreError::FastTokenExists
        } else {
            StoreError::NoSuchUser
        })
    }

    async fn fast_tokens(
        &self,
        localpart: &str,
        domain: &str,
        now: i64,
    ) -> Result<Vec<FastToken>, StoreError> {
        let rows = self
            .client
            .query(
                "SELECT token_hash, mechanism, expires_at, last_count, user_agent_id \
                 FROM fast_tokens WHERE localpart = $1 AND domain = $2 AND expires_at > $3 \
                 ORDER BY expires_at DESC, token_hash",
                &[&localpart, &domain, &now],
            )
            .await?;
        let who = || format!("account {localpart}@{domain}");
        rows.iter()
            .map(|row| {
                fast_tokens::from_db(
                    row.try_get(0)?,
                    row.try_get(1)?,
                    row.try_get(2)?,
                    row.try_get(3)?,
                    row.try_get(4)?,
                    who,
                )
            })
            .collect()
    }

    async fn bump_fast_count(
        &self,
        localpart: &str,
        domain: &str,
        token_hash: &[u8; 32],
        count: u64,
    ) -> Result<bool, StoreError> {
        let count = count_to_db(count)?;
        // One statement: the row lock taken by UPDATE makes a concurrent bump wait and
        // then re-check `last_count < $4` against the committed value (READ COMMITTED).
        let updated = self
            .client
            .execute(
                "UPDATE fast_tokens SET last_count = $4 \
                 WHERE localpart = $1 AND domain = $2 AND token_hash = $3 \
                 AND last_count < $4",
                &[&localpart, &domain, &&token_hash[..], &count],
            )
            .await?;
        Ok(updated == 1)
    }

    async fn delete_fast_token(
        &self,
        localpart: &str,
        domain: &str,
        token_hash: &[u8; 32],
    ) -> Result<bool, StoreError> {
        let deleted = self
            .client
            .execute(
                "DELETE FROM fast_tokens \
                 WHERE localpart = $1 AND domain = $2 AND token_hash = $3",
                &[&localpart, &domain, &&token_hash[..]],
            )
            .await?;
        Ok(deleted == 1)
    }

    async fn delete_fast_tokens(&self, localpart: &str, domain: &str) -> Result<u64, StoreError> {
        Ok(self
            .client
            .execute(
                "DELETE FROM fast_tokens WHERE localpart = $1 AND domain = $2",
                &[&localpart, &domain],
            )
            .await?)
    }

    async fn retire_older_fast_tokens(
        &self,
        localpart: &str,
        domain: &str,
        user_agent_id: Option<&str>,
        expires_at: i64,
    ) -> Result<u64, StoreError> {
        Ok(self
            .client
            .execute(
                "DELETE FROM fast_tokens WHERE localpart = $1 AND domain = $2 \
                 AND user_agent_id IS NOT DISTINCT FROM $3 AND expires_at < $4",
                &[&localpart, &domain, &user_agent_id, &expires_at],
            )
            .await?)
    }

    async fn delete_expired_fast_tokens(&self, now: i64) -> Result<u64, StoreError> {
        Ok(self
            .client
            .execute("DELETE FROM fast_tokens WHERE expires_at <= $1", &[&now])
            .await?)
    }
}
