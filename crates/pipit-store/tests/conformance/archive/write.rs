//! Writing batches: every field back, duplicates by origin, missing accounts, invalid
//! messages, deleted accounts, and several handles writing at once.

use std::collections::BTreeSet;

use pipit_store::{ArchiveQuery, NewMessage, Page, StoreError, Stored};

use super::*;
use crate::suite::{Backend, creds};

pub async fn batch_roundtrips_every_field_in_insertion_order(b: &impl Backend) {
    let s = with_users(b, &["juliet", "romeo"]).await;
    s.create_user("juliet", "montague.lit", &creds(7))
        .await
        .unwrap();

    // Times out of order and at the extremes: the archive keeps insertion order, not
    // time order (times can tie or step back).
    let big = NewMessage {
        stanza: format!(
            "<message to='juliet@capulet.lit'>\n<body>«{}» — ' \" &amp; 💌</body></message>",
            "x".repeat(100_000)
        ),
        origin: Some("romeo@montague.lit/orchard\tid-1".to_owned()),
        ..msg("juliet", "big-1", ROMEO, 2_000)
    };
    let earlier = msg("juliet", "earlier-2", NURSE, 1_000);
    let romeos = msg("romeo", "r-1", "juliet@capulet.lit", 1_500);
    let min = msg("juliet", "min-3", ROMEO, i64::MIN);
    let max = NewMessage {
        offline: true,
        ..msg("juliet", "max-4", "juliet@capulet.lit", i64::MAX)
    };
    let first = [big, earlier, romeos.clone(), min, max];
    assert_eq!(store(&s, &first, NO_LIMIT).await, vec![Stored::Archived; 5]);

    let later = msg("juliet", "later-5", ROMEO, 0);
    assert_eq!(
        store(&s, std::slice::from_ref(&later), NO_LIMIT).await,
        [Stored::Archived]
    );

    let page = s
        .query_archive("juliet", DOMAIN, &everything())
        .await
        .unwrap();
    let juliets = [&first[0], &first[1], &first[3], &first[4], &later];
    assert_eq!(
        page.messages,
        juliets.iter().map(|m| read_back(m)).collect::<Vec<_>>()
    );
    assert!(page.complete);
    let page = s
        .query_archive("romeo", DOMAIN, &everything())
        .await
        .unwrap();
    assert_eq!(page.messages, [read_back(&romeos)]);
    // The owner is the pair: juliet on another domain has her own, empty archive.
    assert!(
        s.query_archive("juliet", "montague.lit", &everything())
            .await
            .unwrap()
            .messages
            .is_empty()
    );
    assert_eq!(s.offline_count("juliet", DOMAIN).await.unwrap(), 1);
    assert_eq!(s.offline_count("romeo", DOMAIN).await.unwrap(), 0);
}

pub async fn duplicate_origin_is_written_once(b: &impl Backend) {
    let s = with_users(b, &["juliet"]).await;
    let origin = "romeo@montague.lit/orchard 1";
    let first = from_origin(queued("juliet", "a", 100), origin);
    assert_eq!(
        store(&s, std::slice::from_ref(&first), NO_LIMIT).await,
        [Stored::Archived]
    );

    // A resend: another archive ID and stanza, the same origin.
    let resent = NewMessage {
        stanza: "<message><body>again</body></message>".to_owned(),
        ..from_origin(queued("juliet", "b", 200), origin)
    };
    assert_eq!(
        store(&s, std::slice::from_ref(&resent), NO_LIMIT).await,
        [Stored::Duplicate("a".to_owned())]
    );
    let page = s
        .query_archive("juliet", DOMAIN, &everything())
        .await
        .unwrap();
    assert_eq!(page.messages, [read_back(&first)]);
    // Nor did it queue a second copy.
    assert_eq!(s.offline_count("juliet", DOMAIN).await.unwrap(), 1);

    // Still a duplicate once delivered (no longer offline), and next to new messages.
    assert_eq!(s.take_offline("juliet", DOMAIN, 10).await.unwrap().len(), 1);
    let batch = [
        msg("juliet", "c", ROMEO, 300),
        resent,
        msg("juliet", "d", ROMEO, 400),
    ];
    assert_eq!(
        store(&s, &batch, NO_LIMIT).await,
        [
            Stored::Archived,
            Stored::Duplicate("a".to_owned()),
            Stored::Archived
        ]
    );
    assert_eq!(all_ids(&s, "juliet").await, ["a", "c", "d"]);
    assert_eq!(s.offline_count("juliet", DOMAIN).await.unwrap(), 0);
}

