//! Reading the archive (XEP-0313 filters, XEP-0059 paging): filters, page bounds and
//! `complete`, anchors, and owners kept apart.

use pipit_store::{ArchiveQuery, NewMessage, Page, SharedStore, StoreError, Stored};

use super::*;
use crate::suite::{Backend, creds};

pub async fn query_filters_by_peer_and_inclusive_time(b: &impl Backend) {
    let s = with_users(b, &["juliet"]).await;
    let batch = [
        msg("juliet", "a", ROMEO, 100),
        msg("juliet", "b", NURSE, 200),
        msg("juliet", "c", ROMEO, 200),
        msg("juliet", "d", NURSE, 300),
        msg("juliet", "e", ROMEO, 400),
    ];
    store(&s, &batch, NO_LIMIT).await;
    let q = |with: Option<&str>, start: Option<i64>, end: Option<i64>| ArchiveQuery {
        with: with.map(str::to_owned),
        start,
        end,
        ..everything()
    };
    let cases: [(ArchiveQuery, &[&str]); 11] = [
        (q(None, None, None), &["a", "b", "c", "d", "e"]),
        (q(Some(ROMEO), None, None), &["a", "c", "e"]),
        (q(Some(NURSE), None, None), &["b", "d"]),
        (q(Some("tybalt@capulet.lit"), None, None), &[]),
        (q(None, Some(200), None), &["b", "c", "d", "e"]),
        (q(None, None, Some(200)), &["a", "b", "c"]),
        (q(None, Some(200), Some(300)), &["b", "c", "d"]),
        (q(None, Some(200), Some(200)), &["b", "c"]),
        (q(None, Some(201), Some(299)), &[]),
        (q(Some(ROMEO), Some(200), None), &["c", "e"]),
        (q(Some(NURSE), Some(101), Some(399)), &["b", "d"]),
    ];
    for (query, want) in cases {
        let page = s.query_archive("juliet", DOMAIN, &query).await.unwrap();
        assert_eq!(ids(&page.messages), *want, "{query:?}");
        assert!(page.complete, "{query:?}");
    }
}

pub async fn pages_have_max_and_complete(b: &impl Backend) {
    let s = with_users(b, &["juliet"]).await;
    let batch: Vec<_> = (1..=7)
        .map(|i| msg("juliet", &format!("m{i}"), ROMEO, i))
        .collect();
    store(&s, &batch, NO_LIMIT).await;
    let after = |id: &str| Page::After(id.to_owned());
    let before = |id: &str| Page::Before(id.to_owned());
    let cases: [(Page, usize, &[&str], bool); 14] = [
        (Page::First, 3, &["m1", "m2", "m3"], false),
        (after("m3"), 3, &["m4", "m5", "m6"], false),
        (after("m6"), 3, &["m7"], true),
        (after("m7"), 3, &[], true),
        (Page::Last, 3, &["m5", "m6", "m7"], false),
        (before("m5"), 3, &["m2", "m3", "m4"], false),
        (before("m2"), 3, &["m1"], true),
        (before("m1"), 3, &[], true),
        // A page exactly the size of what is left is complete.
        (after("m4"), 3, &["m5", "m6", "m7"], true),
        (before("m4"), 3, &["m1", "m2", "m3"], true),
        (
            Page::First,
            7,
            &["m1", "m2", "m3", "m4", "m5", "m6", "m7"],
            true,
        ),
        (
            Page::Last,
            7,
            &["m1", "m2", "m3", "m4", "m5", "m6", "m7"],
            true,
        ),
        (Page::First, 6, &["m1", "m2", "m3", "m4", "m5", "m6"], false),
        (Page::Last, 6, &["m2", "m3", "m4", "m5", "m6", "m7"], false),
    ];
    for (p, max, want, complete) in cases {
        let got = page(&s, "juliet", p.clone(), max).await;
        assert_eq!(got, (strings(want), complete), "{p:?} max {max}");
    }

    // One more message: the pages that reached the newest end no longer do.
    store(&s, &[msg("juliet", "m8", ROMEO, 8)], NO_LIMIT).await;
    let cases: [(Page, usize, &[&str], bool); 4] = [
        (after("m4"), 3, &["m5", "m6", "m7"], false),
        (
            Page::First,
            7,
            &["m1", "m2", "m3", "m4", "m5", "m6", "m7"],
            false,
        ),
        (
            Page::Last,
            7,
            &["m2", "m3", "m4", "m5", "m6", "m7", "m8"],
            false,
        ),
        // The oldest end has not moved.
        (before("m4"), 3, &["m1", "m2", "m3"], true),
    ];
    for (p, max, want, complete) in cases {
        let got = page(&s, "juliet", p.clone(), max).await;
        assert_eq!(got, (strings(want), complete), "{p:?} max {max}");
    }
}

