//! Schema migrations: one versioned list, applied in order by every backend.
//!
//! Each applied version is a row in `schema_version`. To change the schema, write
//! `sqlite/NNNN_name.sql` and `postgres/NNNN_name.sql` and append one entry to
//! [`MIGRATIONS`]; never edit a migration that has shipped. Both backends run all
//! pending migrations in one transaction while holding a lock, so two processes
//! opening the same database at once migrate it exactly once.

use crate::StoreError;

/// One schema change, in each backend's SQL dialect.
#[derive(Debug)]
pub(crate) struct Migration {
    /// Position in the list, starting at 1 with no gaps.
    pub version: i64,
    /// Short name, recorded in `schema_version`.
    pub name: &'static str,
    /// The change for SQLite.
    pub sqlite: &'static str,
    /// The change for PostgreSQL.
    pub postgres: &'static str,
}

/// Every migration, oldest first.
pub(crate) const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "users",
        sqlite: include_str!("sqlite/0001_users.sql"),
        postgres: include_str!("postgres/0001_users.sql"),
    },
    Migration {
        version: 2,
        name: "fast_tokens",
        sqlite: include_str!("sqlite/0002_fast_tokens.sql"),
        postgres: include_str!("postgres/0002_fast_tokens.sql"),
    },
    Migration {
        version: 3,
        name: "archive",
        sqlite: include_str!("sqlite/0003_archive.sql"),
        postgres: include_str!("postgres/0003_archive.sql"),
    },
    Migration {
        version: 4,
        name: "roster",
        sqlite: include_str!("sqlite/0004_roster.sql"),
        postgres: include_str!("postgres/0004_roster.sql"),
    },
];

/// Creates the version table in SQLite if it is missing.
pub(crate) const SQLITE_VERSION_TABLE: &str = "CREATE TABLE IF NOT EXISTS schema_version (
    version    INTEGER PRIMARY KEY,
    name       TEXT    NOT NULL,
    applied_at INTEGER NOT NULL DEFAULT (unixepoch())
) STRICT";

/// Creates the version table in PostgreSQL if it is missing.
pub(crate) const POSTGRES_VERSION_TABLE: &str = "CREATE TABLE IF NOT EXISTS schema_version (
    version    BIGINT PRIMARY KEY,
    name       TEXT   NOT NULL,
    applied_at BIGINT NOT NULL DEFAULT (EXTRACT(EPOCH FROM now())::BIGINT)
)";

/// The newest version this build knows.
pub(crate) fn latest() -> i64 {
    MIGRATIONS.last().map_or(0, |m| m.version)
}

/// The migrations still to apply to a database at version `current` (0 when new).
pub(crate) fn pending(current: i64) -> Result<&'static [Migration], StoreError> {
    if current > latest() {
        return Err(StoreError::SchemaTooNew {
            found: current,
            supported: latest(),
        });
    }
    // Versions are 1..=n without gaps (checked by a test), so version v sits at index v-1.
    let applied = usize::try_from(current).unwrap_or(0);
    Ok(&MIGRATIONS[applied..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_consecutive_from_one() {
        for (i, m) in MIGRATIONS.iter().enumerate() {
            assert_eq!(m.version, i as i64 + 1, "migration {}", m.name);
            assert!(!m.sqlite.trim().is_empty() && !m.postgres.trim().is_empty());
        }
    }

    #[test]
    fn pending_slices_the_list() {
        assert_eq!(pending(0).unwrap().len(), MIGRATIONS.len());
        assert!(pending(latest()).unwrap().is_empty());
        assert!(matches!(
            pending(latest() + 1),
            Err(StoreError::SchemaTooNew { found, supported }) if found == latest() + 1 && supported == latest()
        ));
    }
}
