//! The offline queue (XEP-0160): the per-owner limit, taking, putting back, and
//! several sessions taking at once.

use std::collections::BTreeSet;

use pipit_store::Stored;

use super::*;
use crate::suite::Backend;

pub async fn offline_limit_holds_across_batches(b: &impl Backend) {
    let s = with_users(b, &["juliet", "romeo"]).await;
    const MAX: usize = 3;
    let first = [queued("juliet", "o1", 1), queued("juliet", "o2", 2)];
    assert_eq!(store(&s, &first, MAX).await, vec![Stored::Archived; 2]);

    let second = [
        queued("juliet", "o3", 3),
        queued("juliet", "o4", 4),
        // Not offline: the full queue does not stop it being archived.
        msg("juliet", "n5", ROMEO, 5),
        // Another owner's queue is counted apart.
        queued("romeo", "r1", 5),
    ];
    assert_eq!(
        store(&s, &second, MAX).await,
        [
            Stored::Archived,
            Stored::OfflineFull,
            Stored::Archived,
            Stored::Archived
        ]
    );
    assert_eq!(s.offline_count("juliet", DOMAIN).await.unwrap(), 3);
    assert_eq!(s.offline_count("romeo", DOMAIN).await.unwrap(), 1);
    // The refused message is not archived either.
    assert_eq!(all_ids(&s, "juliet").await, ["o1", "o2", "o3", "n5"]);
    assert_eq!(
        store(&s, &[queued("juliet", "o4", 6)], MAX).await,
        [Stored::OfflineFull]
    );
    assert_eq!(all_ids(&s, "juliet").await, ["o1", "o2", "o3", "n5"]);

    // Taking frees room, for exactly as many as were taken.
    assert_eq!(s.take_offline("juliet", DOMAIN, 2).await.unwrap().len(), 2);
    assert_eq!(s.offline_count("juliet", DOMAIN).await.unwrap(), 1);
    let third = [
        queued("juliet", "o4", 7),
        queued("juliet", "o6", 8),
        queued("juliet", "o7", 9),
    ];
    assert_eq!(
        store(&s, &third, MAX).await,
        [Stored::Archived, Stored::Archived, Stored::OfflineFull]
    );
    assert_eq!(s.offline_count("juliet", DOMAIN).await.unwrap(), 3);
    assert_eq!(
        all_ids(&s, "juliet").await,
        ["o1", "o2", "o3", "n5", "o4", "o6"]
    );
}

pub async fn offline_limit_holds_within_one_batch(b: &impl Backend) {
    let s = with_users(b, &["juliet", "romeo"]).await;
    let batch = [
        queued("juliet", "j1", 1),
        queued("juliet", "j2", 2),
        queued("romeo", "r1", 3),
        queued("juliet", "j3", 4),
        msg("juliet", "j4", NURSE, 5),
        queued("juliet", "j5", 6),
        queued("romeo", "r2", 7),
    ];
    assert_eq!(
        store(&s, &batch, 2).await,
        [
            Stored::Archived,
            Stored::Archived,
            Stored::Archived,
            Stored::OfflineFull,
            Stored::Archived,
            Stored::OfflineFull,
            Stored::Archived,
        ]
    );
    assert_eq!(all_ids(&s, "juliet").await, ["j1", "j2", "j4"]);
    assert_eq!(all_ids(&s, "romeo").await, ["r1", "r2"]);
    assert_eq!(s.offline_count("juliet", DOMAIN).await.unwrap(), 2);
    assert_eq!(s.offline_count("romeo", DOMAIN).await.unwrap(), 2);

    // No offline storage at all: only the offline messages are refused.
    assert_eq!(
        store(
            &s,
            &[queued("romeo", "r3", 8), msg("romeo", "r4", NURSE, 9)],
            0
        )
        .await,
        [Stored::OfflineFull, Stored::Archived]
    );
    assert_eq!(all_ids(&s, "romeo").await, ["r1", "r2", "r4"]);
}

