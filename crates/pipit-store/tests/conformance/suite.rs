//! The conformance suite: what every [`Store`] backend must do, written once.
//!
//! Each case is an async fn taking a [`Backend`], which opens handles on one fresh,
//! empty database. `main.rs` runs every case listed in [`for_each_case!`] against
//! each backend.

use std::collections::BTreeSet;

use pipit_proto::sasl::{ScramKeys, StoredCredentials};
use pipit_store::{SharedStore, StoreError};

/// Calls `$m!` with the name of every case below; add new cases here.
macro_rules! for_each_case {
    ($m:ident) => {
        $m!(
            create_then_read_roundtrips_every_field,
            duplicate_create_is_user_exists,
            set_credentials_replaces,
            set_credentials_on_missing_is_no_such_user,
            delete_then_read_is_none,
            list_is_sorted_and_filtered_by_domain,
            names_are_stored_as_given,
            invalid_credentials_are_rejected_and_not_stored,
            two_handles_see_each_others_writes,
            reopening_migrates_idempotently,
            concurrent_creates_from_many_tasks,
        );
    };
}
pub(crate) use for_each_case;

/// One fresh, empty database of some backend.
pub trait Backend {
    /// Opens a new handle (a new connection) on the database; every call sees the same data.
    async fn open(&self) -> SharedStore;
}

/// Well-formed credentials, distinct for each `seed`.
pub fn creds(seed: u8) -> StoredCredentials {
    StoredCredentials {
        salt: (0..16).map(|i| seed.wrapping_add(i)).collect(),
        iterations: 4096 + u32::from(seed),
        sha1: ScramKeys {
            stored_key: vec![seed; 20],
            server_key: vec![seed ^ 0xff; 20],
        },
        sha256: ScramKeys {
            stored_key: vec![seed.wrapping_add(1); 32],
            server_key: vec![seed.wrapping_add(2); 32],
        },
    }
}

fn pair(localpart: &str, domain: &str) -> (String, String) {
    (localpart.to_owned(), domain.to_owned())
}

pub async fn create_then_read_roundtrips_every_field(b: &impl Backend) {
    let s = b.open().await;
    assert_eq!(s.credentials("juliet", "capulet.lit").await.unwrap(), None);
    assert!(!s.user_exists("juliet", "capulet.lit").await.unwrap());

    // Extremes: every byte value, a long salt, the largest iteration count.
    let wide = StoredCredentials {
        salt: (0..=255).collect(),
        iterations: u32::MAX,
        sha1: ScramKeys {
            stored_key: vec![0; 20],
            server_key: vec![0xff; 20],
        },
        sha256: ScramKeys {
            stored_key: (0..32).collect(),
            server_key: (0..32).rev().collect(),
        },
    };
    s.create_user("juliet", "capulet.lit", &wide).await.unwrap();
    s.create_user("romeo", "montague.lit", &creds(1))
        .await
        .unwrap();

    assert_eq!(
        s.credentials("juliet", "capulet.lit").await.unwrap(),
        Some(wide)
    );
    assert_eq!(
        s.credentials("romeo", "montague.lit").await.unwrap(),
        Some(creds(1))
    );
    assert!(s.user_exists("juliet", "capulet.lit").await.unwrap());
    // The key is the pair: same localpart on another domain is another account.
    assert!(!s.user_exists("juliet", "montague.lit").await.unwrap());
    assert_eq!(s.credentials("romeo", "capulet.lit").await.unwrap(), None);
}

pub async fn duplicate_create_is_user_exists(b: &impl Backend) {
    let s = b.open().await;
    s.create_user("juliet", "capulet.lit", &creds(1))
        .await
        .unwrap();
    let again = s.create_user("juliet", "capulet.lit", &creds(2)).await;
    assert!(matches!(again, Err(StoreError::UserExists)), "{again:?}");
    // The first account's credentials are untouched.
    assert_eq!(
        s.credentials("juliet", "capulet.lit").await.unwrap(),
        Some(creds(1))
    );
    assert_eq!(
        s.list_users(None).await.unwrap(),
        [pair("juliet", "capulet.lit")]
    );
    // Same localpart, other domain: fine.
    s.create_user("juliet", "montague.lit", &creds(3))
        .await
        .unwrap();
}

pub async fn set_credentials_replaces(b: &impl Backend) {
    let s = b.open().await;
    s.create_user("juliet", "capulet.lit", &creds(1))
        .await
        .unwrap();
    s.create_user("nurse", "capulet.lit", &creds(5))
        .await
        .unwrap();
    s.set_credentials("juliet", "capulet.lit", &creds(2))
        .await
        .unwrap();
    assert_eq!(
        s.credentials("juliet", "capulet.lit").await.unwrap(),
        Some(creds(2))
    );
    // Only that account changed.
    assert_eq!(
        s.credentials("nurse", "capulet.lit").await.unwrap(),
        Some(creds(5))
    );
}