pub async fn duplicate_origin_within_one_batch(b: &impl Backend) {
    let s = with_users(b, &["juliet"]).await;
    let batch = [
        from_origin(queued("juliet", "x", 1), "o1"),
        from_origin(msg("juliet", "y", ROMEO, 2), "o2"),
        from_origin(queued("juliet", "x-again", 3), "o1"),
        from_origin(msg("juliet", "y-again", ROMEO, 4), "o2"),
        from_origin(queued("juliet", "x-thrice", 5), "o1"),
    ];
    assert_eq!(
        store(&s, &batch, NO_LIMIT).await,
        [
            Stored::Archived,
            Stored::Archived,
            Stored::Duplicate("x".to_owned()),
            Stored::Duplicate("y".to_owned()),
            Stored::Duplicate("x".to_owned()),
        ]
    );
    assert_eq!(all_ids(&s, "juliet").await, ["x", "y"]);
    assert_eq!(s.offline_count("juliet", DOMAIN).await.unwrap(), 1);
}

pub async fn origin_is_per_owner_and_none_never_duplicates(b: &impl Backend) {
    let s = with_users(b, &["juliet", "romeo"]).await;
    s.create_user("juliet", "montague.lit", &creds(9))
        .await
        .unwrap();
    let origin = "juliet@capulet.lit/balcony m1";
    let mut elsewhere = from_origin(msg("juliet", "j2", ROMEO, 1), origin);
    elsewhere.domain = "montague.lit".to_owned();
    // One message, each owner's copy: the sender's and the recipient's.
    let batch = [
        from_origin(msg("juliet", "j1", ROMEO, 1), origin),
        from_origin(queued("romeo", "r1", 1), origin),
        elsewhere,
    ];
    assert_eq!(store(&s, &batch, NO_LIMIT).await, vec![Stored::Archived; 3]);

    // No origin: the same message twice is two messages, within a batch and across.
    let plain = |id: &str| msg("juliet", id, ROMEO, 5);
    assert_eq!(
        store(&s, &[plain("n1"), plain("n2")], NO_LIMIT).await,
        vec![Stored::Archived; 2]
    );
    assert_eq!(
        store(&s, &[plain("n3")], NO_LIMIT).await,
        [Stored::Archived]
    );

    assert_eq!(all_ids(&s, "juliet").await, ["j1", "n1", "n2", "n3"]);
    assert_eq!(all_ids(&s, "romeo").await, ["r1"]);
    let q = everything();
    let other = s.query_archive("juliet", "montague.lit", &q).await.unwrap();
    assert_eq!(ids(&other.messages), ["j2"]);
}

pub async fn missing_owner_is_no_such_user_and_the_rest_is_written(b: &impl Backend) {
    let s = with_users(b, &["juliet"]).await;
    let mut wrong_domain = msg("juliet", "d", ROMEO, 4);
    wrong_domain.domain = "montague.lit".to_owned();
    let batch = [
        msg("juliet", "a", ROMEO, 1),
        msg("ghost", "b", ROMEO, 2),
        queued("juliet", "c", 3),
        wrong_domain,
        from_origin(queued("ghost", "e", 5), "o"),
        from_origin(msg("juliet", "f", ROMEO, 6), "o"),
    ];
    assert_eq!(
        store(&s, &batch, NO_LIMIT).await,
        [
            Stored::Archived,
            Stored::NoSuchUser,
            Stored::Archived,
            Stored::NoSuchUser,
            Stored::NoSuchUser,
            Stored::Archived,
        ]
    );
    assert_eq!(all_ids(&s, "juliet").await, ["a", "c", "f"]);
    assert_eq!(s.offline_count("juliet", DOMAIN).await.unwrap(), 1);

    // Nothing was kept for the missing accounts: created now, they start empty.
    s.create_user("ghost", DOMAIN, &creds(2)).await.unwrap();
    s.create_user("juliet", "montague.lit", &creds(3))
        .await
        .unwrap();
    assert!(all_ids(&s, "ghost").await.is_empty());
    assert_eq!(s.offline_count("ghost", DOMAIN).await.unwrap(), 0);
    let q = everything();
    let other = s.query_archive("juliet", "montague.lit", &q).await.unwrap();
    assert!(other.messages.is_empty());
    // And the origin the missing one carried is free.
    assert_eq!(
        store(&s, &[from_origin(queued("ghost", "g", 7), "o")], NO_LIMIT).await,
        [Stored::Archived]
    );
}