pub async fn take_offline_is_oldest_first_and_keeps_the_archive(b: &impl Backend) {
    let s = with_users(b, &["juliet", "romeo"]).await;
    let batch = [
        queued("juliet", "q1", 10),
        msg("juliet", "p1", NURSE, 11),
        queued("juliet", "q2", 12),
        queued("romeo", "r1", 13),
        queued("juliet", "q3", 14),
    ];
    store(&s, &batch, NO_LIMIT).await;
    let more = [queued("juliet", "q4", 15), queued("juliet", "q5", 16)];
    store(&s, &more, NO_LIMIT).await;
    assert_eq!(s.offline_count("juliet", DOMAIN).await.unwrap(), 5);

    // Every field, oldest first, at most `max`.
    assert_eq!(
        s.take_offline("juliet", DOMAIN, 2).await.unwrap(),
        [read_back(&batch[0]), read_back(&batch[2])]
    );
    assert_eq!(s.offline_count("juliet", DOMAIN).await.unwrap(), 3);
    assert!(
        s.take_offline("juliet", DOMAIN, 0)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(s.offline_count("juliet", DOMAIN).await.unwrap(), 3);

    // A second take gets the rest, a third nothing.
    assert_eq!(
        s.take_offline("juliet", DOMAIN, 10).await.unwrap(),
        [
            read_back(&batch[4]),
            read_back(&more[0]),
            read_back(&more[1])
        ]
    );
    assert_eq!(s.offline_count("juliet", DOMAIN).await.unwrap(), 0);
    assert!(
        s.take_offline("juliet", DOMAIN, 10)
            .await
            .unwrap()
            .is_empty()
    );

    // Taken messages stay archived; another owner's queue is untouched.
    assert_eq!(
        all_ids(&s, "juliet").await,
        ["q1", "p1", "q2", "q3", "q4", "q5"]
    );
    assert_eq!(s.offline_count("romeo", DOMAIN).await.unwrap(), 1);
    assert_eq!(
        s.take_offline("romeo", DOMAIN, 10).await.unwrap(),
        [read_back(&batch[3])]
    );
}

pub async fn requeue_puts_taken_messages_back(b: &impl Backend) {
    let s = with_users(b, &["juliet", "romeo"]).await;
    let batch: Vec<_> = (1..=4)
        .map(|i| queued("juliet", &format!("q{i}"), i))
        .chain([queued("romeo", "r1", 5), msg("juliet", "p", NURSE, 6)])
        .collect();
    store(&s, &batch, NO_LIMIT).await;
    assert_eq!(
        ids(&s.take_offline("juliet", DOMAIN, 3).await.unwrap()),
        ["q1", "q2", "q3"]
    );

    // Unknown IDs, and another owner's, are ignored and not counted.
    let back = strings(&["q3", "q1", "nope", "r1"]);
    assert_eq!(s.requeue_offline("juliet", DOMAIN, &back).await.unwrap(), 2);
    assert_eq!(s.offline_count("juliet", DOMAIN).await.unwrap(), 3);
    assert_eq!(s.requeue_offline("juliet", DOMAIN, &[]).await.unwrap(), 0);
    assert_eq!(
        s.requeue_offline("romeo", DOMAIN, &strings(&["q2"]))
            .await
            .unwrap(),
        0
    );
    assert_eq!(s.offline_count("romeo", DOMAIN).await.unwrap(), 1);
    assert_eq!(s.offline_count("juliet", DOMAIN).await.unwrap(), 3);

    // Back in queue order (oldest first), whatever order they were requeued in.
    assert_eq!(
        s.take_offline("juliet", DOMAIN, 10).await.unwrap(),
        [
            read_back(&batch[0]),
            read_back(&batch[2]),
            read_back(&batch[3])
        ]
    );
    // Requeueing moved nothing in the archive and copied nothing.
    assert_eq!(all_ids(&s, "juliet").await, ["q1", "q2", "q3", "q4", "p"]);
    // A message that was never offline can be queued too (its delivery failed).
    assert_eq!(
        s.requeue_offline("juliet", DOMAIN, &strings(&["p"]))
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        ids(&s.take_offline("juliet", DOMAIN, 10).await.unwrap()),
        ["p"]
    );
}

pub async fn concurrent_takes_hand_out_each_message_once(b: &impl Backend) {
    const QUEUED: usize = 60;
    const TAKERS: usize = 12;
    let handles = [
        with_users(b, &["juliet", "romeo"]).await,
        b.open().await,
        b.open().await,
    ];
    let queue: Vec<_> = (0..QUEUED)
        .map(|i| queued("juliet", &format!("q{i:02}"), i as i64))
        .collect();
    for chunk in queue.chunks(10) {
        store(&handles[0], chunk, NO_LIMIT).await;
    }
    store(&handles[0], &[queued("romeo", "r", 0)], NO_LIMIT).await;

    // Several sessions of one account, over several handles, draining at once.
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..TAKERS {
        let s = handles[i % handles.len()].clone();
        tasks.spawn(async move {
            let mut takes = Vec::new();
            loop {
                let taken = s.take_offline("juliet", DOMAIN, 3).await.unwrap();
                if taken.is_empty() {
                    return takes;
                }
                assert!(taken.len() <= 3);
                takes.push(ids(&taken));
            }
        });
    }
    let mut got = Vec::new();
    while let Some(done) = tasks.join_next().await {
        for take in done.unwrap() {
            // Each take is in queue order (IDs sort as queued).
            assert!(take.is_sorted(), "{take:?}");
            got.extend(take);
        }
    }
    let distinct: BTreeSet<_> = got.iter().cloned().collect();
    assert_eq!(got.len(), distinct.len(), "handed out twice: {got:?}");
    assert_eq!(
        distinct,
        queue.iter().map(|m| m.stanza_id.clone()).collect()
    );
    assert_eq!(handles[1].offline_count("juliet", DOMAIN).await.unwrap(), 0);
    assert_eq!(handles[2].offline_count("romeo", DOMAIN).await.unwrap(), 1);
    assert_eq!(all_ids(&handles[0], "juliet").await.len(), QUEUED);
}
