//! Runs the conformance suite (`suite.rs`, `archive.rs` for the message archive and
//! `roster.rs` for rosters) against every backend: SQLite always, PostgreSQL when
//! `PIPIT_TEST_POSTGRES_URL` is set (see `tests/start-postgres.sh`).

mod archive;
mod roster;
mod suite;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use pipit_store::SharedStore;
use suite::Backend;

/// A fresh SQLite file in a temporary directory (removed on drop).
struct Sqlite {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl Sqlite {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        // A subdirectory that does not exist yet: `open` must create it.
        let path = dir.path().join("data").join("pipit.db");
        Self { _dir: dir, path }
    }
}

impl Backend for Sqlite {
    async fn open(&self) -> SharedStore {
        let location = self.path.to_str().expect("UTF-8 temporary path");
        pipit_store::open(location)
            .await
            .expect("open sqlite store")
    }
}

/// One test per case of `$module` for SQLite, each in its own file.
macro_rules! sqlite_tests {
    ($module:ident: $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $case() {
                $module::$case(&Sqlite::new()).await;
            }
        )*
    };
}

mod sqlite {
    use super::*;
    suite::for_each_case!(sqlite_tests);
    archive::for_each_case!(sqlite_tests);
    roster::for_each_case!(sqlite_tests);
}

/// The environment variable naming a PostgreSQL database the tests may write to.
const POSTGRES_URL_VAR: &str = "PIPIT_TEST_POSTGRES_URL";

/// A fresh, empty schema in the test database; handles reach it via `search_path`.
struct Postgres {
    admin: tokio_postgres::Client,
    schema: String,
    url: String,
}

impl Postgres {
    async fn new(base_url: &str) -> Self {
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let (admin, connection) = tokio_postgres::connect(base_url, tokio_postgres::NoTls)
            .await
            .expect("connect to PIPIT_TEST_POSTGRES_URL");
        tokio::spawn(connection);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        // Unique across concurrent test processes and runs sharing the database.
        let schema = format!(
            "pipit_test_{}_{}_{}",
            std::process::id(),
            nanos,
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        admin
            .batch_execute(&format!("CREATE SCHEMA {schema}"))
            .await
            .expect("create schema");
        let sep = if base_url.contains('?') { '&' } else { '?' };
        // Percent-encoded `-c search_path=<schema>`, decoded by tokio-postgres.
        let url = format!("{base_url}{sep}options=-c%20search_path%3D{schema}");
        Self { admin, schema, url }
    }

    async fn drop_schema(self) {
        self.admin
            .batch_execute(&format!("DROP SCHEMA {} CASCADE", self.schema))
            .await
            .expect("drop schema");
    }
}

impl Backend for Postgres {
    async fn open(&self) -> SharedStore {
        pipit_store::open(&self.url)
            .await
            .expect("open postgres store")
    }
}

/// Every case of `$module` in turn, each in a fresh schema of the database at
/// `$base_url`.
macro_rules! postgres_cases {
    ($base_url:expr, $module:ident: $($case:ident),* $(,)?) => {
        $(
            eprintln!("postgres: {}::{}", stringify!($module), stringify!($case));
            let backend = Postgres::new($base_url).await;
            $module::$case(&backend).await;
            backend.drop_schema().await;
        )*
    };
}

/// Every case, inside the single PostgreSQL test.
async fn run_postgres_cases(base_url: &str) {
    suite::for_each_case!(postgres_cases, base_url);
    archive::for_each_case!(postgres_cases, base_url);
    roster::for_each_case!(postgres_cases, base_url);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres() {
    let Some(base_url) = std::env::var(POSTGRES_URL_VAR)
        .ok()
        .filter(|u| !u.is_empty())
    else {
        eprintln!(
            "SKIPPED: PostgreSQL conformance not run; set {POSTGRES_URL_VAR} \
             (e.g. from crates/pipit-store/tests/start-postgres.sh) to run it"
        );
        return;
    };

    // `open` accepts both URL schemes.
    let other_scheme = match base_url.strip_prefix("postgres://") {
        Some(rest) => format!("postgresql://{rest}"),
        None => base_url.replacen("postgresql://", "postgres://", 1),
    };
    let backend = Postgres::new(&other_scheme).await;
    assert!(!backend.open().await.user_exists("x", "y").await.unwrap());
    backend.drop_schema().await;

    run_postgres_cases(&base_url).await;
}