pub async fn set_credentials_on_missing_is_no_such_user(b: &impl Backend) {
    let s = b.open().await;
    let r = s.set_credentials("ghost", "capulet.lit", &creds(1)).await;
    assert!(matches!(r, Err(StoreError::NoSuchUser)), "{r:?}");
    // And it did not create one.
    assert!(!s.user_exists("ghost", "capulet.lit").await.unwrap());
    assert!(s.list_users(None).await.unwrap().is_empty());
}

pub async fn delete_then_read_is_none(b: &impl Backend) {
    let s = b.open().await;
    s.create_user("juliet", "capulet.lit", &creds(1))
        .await
        .unwrap();
    s.create_user("tybalt", "capulet.lit", &creds(2))
        .await
        .unwrap();
    s.delete_user("tybalt", "capulet.lit").await.unwrap();
    assert_eq!(s.credentials("tybalt", "capulet.lit").await.unwrap(), None);
    assert!(!s.user_exists("tybalt", "capulet.lit").await.unwrap());
    let again = s.delete_user("tybalt", "capulet.lit").await;
    assert!(matches!(again, Err(StoreError::NoSuchUser)), "{again:?}");
    let never = s.delete_user("ghost", "capulet.lit").await;
    assert!(matches!(never, Err(StoreError::NoSuchUser)), "{never:?}");
    assert!(s.user_exists("juliet", "capulet.lit").await.unwrap());
    // The name is free again.
    s.create_user("tybalt", "capulet.lit", &creds(3))
        .await
        .unwrap();
    assert_eq!(
        s.credentials("tybalt", "capulet.lit").await.unwrap(),
        Some(creds(3))
    );
}

pub async fn list_is_sorted_and_filtered_by_domain(b: &impl Backend) {
    let s = b.open().await;
    assert!(s.list_users(None).await.unwrap().is_empty());
    // Inserted out of order. Byte order (UTF-8, as Rust's `str`) puts "Zed" before
    // "alice" and "b-lit" before "b.lit"; locale collations (e.g. en_US) need not.
    let accounts = [
        ("romeo", "montague.lit"),
        ("zed", "b.lit"),
        ("alice", "capulet.lit"),
        ("Zed", "capulet.lit"),
        ("juliet", "capulet.lit"),
        ("a", "b-lit"),
        ("benvolio", "montague.lit"),
        ("alice", "b.lit"),
    ];
    for (i, (l, d)) in accounts.iter().enumerate() {
        s.create_user(l, d, &creds(i as u8)).await.unwrap();
    }
    let mut expected: Vec<_> = accounts.iter().map(|(l, d)| pair(l, d)).collect();
    expected.sort_by(|x, y| (&x.1, &x.0).cmp(&(&y.1, &y.0)));
    assert_eq!(expected[0], pair("a", "b-lit"));
    assert_eq!(s.list_users(None).await.unwrap(), expected);

    assert_eq!(
        s.list_users(Some("capulet.lit")).await.unwrap(),
        [
            pair("Zed", "capulet.lit"),
            pair("alice", "capulet.lit"),
            pair("juliet", "capulet.lit")
        ]
    );
    assert_eq!(
        s.list_users(Some("montague.lit")).await.unwrap(),
        [
            pair("benvolio", "montague.lit"),
            pair("romeo", "montague.lit")
        ]
    );
    assert!(s.list_users(Some("verona.lit")).await.unwrap().is_empty());
    // Exact match, not a prefix or pattern.
    assert!(s.list_users(Some("b")).await.unwrap().is_empty());
    assert!(s.list_users(Some("%")).await.unwrap().is_empty());
}

pub async fn names_are_stored_as_given(b: &impl Backend) {
    let s = b.open().await;
    // Callers normalise; the store must not fold case or otherwise rewrite names.
    s.create_user("Juliet", "capulet.lit", &creds(1))
        .await
        .unwrap();
    s.create_user("juliet", "capulet.lit", &creds(2))
        .await
        .unwrap();
    s.create_user("jürgen", "bücher.example", &creds(3))
        .await
        .unwrap();
    s.create_user("o'brien \"x\"; --", "capulet.lit", &creds(4))
        .await
        .unwrap();
    assert_eq!(
        s.credentials("Juliet", "capulet.lit").await.unwrap(),
        Some(creds(1))
    );
    assert_eq!(
        s.credentials("juliet", "capulet.lit").await.unwrap(),
        Some(creds(2))
    );
    assert_eq!(
        s.credentials("jürgen", "bücher.example").await.unwrap(),
        Some(creds(3))
    );
    assert_eq!(s.credentials("JULIET", "capulet.lit").await.unwrap(), None);
    assert_eq!(s.credentials("juliet", "CAPULET.LIT").await.unwrap(), None);
    assert_eq!(
        s.list_users(None).await.unwrap(),
        [
            pair("jürgen", "bücher.example"),
            pair("Juliet", "capulet.lit"),
            pair("juliet", "capulet.lit"),
            pair("o'brien \"x\"; --", "capulet.lit"),
        ]
    );
}

