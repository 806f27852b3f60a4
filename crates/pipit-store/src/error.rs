//! The one error type every backend returns.

/// What can go wrong talking to a store.
#[derive(thiserror::Error, Debug)]
#[non_exhaustive]
pub enum StoreError {
    /// `create_user` found an account with that localpart and domain already.
    #[error("the account already exists")]
    UserExists,
    /// The account named does not exist.
    #[error("no such account")]
    NoSuchUser,
    /// Credentials handed in have the wrong shape (key sizes, empty salt, zero iterations);
    /// nothing was written.
    #[error("invalid credentials: {0}")]
    InvalidCredentials(String),
    /// A FAST token handed in is unusable (empty mechanism, count beyond 2^63 - 1);
    /// nothing was written.
    #[error("invalid FAST token: {0}")]
    InvalidFastToken(String),
    /// `add_fast_token` found a token with that hash for that account already.
    #[error("the FAST token already exists")]
    FastTokenExists,
    /// A message handed to the archive is unusable (empty archive ID or stanza);
    /// nothing of its batch was written.
    #[error("invalid message: {0}")]
    InvalidMessage(String),
    /// An archive query was anchored at an archive ID the archive does not hold.
    #[error("no message with that archive ID")]
    ArchiveIdNotFound,
    /// The roster holds as many entries as it may (RFC 6121 §2.3.3); nothing was written.
    #[error("the roster is full")]
    RosterFull,
    /// A row read back has the wrong shape (e.g. a key of the wrong size).
    #[error("corrupt store: {0}")]
    Corrupt(String),
    /// The database was migrated by a newer Pipit than this one.
    #[error("database schema version {found} is newer than the {supported} this build knows")]
    SchemaTooNew {
        /// The version recorded in the database.
        found: i64,
        /// The newest version this build can migrate to.
        supported: i64,
    },
    /// An error from SQLite.
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// An error from PostgreSQL or the connection to it.
    #[error("postgres: {0}")]
    Postgres(#[from] tokio_postgres::Error),
    /// An I/O error, e.g. creating the SQLite file's directory.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}

/// A statement that had to change one row: `Ok` if it did, `none` if it changed none.
pub(crate) fn one_row(changed: u64, none: StoreError) -> Result<(), StoreError> {
    if changed == 0 { Err(none) } else { Ok(()) }
}