pub async fn invalid_message_writes_nothing_of_its_batch(b: &impl Backend) {
    let s = with_users(b, &["juliet"]).await;
    // The valid message comes first, so a row-by-row write would have kept it.
    let good = from_origin(queued("juliet", "good", 1), "o");
    let bad = [
        NewMessage {
            stanza_id: String::new(),
            ..msg("juliet", "x", ROMEO, 2)
        },
        NewMessage {
            stanza: String::new(),
            ..msg("juliet", "y", ROMEO, 2)
        },
        NewMessage {
            with: String::new(),
            ..msg("juliet", "z", ROMEO, 2)
        },
    ];
    for bad in bad {
        let batch = [good.clone(), bad.clone(), msg("juliet", "after", ROMEO, 3)];
        let got = s.archive_messages(&batch, NO_LIMIT).await;
        assert!(
            matches!(got, Err(StoreError::InvalidMessage(_))),
            "{bad:?}: {got:?}"
        );
        assert!(all_ids(&s, "juliet").await.is_empty(), "{bad:?}");
        assert_eq!(s.offline_count("juliet", DOMAIN).await.unwrap(), 0);
    }
    // Had `good` been written, this would be a duplicate.
    assert_eq!(store(&s, &[good], NO_LIMIT).await, [Stored::Archived]);
}

