//! Pipit storage: user accounts with SCRAM credentials, in SQLite (embedded, the
//! default) or PostgreSQL.
//!
//! The server and the `pipit` CLI talk to a [`SharedStore`], a [`Store`] trait object,
//! and never see which backend is behind it. Only salted SCRAM keys are stored
//! ([`StoredCredentials`]), never a password. Localparts and domains are stored exactly
//! as given: normalising them (RFC 7622) is the caller's job.
//!
//! # Layout
//! - `lib.rs`: the [`Store`] trait and [`open`], which picks a backend from a location.
//! - `error.rs`: [`StoreError`], one enum for every backend.
//! - `sqlite.rs`: [`SqliteStore`], one file in WAL mode, safe to share between processes.
//! - `postgres.rs`: [`PostgresStore`], one `tokio-postgres` connection.
//! - `schema/`: the versioned migration list, one `.sql` file per backend per version.
//! - `credentials.rs`: shape checks on credentials going in and coming out.
//!
//! Every backend passes the same conformance suite (`tests/conformance/`).
//!
//! # Getting started
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), pipit_store::StoreError> {
//! use pipit_proto::sasl::{ScramKeys, StoredCredentials};
//!
//! let dir = tempfile::tempdir()?;
//! let path = dir.path().join("pipit.db");
//! // Or "postgres://pipit@127.0.0.1/pipit".
//! let store = pipit_store::open(path.to_str().unwrap()).await?;
//!
//! let creds = StoredCredentials {
//!     salt: vec![7; 16],
//!     iterations: 4096,
//!     sha1: ScramKeys { stored_key: vec![1; 20], server_key: vec![2; 20] },
//!     sha256: ScramKeys { stored_key: vec![3; 32], server_key: vec![4; 32] },
//! };
//! store.create_user("juliet", "example.com", &creds).await?;
//! assert_eq!(store.credentials("juliet", "example.com").await?, Some(creds));
//! assert_eq!(
//!     store.list_users(None).await?,
//!     [("juliet".to_string(), "example.com".to_string())]
//! );
//! # Ok(())
//! # }
//! ```

mod credentials;
mod error;
mod postgres;
mod schema;
mod sqlite;

use std::path::PathBuf;
use std::sync::Arc;

pub use error::StoreError;
use pipit_proto::sasl::StoredCredentials;
pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;

/// Account storage. Every method is one atomic operation on the backing database.
#[async_trait::async_trait]
pub trait Store: Send + Sync + 'static {
    /// Creates an account; Err(StoreError::UserExists) if (localpart, domain) exists.
    async fn create_user(
        &self,
        localpart: &str,
        domain: &str,
        creds: &StoredCredentials,
    ) -> Result<(), StoreError>;
    /// Replaces credentials; Err(StoreError::NoSuchUser) if absent.
    async fn set_credentials(
        &self,
        localpart: &str,
        domain: &str,
        creds: &StoredCredentials,
    ) -> Result<(), StoreError>;
    /// Deletes; Err(NoSuchUser) if absent.
    async fn delete_user(&self, localpart: &str, domain: &str) -> Result<(), StoreError>;
    /// Credentials, or None for no such account.
    async fn credentials(
        &self,
        localpart: &str,
        domain: &str,
    ) -> Result<Option<StoredCredentials>, StoreError>;
    /// Whether the account exists.
    async fn user_exists(&self, localpart: &str, domain: &str) -> Result<bool, StoreError>;
    /// All accounts as (localpart, domain), sorted by domain then localpart; only `domain` if Some.
    async fn list_users(&self, domain: Option<&str>) -> Result<Vec<(String, String)>, StoreError>;
}

/// A store shared between tasks.
pub type SharedStore = Arc<dyn Store>;

/// Opens a store from a location: a `postgres://` or `postgresql://` URL → PostgreSQL;
/// anything else is a path to an SQLite file (created with its parent dir if missing).
/// Runs schema migrations.
pub async fn open(location: &str) -> Result<SharedStore, StoreError> {
    if location.starts_with("postgres://") || location.starts_with("postgresql://") {
        return Ok(Arc::new(PostgresStore::connect(location).await?));
    }
    let path = PathBuf::from(location);
    let opened = tokio::task::spawn_blocking(move || SqliteStore::open(&path)).await;
    match opened {
        Ok(store) => Ok(Arc::new(store?)),
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => Err(StoreError::Io(std::io::Error::other(e))),
    }
}