/// Pages through `q`'s matches forward (`First`, then `After` the last of each page)
/// or backward (`Last`, then `Before` the first); every ID met, oldest first.
async fn walk(s: &SharedStore, q: &ArchiveQuery, forward: bool) -> Vec<String> {
    let mut q = ArchiveQuery {
        page: if forward { Page::First } else { Page::Last },
        ..q.clone()
    };
    let mut pages: Vec<Vec<String>> = Vec::new();
    for _ in 0..100 {
        let page = s.query_archive("juliet", DOMAIN, &q).await.unwrap();
        assert!(page.messages.len() <= q.max, "{q:?}");
        let page_ids = ids(&page.messages);
        if page.complete {
            pages.push(page_ids);
            if !forward {
                pages.reverse();
            }
            return pages.concat();
        }
        assert_eq!(
            page_ids.len(),
            q.max,
            "a short page must be complete: {q:?}"
        );
        q.page = if forward {
            Page::After(page_ids.last().unwrap().clone())
        } else {
            Page::Before(page_ids[0].clone())
        };
        pages.push(page_ids);
    }
    panic!("paging never completed: {pages:?}");
}

pub async fn paging_visits_every_message_once(b: &impl Backend) {
    let s = with_users(b, &["juliet", "romeo"]).await;
    // Times tie in pairs, peers alternate, and romeo's rows lie in between.
    let mut batch = Vec::new();
    for i in 0..23 {
        let with = if i % 3 == 0 { NURSE } else { ROMEO };
        batch.push(msg("juliet", &format!("m{i:02}"), with, i / 2));
        batch.push(msg("romeo", &format!("r{i:02}"), "juliet@capulet.lit", i));
    }
    for chunk in batch.chunks(5) {
        store(&s, chunk, NO_LIMIT).await;
    }
    let juliets: Vec<&NewMessage> = batch.iter().filter(|m| m.localpart == "juliet").collect();
    let want = |keep: &dyn Fn(&NewMessage) -> bool| -> Vec<String> {
        juliets
            .iter()
            .filter(|m| keep(m))
            .map(|m| m.stanza_id.clone())
            .collect()
    };

    let every = want(&|_| true);
    for max in [1, 4, 23, 24] {
        let q = ArchiveQuery {
            max,
            ..ArchiveQuery::default()
        };
        assert_eq!(walk(&s, &q, true).await, every, "forward, max {max}");
        assert_eq!(walk(&s, &q, false).await, every, "backward, max {max}");
    }

    // Filters hold on every page.
    let romeos = ArchiveQuery {
        with: Some(ROMEO.to_owned()),
        max: 4,
        ..ArchiveQuery::default()
    };
    let want_romeo = want(&|m| m.with == ROMEO);
    assert_eq!(walk(&s, &romeos, true).await, want_romeo);
    assert_eq!(walk(&s, &romeos, false).await, want_romeo);
    let window = ArchiveQuery {
        with: Some(NURSE.to_owned()),
        start: Some(2),
        end: Some(9),
        max: 2,
        ..ArchiveQuery::default()
    };
    let want_window = want(&|m| m.with == NURSE && (2..=9).contains(&m.at_micros));
    assert!(want_window.len() > 2);
    assert_eq!(walk(&s, &window, true).await, want_window);
    assert_eq!(walk(&s, &window, false).await, want_window);
}

pub async fn paging_anchors_ignore_the_filters(b: &impl Backend) {
    // A client may anchor at any message of the archive, e.g. one it got from an
    // unfiltered query, and page a filtered view from there.
    let s = with_users(b, &["juliet"]).await;
    let batch = [
        msg("juliet", "a", ROMEO, 1),
        msg("juliet", "b", NURSE, 2),
        msg("juliet", "c", ROMEO, 3),
        msg("juliet", "d", NURSE, 4),
        msg("juliet", "e", ROMEO, 5),
    ];
    store(&s, &batch, NO_LIMIT).await;
    let romeo = |page: Page| ArchiveQuery {
        with: Some(ROMEO.to_owned()),
        page,
        max: 1,
        ..ArchiveQuery::default()
    };
    assert_eq!(
        ids_of(&s, "juliet", &romeo(Page::After("b".to_owned()))).await,
        ["c"]
    );
    assert_eq!(
        ids_of(&s, "juliet", &romeo(Page::Before("d".to_owned()))).await,
        ["c"]
    );
    let p = s
        .query_archive("juliet", DOMAIN, &romeo(Page::After("d".to_owned())))
        .await
        .unwrap();
    assert_eq!((ids(&p.messages), p.complete), (strings(&["e"]), true));
}

