//! The PostgreSQL backend, over one `tokio-postgres` connection without TLS (meant for
//! a database on loopback or a Unix socket).
//!
//! `tokio_postgres::Client` pipelines concurrent queries from many tasks over the one
//! connection, so no pool is needed for account traffic. If the connection drops, every
//! call fails with [`StoreError::Postgres`]; reconnecting is left to whoever owns the
//! store (restart, or open a new one).

use pipit_proto::sasl::{ScramKeys, StoredCredentials};
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, NoTls, Row};

use crate::credentials::{check_for_write, check_read, iterations_from_db};
use crate::schema::{self, POSTGRES_VERSION_TABLE};
use crate::{Store, StoreError};

/// Key for the advisory lock that serialises migrations across connections.
/// Arbitrary but fixed: the ASCII bytes of "pipitmig".
const MIGRATION_LOCK: i64 = 0x7069_7069_746d_6967;

/// A store in a PostgreSQL database.
#[derive(Debug)]
pub struct PostgresStore {
    /// The client half; the connection half runs on its own tokio task.
    client: Client,
}

impl PostgresStore {
    /// Connects to `url` (`postgres://user:pass@host:port/db`, libpq key/value strings
    /// also work) without TLS, and runs pending migrations. Needs a tokio runtime: the
    /// connection is driven by a spawned task.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let (mut client, connection) = tokio_postgres::connect(url, NoTls).await?;
        // The task ends when the client is dropped or the server goes away; in the
        // latter case every later query reports the failure, so the error is not lost.
        tokio::spawn(async move {
            let _ = connection.await;
        });
        migrate(&mut client).await?;
        Ok(Self { client })
    }
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
        if inserted == 0 {
            Err(StoreError::UserExists)
        } else {
            Ok(())
        }
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
        if updated == 0 {
            Err(StoreError::NoSuchUser)
        } else {
            Ok(())
        }
    }

    async fn delete_user(&self, localpart: &str, domain: &str) -> Result<(), StoreError> {
        let deleted = self
            .client
            .execute(
                "DELETE FROM users WHERE localpart = $1 AND domain = $2",
                &[&localpart, &domain],
            )
            .await?;
        if deleted == 0 {
            Err(StoreError::NoSuchUser)
        } else {
            Ok(())
        }
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
}
