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
