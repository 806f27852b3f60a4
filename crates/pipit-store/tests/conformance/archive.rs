//! The conformance cases for [`ArchiveStore`]: the message archive (XEP-0313) and the
//! offline queue (XEP-0160), one table. `main.rs` runs every case listed in
//! [`for_each_case!`] against each backend, like those of `suite.rs`. The cases live in
//! `write.rs`, `offline.rs` and `query.rs`; the helpers they share, here.

mod offline;
mod query;
mod write;

pub use offline::*;
pub use query::*;
pub use write::*;

use pipit_store::{ArchiveQuery, ArchivedMessage, NewMessage, Page, SharedStore, Stored};

use crate::suite::{Backend, creds};

/// Calls `$m!(args..., archive: <every case below>)`; add new cases here.
macro_rules! for_each_case {
    ($m:ident $(, $arg:expr)*) => {
        $m!(
            $($arg,)*
            archive:
            batch_roundtrips_every_field_in_insertion_order,
            duplicate_origin_is_written_once,
            duplicate_origin_within_one_batch,
            origin_is_per_owner_and_none_never_duplicates,
            missing_owner_is_no_such_user_and_the_rest_is_written,
            offline_limit_holds_across_batches,
            offline_limit_holds_within_one_batch,
            take_offline_is_oldest_first_and_keeps_the_archive,
            requeue_puts_taken_messages_back,
            query_filters_by_peer_and_inclusive_time,
            pages_have_max_and_complete,
            paging_visits_every_message_once,
            paging_anchors_ignore_the_filters,
            unknown_anchor_is_archive_id_not_found,
            other_owners_rows_never_appear,
            invalid_message_writes_nothing_of_its_batch,
            deleting_the_account_deletes_its_archive,
            two_handles_share_the_archive,
            concurrent_takes_hand_out_each_message_once,
            concurrent_batches_keep_the_limit_and_origins,
        );
    };
}
pub(crate) use for_each_case;

/// Every account of these cases lives on this domain, unless a case says otherwise.
const DOMAIN: &str = "capulet.lit";
/// The peer most messages are exchanged with.
const ROMEO: &str = "romeo@montague.lit";
/// Another peer.
const NURSE: &str = "nurse@capulet.lit";
/// A `max_offline` no case reaches.
const NO_LIMIT: usize = 1000;
/// A page large enough for any archive these cases write.
const ALL: usize = 1000;

/// A handle on a database holding these accounts on [`DOMAIN`].
async fn with_users(b: &impl Backend, localparts: &[&str]) -> SharedStore {
    let s = b.open().await;
    for (i, localpart) in localparts.iter().enumerate() {
        s.create_user(localpart, DOMAIN, &creds(i as u8))
            .await
            .unwrap();
    }
    s
}

/// A message in `owner`'s archive (on [`DOMAIN`]) exchanged with `with`, received at
/// `at`; its stanza names its archive ID, so every message's stanza is distinct.
fn msg(owner: &str, id: &str, with: &str, at: i64) -> NewMessage {
    NewMessage {
        localpart: owner.to_owned(),
        domain: DOMAIN.to_owned(),
        stanza_id: id.to_owned(),
        with: with.to_owned(),
        origin: None,
        at_micros: at,
        stanza: format!("<message id='{id}'><body>{id}</body></message>"),
        offline: false,
    }
}

/// [`msg`] from [`ROMEO`], waiting in `owner`'s offline queue.
fn queued(owner: &str, id: &str, at: i64) -> NewMessage {
    NewMessage {
        offline: true,
        ..msg(owner, id, ROMEO, at)
    }
}

/// `m` with this origin.
fn from_origin(m: NewMessage, origin: &str) -> NewMessage {
    NewMessage {
        origin: Some(origin.to_owned()),
        ..m
    }
}

/// What `query_archive` and `take_offline` must give back for `m`.
fn read_back(m: &NewMessage) -> ArchivedMessage {
    ArchivedMessage {
        stanza_id: m.stanza_id.clone(),
        with: m.with.clone(),
        at_micros: m.at_micros,
        stanza: m.stanza.clone(),
    }
}

async fn store(s: &SharedStore, batch: &[NewMessage], max_offline: usize) -> Vec<Stored> {
    s.archive_messages(batch, max_offline).await.unwrap()
}

/// A query for the whole archive, oldest first.
fn everything() -> ArchiveQuery {
    ArchiveQuery {
        max: ALL,
        ..ArchiveQuery::default()
    }
}

/// The archive IDs of a query's page; panics on an error.
async fn ids_of(s: &SharedStore, owner: &str, q: &ArchiveQuery) -> Vec<String> {
    ids(&s.query_archive(owner, DOMAIN, q).await.unwrap().messages)
}

/// Every archive ID in the owner's archive, oldest first.
async fn all_ids(s: &SharedStore, owner: &str) -> Vec<String> {
    let page = s.query_archive(owner, DOMAIN, &everything()).await.unwrap();
    assert!(page.complete);
    ids(&page.messages)
}

/// A page as (archive IDs, complete).
async fn page(s: &SharedStore, owner: &str, page: Page, max: usize) -> (Vec<String>, bool) {
    let q = ArchiveQuery {
        page,
        max,
        ..ArchiveQuery::default()
    };
    let p = s.query_archive(owner, DOMAIN, &q).await.unwrap();
    (ids(&p.messages), p.complete)
}

fn ids(messages: &[ArchivedMessage]) -> Vec<String> {
    messages.iter().map(|m| m.stanza_id.clone()).collect()
}

/// `names` as owned strings, for comparing with archive IDs.
fn strings(names: &[&str]) -> Vec<String> {
    names.iter().map(|&n| n.to_owned()).collect()
}