pub async fn unknown_anchor_is_archive_id_not_found(b: &impl Backend) {
    let s = with_users(b, &["juliet", "romeo"]).await;
    let batch = [
        msg("juliet", "a", ROMEO, 1),
        msg("juliet", "b", ROMEO, 2),
        msg("romeo", "r1", ROMEO, 3),
    ];
    store(&s, &batch, NO_LIMIT).await;
    // A refused message got no archive ID either.
    assert_eq!(
        store(&s, &[queued("juliet", "refused", 4)], 0).await,
        [Stored::OfflineFull]
    );
    for id in ["nope", "", "r1", "refused", "A"] {
        for p in [Page::After(id.to_owned()), Page::Before(id.to_owned())] {
            let q = ArchiveQuery {
                page: p,
                max: 10,
                ..ArchiveQuery::default()
            };
            let got = s.query_archive("juliet", DOMAIN, &q).await;
            assert!(
                matches!(got, Err(StoreError::ArchiveIdNotFound)),
                "{q:?}: {got:?}"
            );
        }
    }
}

pub async fn other_owners_rows_never_appear(b: &impl Backend) {
    let s = with_users(b, &["juliet", "romeo"]).await;
    s.create_user("juliet", "montague.lit", &creds(5))
        .await
        .unwrap();
    // Archive IDs are unique per owner only: all three use the same ones.
    let mut batch = Vec::new();
    for (localpart, domain) in [
        ("juliet", DOMAIN),
        ("romeo", DOMAIN),
        ("juliet", "montague.lit"),
    ] {
        for (i, id) in ["s1", "s2", "s3"].into_iter().enumerate() {
            batch.push(NewMessage {
                domain: domain.to_owned(),
                stanza: format!("<message id='{id}' to='{localpart}@{domain}'/>"),
                ..queued(localpart, id, i as i64)
            });
        }
    }
    assert_eq!(store(&s, &batch, NO_LIMIT).await, vec![Stored::Archived; 9]);

    for (n, (localpart, domain)) in [
        ("juliet", DOMAIN),
        ("romeo", DOMAIN),
        ("juliet", "montague.lit"),
    ]
    .into_iter()
    .enumerate()
    {
        let own: Vec<_> = batch[n * 3..n * 3 + 3].iter().map(read_back).collect();
        let all = s
            .query_archive(localpart, domain, &everything())
            .await
            .unwrap();
        assert_eq!(all.messages, own, "{localpart}@{domain}");
        let q = ArchiveQuery {
            with: Some(ROMEO.to_owned()),
            page: Page::After("s1".to_owned()),
            ..everything()
        };
        let after = s.query_archive(localpart, domain, &q).await.unwrap();
        assert_eq!(after.messages, own[1..], "{localpart}@{domain}");
        let q = ArchiveQuery {
            page: Page::Before("s3".to_owned()),
            ..everything()
        };
        let before = s.query_archive(localpart, domain, &q).await.unwrap();
        assert_eq!(before.messages, own[..2], "{localpart}@{domain}");
        let q = ArchiveQuery {
            page: Page::Last,
            max: 2,
            ..everything()
        };
        let last = s.query_archive(localpart, domain, &q).await.unwrap();
        assert_eq!(last.messages, own[1..], "{localpart}@{domain}");
    }

    // The offline queues are apart as well.
    assert_eq!(s.offline_count("juliet", "montague.lit").await.unwrap(), 3);
    let taken = s.take_offline("juliet", DOMAIN, 10).await.unwrap();
    assert_eq!(taken, batch[..3].iter().map(read_back).collect::<Vec<_>>());
    assert_eq!(s.offline_count("romeo", DOMAIN).await.unwrap(), 3);
    assert_eq!(s.offline_count("juliet", "montague.lit").await.unwrap(), 3);
    let s2 = strings(&["s2"]);
    assert_eq!(s.requeue_offline("juliet", DOMAIN, &s2).await.unwrap(), 1);
    assert_eq!(s.offline_count("juliet", DOMAIN).await.unwrap(), 1);
    assert_eq!(s.offline_count("romeo", DOMAIN).await.unwrap(), 3);
}