pub async fn deleting_the_account_deletes_its_archive(b: &impl Backend) {
    let s = with_users(b, &["juliet", "romeo"]).await;
    let batch = [
        from_origin(queued("juliet", "a", 1), "o"),
        msg("juliet", "b", ROMEO, 2),
        from_origin(queued("romeo", "r", 3), "o"),
    ];
    store(&s, &batch, NO_LIMIT).await;
    s.delete_user("juliet", DOMAIN).await.unwrap();
    assert_eq!(
        store(&s, &[queued("juliet", "c", 4)], NO_LIMIT).await,
        [Stored::NoSuchUser]
    );

    s.create_user("juliet", DOMAIN, &creds(3)).await.unwrap();
    assert!(all_ids(&s, "juliet").await.is_empty());
    assert_eq!(s.offline_count("juliet", DOMAIN).await.unwrap(), 0);
    assert!(
        s.take_offline("juliet", DOMAIN, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let q = ArchiveQuery {
        page: Page::After("a".to_owned()),
        max: 10,
        ..ArchiveQuery::default()
    };
    let got = s.query_archive("juliet", DOMAIN, &q).await;
    assert!(matches!(got, Err(StoreError::ArchiveIdNotFound)), "{got:?}");
    // The old archive's IDs and origins are free again.
    assert_eq!(
        store(&s, &[from_origin(queued("juliet", "a", 5), "o")], NO_LIMIT).await,
        [Stored::Archived]
    );
    assert_eq!(all_ids(&s, "juliet").await, ["a"]);

    // Romeo's archive and queue are untouched.
    assert_eq!(all_ids(&s, "romeo").await, ["r"]);
    assert_eq!(s.offline_count("romeo", DOMAIN).await.unwrap(), 1);
}

/// The server writes and delivers; another handle (another process) sees it at once.
pub async fn two_handles_share_the_archive(b: &impl Backend) {
    let one = with_users(b, &["juliet"]).await;
    let two = b.open().await;
    let batch = [
        from_origin(queued("juliet", "a", 1), "o1"),
        msg("juliet", "b", ROMEO, 2),
    ];
    store(&one, &batch, NO_LIMIT).await;
    assert_eq!(all_ids(&two, "juliet").await, ["a", "b"]);
    assert_eq!(two.offline_count("juliet", DOMAIN).await.unwrap(), 1);

    assert_eq!(
        two.take_offline("juliet", DOMAIN, 10).await.unwrap(),
        [read_back(&batch[0])]
    );
    assert_eq!(one.offline_count("juliet", DOMAIN).await.unwrap(), 0);
    assert!(
        one.take_offline("juliet", DOMAIN, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        one.requeue_offline("juliet", DOMAIN, &strings(&["a"]))
            .await
            .unwrap(),
        1
    );
    assert_eq!(two.offline_count("juliet", DOMAIN).await.unwrap(), 1);

    // Origins written through one handle are duplicates through the other.
    assert_eq!(
        store(
            &two,
            &[from_origin(msg("juliet", "c", ROMEO, 3), "o2")],
            NO_LIMIT
        )
        .await,
        [Stored::Archived]
    );
    let resent = [
        from_origin(msg("juliet", "d", ROMEO, 4), "o2"),
        from_origin(queued("juliet", "e", 5), "o1"),
    ];
    assert_eq!(
        store(&one, &resent, NO_LIMIT).await,
        [
            Stored::Duplicate("c".to_owned()),
            Stored::Duplicate("a".to_owned())
        ]
    );
    // So is the offline limit: one queued message is all there is room for.
    assert_eq!(
        store(&two, &[queued("juliet", "f", 6)], 1).await,
        [Stored::OfflineFull]
    );
    assert_eq!(all_ids(&one, "juliet").await, ["a", "b", "c"]);
}

/// Two servers on one database: their batches for one owner must not together exceed
/// the offline limit or archive one origin twice.
pub async fn concurrent_batches_keep_the_limit_and_origins(b: &impl Backend) {
    const WRITERS: usize = 8;
    const EACH: usize = 5;
    const MAX: usize = 12;
    let first = with_users(b, &["juliet", "romeo"]).await;
    let mut handles = vec![first];
    for _ in 1..4 {
        handles.push(b.open().await);
    }

    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..WRITERS {
        let s = handles[w % handles.len()].clone();
        tasks.spawn(async move {
            // Both owners in every batch, in either order, as a server would write them.
            let mut batch: Vec<_> = (0..EACH)
                .map(|i| queued("juliet", &format!("w{w}-{i}"), i as i64))
                .collect();
            let copy = from_origin(msg("romeo", &format!("c{w}"), NURSE, 0), "same");
            if w % 2 == 0 {
                batch.push(copy);
            } else {
                batch.insert(0, copy);
            }
            let stored = s.archive_messages(&batch, MAX).await.unwrap();
            batch.into_iter().zip(stored).collect::<Vec<_>>()
        });
    }
    let mut archived = BTreeSet::new();
    let mut origin_winners = Vec::new();
    let mut duplicates_of = Vec::new();
    while let Some(done) = tasks.join_next().await {
        for (m, stored) in done.unwrap() {
            match (m.localpart.as_str(), stored) {
                ("juliet", Stored::Archived) => {
                    archived.insert(m.stanza_id);
                }
                ("juliet", Stored::OfflineFull) => {}
                ("romeo", Stored::Archived) => origin_winners.push(m.stanza_id),
                ("romeo", Stored::Duplicate(id)) => duplicates_of.push(id),
                other => panic!("unexpected {other:?}"),
            }
        }
    }
    assert_eq!(archived.len(), MAX);
    assert_eq!(
        all_ids(&handles[1], "juliet")
            .await
            .into_iter()
            .collect::<BTreeSet<_>>(),
        archived
    );
    assert_eq!(
        handles[2].offline_count("juliet", DOMAIN).await.unwrap(),
        MAX as u64
    );

    assert_eq!(origin_winners.len(), 1, "{origin_winners:?}");
    assert_eq!(duplicates_of, vec![origin_winners[0].clone(); WRITERS - 1]);
    assert_eq!(all_ids(&handles[3], "romeo").await, origin_winners);
}