pub async fn invalid_credentials_are_rejected_and_not_stored(b: &impl Backend) {
    let s = b.open().await;
    let mut short = creds(1);
    short.sha256.stored_key.truncate(20);
    let r = s.create_user("juliet", "capulet.lit", &short).await;
    assert!(matches!(r, Err(StoreError::InvalidCredentials(_))), "{r:?}");
    assert!(!s.user_exists("juliet", "capulet.lit").await.unwrap());

    s.create_user("juliet", "capulet.lit", &creds(1))
        .await
        .unwrap();
    let mut no_salt = creds(2);
    no_salt.salt.clear();
    let r = s.set_credentials("juliet", "capulet.lit", &no_salt).await;
    assert!(matches!(r, Err(StoreError::InvalidCredentials(_))), "{r:?}");
    assert_eq!(
        s.credentials("juliet", "capulet.lit").await.unwrap(),
        Some(creds(1))
    );
}

/// The server and `pipit user add` (another process) hold separate handles on one database.
pub async fn two_handles_see_each_others_writes(b: &impl Backend) {
    let server = b.open().await;
    let cli = b.open().await;
    cli.create_user("juliet", "capulet.lit", &creds(1))
        .await
        .unwrap();
    assert_eq!(
        server.credentials("juliet", "capulet.lit").await.unwrap(),
        Some(creds(1))
    );
    let dup = server.create_user("juliet", "capulet.lit", &creds(9)).await;
    assert!(matches!(dup, Err(StoreError::UserExists)), "{dup:?}");

    server
        .set_credentials("juliet", "capulet.lit", &creds(2))
        .await
        .unwrap();
    assert_eq!(
        cli.credentials("juliet", "capulet.lit").await.unwrap(),
        Some(creds(2))
    );

    server
        .create_user("romeo", "montague.lit", &creds(3))
        .await
        .unwrap();
    assert_eq!(
        cli.list_users(None).await.unwrap(),
        [pair("juliet", "capulet.lit"), pair("romeo", "montague.lit")]
    );

    cli.delete_user("juliet", "capulet.lit").await.unwrap();
    assert!(!server.user_exists("juliet", "capulet.lit").await.unwrap());
    assert_eq!(
        server.credentials("juliet", "capulet.lit").await.unwrap(),
        None
    );
}

pub async fn reopening_migrates_idempotently(b: &impl Backend) {
    let first = b.open().await;
    first
        .create_user("juliet", "capulet.lit", &creds(1))
        .await
        .unwrap();
    drop(first);
    for i in 2..5 {
        let s = b.open().await;
        assert_eq!(
            s.credentials("juliet", "capulet.lit").await.unwrap(),
            Some(creds(1))
        );
        s.create_user(&format!("user{i}"), "capulet.lit", &creds(i))
            .await
            .unwrap();
    }
    // Several handles opened at the same moment must not trip over each other either
    // (SQLite opens run on the blocking pool, so these really are in parallel).
    let (h1, h2, h3, h4) = tokio::join!(b.open(), b.open(), b.open(), b.open());
    for s in [h1, h2, h3, h4] {
        assert_eq!(s.list_users(None).await.unwrap().len(), 4);
    }
}

pub async fn concurrent_creates_from_many_tasks(b: &impl Backend) {
    let handles = [b.open().await, b.open().await];
    const USERS: usize = 64;
    const RACERS: usize = 16;

    // Many distinct accounts, created from many tasks over two handles at once.
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..USERS {
        let s = handles[i % 2].clone();
        tasks.spawn(async move {
            let localpart = format!("user{i:03}");
            s.create_user(&localpart, "capulet.lit", &creds(i as u8))
                .await
                .unwrap();
            assert!(s.user_exists(&localpart, "capulet.lit").await.unwrap());
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }

    // Many tasks racing for one name: exactly one wins, the rest see UserExists.
    let mut racers = tokio::task::JoinSet::new();
    for i in 0..RACERS {
        let s = handles[i % 2].clone();
        racers.spawn(async move {
            (
                i,
                s.create_user("juliet", "capulet.lit", &creds(i as u8))
                    .await,
            )
        });
    }
    let mut winners = Vec::new();
    while let Some(done) = racers.join_next().await {
        match done.unwrap() {
            (i, Ok(())) => winners.push(i),
            (_, Err(StoreError::UserExists)) => {}
            (_, Err(e)) => panic!("racing create failed: {e}"),
        }
    }
    assert_eq!(winners.len(), 1, "winners: {winners:?}");
    let won = winners[0] as u8;
    assert_eq!(
        handles[0]
            .credentials("juliet", "capulet.lit")
            .await
            .unwrap(),
        Some(creds(won))
    );

    let listed = handles[1].list_users(Some("capulet.lit")).await.unwrap();
    let names: BTreeSet<_> = listed.iter().map(|(l, _)| l.clone()).collect();
    assert_eq!(listed.len(), USERS + 1);
    assert_eq!(names.len(), USERS + 1);
    for i in 0..USERS {
        let localpart = format!("user{i:03}");
        assert!(names.contains(&localpart), "{localpart} missing");
        assert_eq!(
            handles[0]
                .credentials(&localpart, "capulet.lit")
                .await
                .unwrap(),
            Some(creds(i as u8))
        );
    }
}
