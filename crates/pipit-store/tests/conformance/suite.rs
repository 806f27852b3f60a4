//! The conformance suite: what every [`Store`] backend must do, written once.
//!
//! Each case is an async fn taking a [`Backend`], which opens handles on one fresh,
//! empty database. `main.rs` runs every case listed in [`for_each_case!`] against
//! each backend.

use std::collections::BTreeSet;

use pipit_proto::sasl::{ScramKeys, StoredCredentials};
use pipit_store::{FastToken, SharedStore, StoreError};

/// Calls `$m!(args..., suite: <every case below>)`; add new cases here.
macro_rules! for_each_case {
    ($m:ident $(, $arg:expr)*) => {
        $m!(
            $($arg,)*
            suite:
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
            fast_tokens_roundtrip_and_expire,
            fast_token_add_errors,
            fast_count_only_goes_up,
            concurrent_bumps_have_one_winner,
            fast_tokens_are_deleted_one_or_all,
            fast_tokens_die_with_the_user,
            fast_tokens_die_with_the_password,
            older_fast_tokens_of_the_same_client_retire,
            expired_fast_tokens_are_purged,
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

/// A token hash distinct for each `seed`.
fn hash(seed: u8) -> [u8; 32] {
    let mut h = [seed; 32];
    h[0] = 0xf0;
    h
}

/// The mechanism most token tests issue for.
const HT: &str = "HT-SHA-256-NONE";
/// A "now" in unix seconds for the token tests; the store never reads its own clock here.
const NOW: i64 = 1_800_000_000;

/// A user with `tokens` tokens: seed i expires at NOW + 100 * (i + 1), for client "ua".
async fn user_with_tokens(s: &SharedStore, localpart: &str, tokens: u8) {
    s.create_user(localpart, "capulet.lit", &creds(1))
        .await
        .unwrap();
    for i in 0..tokens {
        s.add_fast_token(
            localpart,
            "capulet.lit",
            &hash(i),
            HT,
            NOW + 100 * (i64::from(i) + 1),
            Some("ua"),
        )
        .await
        .unwrap();
    }
}

/// The hashes of the account's unexpired tokens, in the order the store returns them.
async fn hashes(s: &SharedStore, localpart: &str, now: i64) -> Vec<[u8; 32]> {
    s.fast_tokens(localpart, "capulet.lit", now)
        .await
        .unwrap()
        .iter()
        .map(|t| t.token_hash)
        .collect()
}

pub async fn fast_tokens_roundtrip_and_expire(b: &impl Backend) {
    let s = b.open().await;
    s.create_user("juliet", "capulet.lit", &creds(1))
        .await
        .unwrap();
    assert!(
        s.fast_tokens("juliet", "capulet.lit", NOW)
            .await
            .unwrap()
            .is_empty()
    );
    // Every byte value in a hash, no user agent, an expiry far out.
    let wide: [u8; 32] = std::array::from_fn(|i| (i * 8) as u8);
    s.add_fast_token(
        "juliet",
        "capulet.lit",
        &wide,
        "HT-SHA-256-EXPR",
        i64::MAX,
        None,
    )
    .await
    .unwrap();
    s.add_fast_token(
        "juliet",
        "capulet.lit",
        &hash(1),
        HT,
        NOW + 10,
        Some("ü-agent"),
    )
    .await
    .unwrap();
    s.add_fast_token("juliet", "capulet.lit", &hash(2), HT, NOW, Some("a"))
        .await
        .unwrap();
    assert_eq!(
        s.fast_tokens("juliet", "capulet.lit", NOW).await.unwrap(),
        [
            FastToken {
                token_hash: wide,
                mechanism: "HT-SHA-256-EXPR".into(),
                expires_at: i64::MAX,
                last_count: 0,
                user_agent_id: None,
            },
            FastToken {
                token_hash: hash(1),
                mechanism: HT.into(),
                expires_at: NOW + 10,
                last_count: 0,
                user_agent_id: Some("ü-agent".into()),
            },
        ],
        "expires_at == now is expired; latest expiry first"
    );
    assert_eq!(
        hashes(&s, "juliet", NOW - 1).await,
        [wide, hash(1), hash(2)]
    );
    assert_eq!(hashes(&s, "juliet", NOW + 10).await, [wide]);
    // Same expiry: ordered by hash.
    s.add_fast_token("juliet", "capulet.lit", &hash(0), HT, NOW + 10, None)
        .await
        .unwrap();
    assert_eq!(hashes(&s, "juliet", NOW).await, [wide, hash(0), hash(1)]);
    // Per account: nobody else sees them.
    s.create_user("juliet", "montague.lit", &creds(2))
        .await
        .unwrap();
    assert!(
        s.fast_tokens("juliet", "montague.lit", NOW)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        s.fast_tokens("ghost", "capulet.lit", NOW)
            .await
            .unwrap()
            .is_empty()
    );
}

pub async fn fast_token_add_errors(b: &impl Backend) {
    let s = b.open().await;
    let r = s
        .add_fast_token("ghost", "capulet.lit", &hash(1), HT, NOW + 1, None)
        .await;
    assert!(matches!(r, Err(StoreError::NoSuchUser)), "{r:?}");
    s.create_user("juliet", "capulet.lit", &creds(1))
        .await
        .unwrap();
    s.add_fast_token("juliet", "capulet.lit", &hash(1), HT, NOW + 1, None)
        .await
        .unwrap();
    let dup = s
        .add_fast_token(
            "juliet",
            "capulet.lit",
            &hash(1),
            "HT-SHA-256-ENDP",
            NOW + 9,
            None,
        )
        .await;
    assert!(matches!(dup, Err(StoreError::FastTokenExists)), "{dup:?}");
    let empty = s
        .add_fast_token("juliet", "capulet.lit", &hash(2), "", NOW + 1, None)
        .await;
    assert!(
        matches!(empty, Err(StoreError::InvalidFastToken(_))),
        "{empty:?}"
    );
    // The first token is untouched, nothing else was stored.
    let tokens = s.fast_tokens("juliet", "capulet.lit", NOW).await.unwrap();
    assert_eq!(tokens.len(), 1);
    assert_eq!(
        (tokens[0].mechanism.as_str(), tokens[0].expires_at),
        (HT, NOW + 1)
    );
    // The same hash under another account is another token.
    s.create_user("romeo", "capulet.lit", &creds(2))
        .await
        .unwrap();
    s.add_fast_token("romeo", "capulet.lit", &hash(1), HT, NOW + 1, None)
        .await
        .unwrap();
}

pub async fn fast_count_only_goes_up(b: &impl Backend) {
    let s = b.open().await;
    user_with_tokens(&s, "juliet", 2).await;
    user_with_tokens(&s, "romeo", 1).await;
    const TOKEN: [u8; 32] = [0xf0; 32];
    s.add_fast_token("juliet", "capulet.lit", &TOKEN, HT, NOW + 1, None)
        .await
        .unwrap();
    let bump = |count| s.bump_fast_count("juliet", "capulet.lit", &TOKEN, count);
    assert!(bump(1).await.unwrap());
    assert!(!bump(1).await.unwrap(), "a replayed count");
    assert!(!bump(0).await.unwrap());
    assert!(bump(5).await.unwrap(), "counts may skip");
    assert!(!bump(3).await.unwrap());
    assert!(bump(i64::MAX as u64).await.unwrap());
    let huge = bump(i64::MAX as u64 + 1).await;
    assert!(
        matches!(huge, Err(StoreError::InvalidFastToken(_))),
        "{huge:?}"
    );
    let counts: Vec<u64> = s
        .fast_tokens("juliet", "capulet.lit", NOW)
        .await
        .unwrap()
        .iter()
        .map(|t| t.last_count)
        .collect();
    // Latest expiry first: hash(1), hash(0), TOKEN; only TOKEN moved.
    assert_eq!(counts, [0, 0, i64::MAX as u64]);
    // Each token has its own counter, and other accounts' tokens are separate.
    assert!(
        s.bump_fast_count("juliet", "capulet.lit", &hash(0), 1)
            .await
            .unwrap()
    );
    assert!(
        s.bump_fast_count("romeo", "capulet.lit", &hash(0), 1)
            .await
            .unwrap()
    );
    // No such token, or no such account: nothing to bump.
    assert!(
        !s.bump_fast_count("juliet", "capulet.lit", &hash(9), 1)
            .await
            .unwrap()
    );
    assert!(
        !s.bump_fast_count("ghost", "capulet.lit", &hash(0), 1)
            .await
            .unwrap()
    );
}

/// The replay check under load: of many tasks (on two handles) presenting the same count,
/// exactly one is accepted; every count is accepted at most once.
pub async fn concurrent_bumps_have_one_winner(b: &impl Backend) {
    let handles = [b.open().await, b.open().await];
    user_with_tokens(&handles[0], "juliet", 1).await;
    const ROUNDS: u64 = 8;
    const RACERS: usize = 12;
    let mut tasks = tokio::task::JoinSet::new();
    for count in 1..=ROUNDS {
        for i in 0..RACERS {
            let s = handles[i % 2].clone();
            tasks.spawn(async move {
                let won = s
                    .bump_fast_count("juliet", "capulet.lit", &hash(0), count)
                    .await
                    .unwrap();
                (count, won)
            });
        }
    }
    let mut wins = [0usize; ROUNDS as usize + 1];
    while let Some(done) = tasks.join_next().await {
        let (count, won) = done.unwrap();
        wins[count as usize] += usize::from(won);
    }
    // A count can lose to a higher one that got in first, but never win twice.
    assert!(wins.iter().all(|&w| w <= 1), "{wins:?}");
    assert_eq!(
        wins[ROUNDS as usize], 1,
        "the highest count always wins once"
    );
    let tokens = handles[1]
        .fast_tokens("juliet", "capulet.lit", NOW)
        .await
        .unwrap();
    assert_eq!(tokens[0].last_count, ROUNDS);

    // All racers with one and the same count: exactly one winner.
    let mut racers = tokio::task::JoinSet::new();
    for i in 0..RACERS {
        let s = handles[i % 2].clone();
        racers.spawn(async move {
            s.bump_fast_count("juliet", "capulet.lit", &hash(0), ROUNDS + 1)
                .await
                .unwrap()
        });
    }
    let mut winners = 0;
    while let Some(done) = racers.join_next().await {
        winners += usize::from(done.unwrap());
    }
    assert_eq!(winners, 1);
}

pub async fn fast_tokens_are_deleted_one_or_all(b: &impl Backend) {
    let s = b.open().await;
    user_with_tokens(&s, "juliet", 3).await;
    user_with_tokens(&s, "romeo", 2).await;
    assert!(
        s.delete_fast_token("juliet", "capulet.lit", &hash(1))
            .await
            .unwrap()
    );
    assert!(
        !s.delete_fast_token("juliet", "capulet.lit", &hash(1))
            .await
            .unwrap()
    );
    assert_eq!(hashes(&s, "juliet", NOW).await, [hash(2), hash(0)]);
    assert_eq!(
        s.delete_fast_tokens("juliet", "capulet.lit").await.unwrap(),
        2
    );
    assert_eq!(
        s.delete_fast_tokens("juliet", "capulet.lit").await.unwrap(),
        0
    );
    assert_eq!(
        s.delete_fast_tokens("ghost", "capulet.lit").await.unwrap(),
        0
    );
    assert!(hashes(&s, "juliet", NOW).await.is_empty());
    assert_eq!(hashes(&s, "romeo", NOW).await, [hash(1), hash(0)]);
    // The account itself is untouched.
    assert!(s.user_exists("juliet", "capulet.lit").await.unwrap());
}

pub async fn fast_tokens_die_with_the_user(b: &impl Backend) {
    let s = b.open().await;
    user_with_tokens(&s, "juliet", 2).await;
    user_with_tokens(&s, "romeo", 1).await;
    s.delete_user("juliet", "capulet.lit").await.unwrap();
    assert!(hashes(&s, "juliet", NOW).await.is_empty());
    assert!(
        !s.bump_fast_count("juliet", "capulet.lit", &hash(0), 1)
            .await
            .unwrap()
    );
    // A new account with the same name starts without the old one's tokens.
    s.create_user("juliet", "capulet.lit", &creds(3))
        .await
        .unwrap();
    assert!(hashes(&s, "juliet", NOW).await.is_empty());
    s.add_fast_token("juliet", "capulet.lit", &hash(0), HT, NOW + 1, None)
        .await
        .unwrap();
    assert_eq!(hashes(&s, "romeo", NOW).await, [hash(0)]);
}

pub async fn fast_tokens_die_with_the_password(b: &impl Backend) {
    let server = b.open().await;
    let cli = b.open().await;
    user_with_tokens(&server, "juliet", 3).await;
    user_with_tokens(&server, "romeo", 2).await;
    // `pipit user passwd` in another process.
    cli.set_credentials("juliet", "capulet.lit", &creds(7))
        .await
        .unwrap();
    assert!(hashes(&server, "juliet", NOW).await.is_empty());
    assert!(
        !server
            .bump_fast_count("juliet", "capulet.lit", &hash(0), 1)
            .await
            .unwrap()
    );
    assert_eq!(hashes(&server, "romeo", NOW).await, [hash(1), hash(0)]);
    // Even "changing" to the same credentials revokes: a credentials write is the signal.
    server
        .add_fast_token("juliet", "capulet.lit", &hash(5), HT, NOW + 1, None)
        .await
        .unwrap();
    server
        .set_credentials("juliet", "capulet.lit", &creds(7))
        .await
        .unwrap();
    assert!(hashes(&server, "juliet", NOW).await.is_empty());
    // A failed write (bad credentials, or no such account) revokes nothing.
    server
        .add_fast_token("juliet", "capulet.lit", &hash(6), HT, NOW + 1, None)
        .await
        .unwrap();
    let mut bad = creds(8);
    bad.salt.clear();
    assert!(
        server
            .set_credentials("juliet", "capulet.lit", &bad)
            .await
            .is_err()
    );
    assert_eq!(hashes(&server, "juliet", NOW).await, [hash(6)]);
    assert_eq!(hashes(&server, "romeo", NOW).await, [hash(1), hash(0)]);
}

pub async fn older_fast_tokens_of_the_same_client_retire(b: &impl Backend) {
    let s = b.open().await;
    // Client "ua" holds seeds 0, 1, 2 (expiring at NOW+100, +200, +300).
    user_with_tokens(&s, "juliet", 3).await;
    let add = |seed, agent, expires| {
        let s = s.clone();
        async move {
            s.add_fast_token("juliet", "capulet.lit", &hash(seed), HT, expires, agent)
                .await
                .unwrap()
        }
    };
    add(10, Some("other"), NOW + 50).await;
    add(11, None, NOW + 60).await;
    add(12, None, NOW + 400).await;
    user_with_tokens(&s, "romeo", 1).await;

    // "ua" used its token expiring at NOW+200: the one at NOW+100 goes, no other.
    let retired = s
        .retire_older_fast_tokens("juliet", "capulet.lit", Some("ua"), NOW + 200)
        .await
        .unwrap();
    assert_eq!(retired, 1);
    assert_eq!(
        hashes(&s, "juliet", NOW).await,
        [hash(12), hash(2), hash(1), hash(11), hash(10)]
    );
    // No user agent matches only tokens without one.
    let retired = s
        .retire_older_fast_tokens("juliet", "capulet.lit", None, NOW + 400)
        .await
        .unwrap();
    assert_eq!(retired, 1);
    assert_eq!(
        hashes(&s, "juliet", NOW).await,
        [hash(12), hash(2), hash(1), hash(10)]
    );
    assert_eq!(hashes(&s, "romeo", NOW).await, [hash(0)]);
}

pub async fn expired_fast_tokens_are_purged(b: &impl Backend) {
    let s = b.open().await;
    user_with_tokens(&s, "juliet", 3).await;
    user_with_tokens(&s, "romeo", 2).await;
    // Expired: juliet's and romeo's seed 0 (NOW+100), seed 1 (NOW+200) at NOW+200 too.
    let purged = s.delete_expired_fast_tokens(NOW + 200).await.unwrap();
    assert_eq!(purged, 4);
    assert_eq!(hashes(&s, "juliet", 0).await, [hash(2)]);
    assert!(hashes(&s, "romeo", 0).await.is_empty());
    assert_eq!(s.delete_expired_fast_tokens(NOW + 200).await.unwrap(), 0);
}
