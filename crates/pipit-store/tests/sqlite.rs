//! SQLite-specific behaviour the conformance suite cannot see: what is on disk.

use pipit_proto::sasl::{ScramKeys, StoredCredentials};
use pipit_store::{SqliteStore, Store, StoreError};
use rusqlite::Connection;

fn creds() -> StoredCredentials {
    StoredCredentials {
        salt: vec![1; 16],
        iterations: 4096,
        sha1: ScramKeys {
            stored_key: vec![2; 20],
            server_key: vec![3; 20],
        },
        sha256: ScramKeys {
            stored_key: vec![4; 32],
            server_key: vec![5; 32],
        },
    }
}

#[tokio::test]
async fn file_layout_and_no_password() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/dirs/pipit.db");
    let store = SqliteStore::open(&path).unwrap();
    store
        .create_user("juliet", "capulet.lit", &creds())
        .await
        .unwrap();

    let raw = Connection::open(&path).unwrap();
    let mode: String = raw
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(
        mode, "wal",
        "WAL is persistent, so other connections see it too"
    );
    let versions: Vec<(i64, String)> = raw
        .prepare("SELECT version, name FROM schema_version ORDER BY version")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(versions[0], (1, "users".to_string()));
    let columns: Vec<String> = raw
        .prepare("SELECT name FROM pragma_table_info('users')")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(
        !columns.iter().any(|c| c.contains("password")),
        "{columns:?}"
    );
    let created_at: i64 = raw
        .query_row("SELECT created_at FROM users", [], |r| r.get(0))
        .unwrap();
    assert!(
        created_at > 1_700_000_000,
        "created_at {created_at} should be unix seconds"
    );
}

#[tokio::test]
async fn wrong_blob_size_on_disk_is_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pipit.db");
    let store = SqliteStore::open(&path).unwrap();
    store
        .create_user("juliet", "capulet.lit", &creds())
        .await
        .unwrap();
    Connection::open(&path)
        .unwrap()
        .execute("UPDATE users SET sha256_server_key = x'00'", [])
        .unwrap();
    let r = store.credentials("juliet", "capulet.lit").await;
    assert!(matches!(r, Err(StoreError::Corrupt(_))), "{r:?}");
}

#[tokio::test]
async fn database_from_a_newer_pipit_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pipit.db");
    drop(SqliteStore::open(&path).unwrap());
    Connection::open(&path)
        .unwrap()
        .execute(
            "INSERT INTO schema_version (version, name) VALUES (9999, 'future')",
            [],
        )
        .unwrap();
    let r = SqliteStore::open(&path);
    assert!(
        matches!(r, Err(StoreError::SchemaTooNew { found: 9999, .. })),
        "{:?}",
        r.map(|_| ())
    );
}

#[tokio::test]
async fn open_dispatches_on_scheme() {
    let dir = tempfile::tempdir().unwrap();
    // A relative-looking name with a colon is still a path, not a URL.
    let path = dir.path().join("sqlite:pipit.db");
    let store = pipit_store::open(path.to_str().unwrap()).await.unwrap();
    assert!(!store.user_exists("a", "b").await.unwrap());
    assert!(path.exists());
    // A postgres URL goes to PostgreSQL: nothing listens on port 1, so it fails as Postgres.
    let r = pipit_store::open("postgres://nobody@127.0.0.1:1/none").await;
    assert!(
        matches!(r, Err(StoreError::Postgres(_))),
        "{:?}",
        r.map(|_| ())
    );
}

#[tokio::test]
async fn a_version_1_database_gains_fast_tokens_and_keeps_its_accounts() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pipit.db");
    {
        // What an older Pipit left behind: only migration 1 applied.
        let raw = Connection::open(&path).unwrap();
        raw.execute_batch(
            "CREATE TABLE schema_version (version INTEGER PRIMARY KEY, name TEXT NOT NULL, \
             applied_at INTEGER NOT NULL DEFAULT (unixepoch())) STRICT;",
        )
        .unwrap();
        raw.execute_batch(include_str!("../src/schema/sqlite/0001_users.sql"))
            .unwrap();
        raw.execute(
            "INSERT INTO schema_version (version, name) VALUES (1, 'users')",
            [],
        )
        .unwrap();
    }
    {
        let old = SqliteStore::open(&path).unwrap();
        drop(old);
    }
    let raw = Connection::open(&path).unwrap();
    raw.execute(
        "INSERT INTO users (localpart, domain, salt, iterations, sha1_stored_key, \
         sha1_server_key, sha256_stored_key, sha256_server_key) \
         VALUES ('juliet', 'capulet.lit', x'01', 1, zeroblob(20), zeroblob(20), \
         zeroblob(32), zeroblob(32))",
        [],
    )
    .unwrap();
    drop(raw);
    let store = SqliteStore::open(&path).unwrap();
    assert!(store.user_exists("juliet", "capulet.lit").await.unwrap());
    store
        .add_fast_token(
            "juliet",
            "capulet.lit",
            &[1; 32],
            "HT-SHA-256-NONE",
            10,
            None,
        )
        .await
        .unwrap();
    let versions: Vec<(i64, String)> = Connection::open(&path)
        .unwrap()
        .prepare("SELECT version, name FROM schema_version ORDER BY version")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        versions,
        [
            (1, "users".to_string()),
            (2, "fast_tokens".to_string()),
            (3, "archive".to_string()),
            (4, "roster".to_string())
        ]
    );
}

#[tokio::test]
async fn fast_tokens_are_stored_hashed_only() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pipit.db");
    let store = SqliteStore::open(&path).unwrap();
    store
        .create_user("juliet", "capulet.lit", &creds())
        .await
        .unwrap();
    store
        .add_fast_token(
            "juliet",
            "capulet.lit",
            &[7; 32],
            "HT-SHA-256-NONE",
            10,
            Some("ua"),
        )
        .await
        .unwrap();
    let raw = Connection::open(&path).unwrap();
    let columns: Vec<String> = raw
        .prepare("SELECT name FROM pragma_table_info('fast_tokens')")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        columns,
        [
            "domain",
            "localpart",
            "token_hash",
            "mechanism",
            "expires_at",
            "last_count",
            "user_agent_id",
            "created_at"
        ]
    );
    let created_at: i64 = raw
        .query_row("SELECT created_at FROM fast_tokens", [], |r| r.get(0))
        .unwrap();
    assert!(created_at > 1_700_000_000, "{created_at}");
}

#[tokio::test]
async fn wrong_token_hash_size_on_disk_is_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pipit.db");
    let store = SqliteStore::open(&path).unwrap();
    store
        .create_user("juliet", "capulet.lit", &creds())
        .await
        .unwrap();
    store
        .add_fast_token(
            "juliet",
            "capulet.lit",
            &[7; 32],
            "HT-SHA-256-NONE",
            10,
            None,
        )
        .await
        .unwrap();
    Connection::open(&path)
        .unwrap()
        .execute("UPDATE fast_tokens SET token_hash = x'0102'", [])
        .unwrap();
    let r = store.fast_tokens("juliet", "capulet.lit", 0).await;
    assert!(matches!(r, Err(StoreError::Corrupt(_))), "{r:?}");
}
