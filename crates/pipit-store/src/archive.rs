//! The message archive (XEP-0313) and the offline queue (XEP-0160), one table.
//!
//! Every message worth keeping is one row per account it belongs to (the sender's
//! copy and the recipient's). A row the recipient could not take yet carries the
//! offline flag; delivering it clears the flag, the archived message stays. So a
//! message is written once per owner, and "stored offline" and "archived" can never
//! disagree about what was acknowledged to its sender.
//!
//! Rows are written in batches ([`ArchiveStore::archive_messages`]): the server
//! gathers what many sessions sent meanwhile into one transaction (group commit),
//! and acknowledges each message to its sender only once that transaction is
//! durable.

use std::collections::HashMap;

use crate::StoreError;

/// One message for one owner's archive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewMessage {
    /// The owning account's localpart.
    pub localpart: String,
    /// The owning account's domain.
    pub domain: String,
    /// The archive ID (XEP-0359 `<stanza-id/>`), unique within the owner's archive.
    pub stanza_id: String,
    /// The bare JID of the other party (the owner's own for a message to oneself).
    pub with: String,
    /// What makes a resent message the same message, e.g. the sender's full JID and
    /// the stanza's `id`; a row whose key the owner's archive holds already is not
    /// written again ([`Stored::Duplicate`]). `None`: never a duplicate.
    pub origin: Option<String>,
    /// When the server received it, in microseconds since the Unix epoch.
    pub at_micros: i64,
    /// The message as the owner receives it, serialised.
    pub stanza: String,
    /// Whether it waits in the owner's offline queue.
    pub offline: bool,
}

/// What became of one [`NewMessage`] of a batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stored {
    /// Written.
    Archived,
    /// The owner's archive holds this `origin` already, under this archive ID.
    Duplicate(String),
    /// Not written: the owner's offline queue holds `max_offline` messages already.
    OfflineFull,
    /// Not written: no such account.
    NoSuchUser,
}

/// One archived message as read back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArchivedMessage {
    /// Its archive ID.
    pub stanza_id: String,
    /// The bare JID of the other party.
    pub with: String,
    /// When the server received it, in microseconds since the Unix epoch.
    pub at_micros: i64,
    /// The message, serialised.
    pub stanza: String,
}

/// Which part of an archive a query wants (XEP-0313 §4.1 filters, XEP-0059 paging).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ArchiveQuery {
    /// Only messages with this bare JID.
    pub with: Option<String>,
    /// Only messages received at or after this time (microseconds).
    pub start: Option<i64>,
    /// Only messages received at or before this time (microseconds).
    pub end: Option<i64>,
    /// Where the page starts or ends.
    pub page: Page,
    /// The most messages to return.
    pub max: usize,
}

/// The position of a page in the matching messages, oldest first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Page {
    /// The oldest `max`.
    #[default]
    First,
    /// The oldest `max` after the message with this archive ID.
    After(String),
    /// The newest `max` before the message with this archive ID.
    Before(String),
    /// The newest `max` (XEP-0059 §2.5, an empty `<before/>`).
    Last,
}

/// A page of archived messages, oldest first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ArchivePage {
    /// The messages.
    pub messages: Vec<ArchivedMessage>,
    /// Whether the page reaches the end of the matching messages in the direction of
    /// paging (XEP-0313 §4.3 `complete`).
    pub complete: bool,
}

/// Archive and offline-queue storage.
#[async_trait::async_trait]
pub trait ArchiveStore {
    /// Writes a batch in one transaction, after which every row is durable. Offline
    /// rows past `max_offline` waiting for their owner are refused (XEP-0160 §2);
    /// a duplicate `origin` is not written twice. One [`Stored`] per message, in order.
    async fn archive_messages(
        &self,
        batch: &[NewMessage],
        max_offline: usize,
    ) -> Result<Vec<Stored>, StoreError>;
    /// Takes up to `max` of the owner's offline messages, oldest first, clearing their
    /// offline flag in the same transaction (they stay archived).
    async fn take_offline(
        &self,
        localpart: &str,
        domain: &str,
        max: usize,
    ) -> Result<Vec<ArchivedMessage>, StoreError>;
    /// Puts messages back in the owner's offline queue, by archive ID (a delivery
    /// that did not reach its client); how many there were.
    async fn requeue_offline(
        &self,
        localpart: &str,
        domain: &str,
        stanza_ids: &[String],
    ) -> Result<u64, StoreError>;
    /// How many messages wait in the owner's offline queue.
    async fn offline_count(&self, localpart: &str, domain: &str) -> Result<u64, StoreError>;
    /// A page of the owner's archive. Err(ArchiveIdNotFound) when the page is
    /// anchored at an ID the archive does not hold (XEP-0313 §4.3, `item-not-found`).
    async fn query_archive(
        &self,
        localpart: &str,
        domain: &str,
        query: &ArchiveQuery,
    ) -> Result<ArchivePage, StoreError>;
}

/// Each owner's offline queue as a batch fills it: read from the database the
/// first time an owner comes up, counted here after that, so the limit holds
/// across the batch's own rows (XEP-0160 §2).
pub(crate) struct OfflineQueues {
    max: usize,
    queued: HashMap<(String, String), usize>,
}

impl OfflineQueues {
    pub(crate) fn new(max: usize) -> Self {
        Self {
            max,
            queued: HashMap::new(),
        }
    }

    /// Whether the queue of `m`'s owner is yet to be read.
    pub(crate) fn unknown(&self, m: &NewMessage) -> bool {
        !self.queued.contains_key(&owner(m))
    }

    /// Whether `m`'s owner's queue, `stored` long in the database if it was yet
    /// to be read, has room for `m`; if so `m` counts from now on.
    pub(crate) fn admit(&mut self, m: &NewMessage, stored: Option<i64>) -> bool {
        let queued = self
            .queued
            .entry(owner(m))
            .or_insert_with(|| stored.map_or(0, |n| usize::try_from(n).unwrap_or(usize::MAX)));
        if *queued >= self.max {
            return false;
        }
        *queued += 1;
        true
    }
}

fn owner(m: &NewMessage) -> (String, String) {
    (m.domain.clone(), m.localpart.clone())
}

/// Checks the parts of a row that the schema cannot.
pub(crate) fn check_new(m: &NewMessage) -> Result<(), StoreError> {
    if m.stanza_id.is_empty() || m.stanza.is_empty() || m.with.is_empty() {
        return Err(StoreError::InvalidMessage(format!(
            "empty archive ID, stanza or peer for {}@{}",
            m.localpart, m.domain
        )));
    }
    Ok(())
}

/// The limit to ask the database for: one more than a page, to tell whether the
/// page is complete.
pub(crate) fn probe_limit(max: usize) -> i64 {
    i64::try_from(max).unwrap_or(i64::MAX - 1) + 1
}

/// Cuts the probe row and orders a page oldest first; says whether it is complete.
pub(crate) fn finish_page(
    mut rows: Vec<ArchivedMessage>,
    max: usize,
    newest_first: bool,
) -> ArchivePage {
    let complete = rows.len() <= max;
    rows.truncate(max);
    if newest_first {
        rows.reverse();
    }
    ArchivePage {
        messages: rows,
        complete,
    }
}
