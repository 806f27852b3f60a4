//! Pipit storage: user accounts with SCRAM credentials, FAST tokens (XEP-0484) and
//! rosters (RFC 6121), in SQLite (embedded, the default) or PostgreSQL.
//!
//! The server and the `pipit` CLI talk to a [`SharedStore`], a [`Store`] trait object,
//! and never see which backend is behind it. Only salted SCRAM keys are stored
//! ([`StoredCredentials`]), never a password. Localparts and domains are stored exactly
//! as given: normalising them (RFC 7622) is the caller's job. FAST tokens are stored as
//! SHA-256 hashes ([`FastToken`]) and die with their account and with every change of its
//! credentials, inside the database, so no caller can forget to revoke them.
//!
//! # Layout
//! - `lib.rs`: the [`Store`] trait and [`open`], which picks a backend from a location.
//! - `error.rs`: [`StoreError`], one enum for every backend.
//! - `sqlite/`: [`SqliteStore`], one file in WAL mode, safe to share between processes.
//! - `postgres/`: [`PostgresStore`], one `tokio-postgres` connection.
//! - `schema/`: the versioned migration list, one `.sql` file per backend per version.
//! - `credentials.rs`: shape checks on credentials going in and coming out.
//! - `fast_tokens.rs`: [`FastToken`] and the shape checks on tokens.
//! - `archive.rs`: [`ArchiveStore`], the message archive and offline queue (one table);
//!   each backend's implementation is in its directory's `archive.rs`.
//! - `roster.rs`: [`RosterStore`], the roster types, and what a subscription
//!   stanza writes, shared by the backends.
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

mod archive;
mod credentials;
mod error;
mod fast_tokens;
mod postgres;
mod roster;
mod schema;
mod sqlite;

use std::path::PathBuf;
use std::sync::Arc;

pub use archive::{
    ArchivePage, ArchiveQuery, ArchiveStore, ArchivedMessage, NewMessage, Page, Stored,
};
pub use error::StoreError;
pub use fast_tokens::FastToken;
use pipit_proto::sasl::StoredCredentials;
pub use postgres::PostgresStore;
pub use roster::{
    Roster, RosterItem, RosterPush, RosterStore, Subscription, SubscriptionChange,
    SubscriptionEvent, SubscriptionState,
};
pub use sqlite::SqliteStore;

/// Account storage, with the message archive ([`ArchiveStore`]) as a supertrait.
/// Every method is one atomic operation on the backing database.
#[async_trait::async_trait]
pub trait Store: ArchiveStore + RosterStore + Send + Sync + 'static {
    /// Creates an account; Err(StoreError::UserExists) if (localpart, domain) exists.
    async fn create_user(
        &self,
        localpart: &str,
        domain: &str,
        creds: &StoredCredentials,
    ) -> Result<(), StoreError>;
    /// Replaces credentials; Err(StoreError::NoSuchUser) if absent. Deletes all the
    /// account's FAST tokens in the same statement: no token outlives a password change.
    async fn set_credentials(
        &self,
        localpart: &str,
        domain: &str,
        creds: &StoredCredentials,
    ) -> Result<(), StoreError>;
    /// Deletes, with the account's FAST tokens; Err(NoSuchUser) if absent.
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

    /// Stores a new FAST token (XEP-0484 §3.3) by its SHA-256, with `last_count` 0.
    /// Err(NoSuchUser) if the account is absent, Err(FastTokenExists) if it has that hash.
    async fn add_fast_token(
        &self,
        localpart: &str,
        domain: &str,
        token_hash: &[u8; 32],
        mechanism: &str,
        expires_at: i64,
        user_agent_id: Option<&str>,
    ) -> Result<(), StoreError>;
    /// The account's tokens with `expires_at > now`, latest expiry first (then by hash);
    /// empty for no such account.
    async fn fast_tokens(
        &self,
        localpart: &str,
        domain: &str,
        now: i64,
    ) -> Result<Vec<FastToken>, StoreError>;
    /// The 0-RTT replay check (XEP-0484 §3.4): sets `last_count = count` if and only if
    /// `count > last_count`, in one conditional UPDATE, and says whether it did. Of many
    /// concurrent calls with the same count exactly one gets `true`. `false` also for no
    /// such token. Err(InvalidFastToken) for a count above 2^63 - 1.
    async fn bump_fast_count(
        &self,
        localpart: &str,
        domain: &str,
        token_hash: &[u8; 32],
        count: u64,
    ) -> Result<bool, StoreError>;
    /// Deletes one token (XEP-0484 §3.6 invalidation); whether it existed.
    async fn delete_fast_token(
        &self,
        localpart: &str,
        domain: &str,
        token_hash: &[u8; 32],
    ) -> Result<bool, StoreError>;
    /// Deletes every token of the account; how many there were.
    async fn delete_fast_tokens(&self, localpart: &str, domain: &str) -> Result<u64, StoreError>;
    /// XEP-0484 §3.5: once a token is used, deletes the tokens issued to the same client
    /// (`user_agent_id`, where `None` matches only tokens without one) that expire before
    /// it (`expires_at`); how many.
    async fn retire_older_fast_tokens(
        &self,
        localpart: &str,
        domain: &str,
        user_agent_id: Option<&str>,
        expires_at: i64,
    ) -> Result<u64, StoreError>;
    /// Deletes every account's tokens with `expires_at <= now` (housekeeping); how many.
    async fn delete_expired_fast_tokens(&self, now: i64) -> Result<u64, StoreError>;
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
