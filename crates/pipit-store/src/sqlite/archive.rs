//! [`ArchiveStore`] for SQLite.
//!
//! A batch is one `BEGIN IMMEDIATE` transaction (the write lock up front, as in
//! migrations), so it is durable as a whole when `archive_messages` returns.

use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};

use super::SqliteStore;
use crate::StoreError;
use crate::archive::{
    ArchivePage, ArchiveQuery, ArchiveStore, ArchivedMessage, NewMessage, OfflineQueues, Page,
    Stored, check_new, finish_page, probe_limit,
};

/// The columns of [`ArchivedMessage`], in the order [`row_to_message`] reads them.
const MESSAGE_COLUMNS: &str = "stanza_id, with_jid, at_micros, stanza";

fn row_to_message(row: &rusqlite::Row<'_>) -> rusqlite::Result<ArchivedMessage> {
    Ok(ArchivedMessage {
        stanza_id: row.get(0)?,
        with: row.get(1)?,
        at_micros: row.get(2)?,
        stanza: row.get(3)?,
    })
}

fn write_transaction(conn: &Connection) -> rusqlite::Result<Transaction<'_>> {
    Transaction::new_unchecked(conn, TransactionBehavior::Immediate)
}

/// Writes one row inside the batch's transaction.
fn store_one(
    tx: &Transaction<'_>,
    m: &NewMessage,
    queues: &mut OfflineQueues,
) -> Result<Stored, StoreError> {
    if let Some(origin) = &m.origin {
        let existing: Option<String> = tx
            .prepare_cached(
                "SELECT stanza_id FROM archive \
                 WHERE domain = ?1 AND localpart = ?2 AND origin = ?3",
            )?
            .query_row(params![m.domain, m.localpart, origin], |row| row.get(0))
            .optional()?;
        if let Some(id) = existing {
            return Ok(Stored::Duplicate(id));
        }
    }
    if m.offline {
        let stored = if queues.unknown(m) {
            let n: i64 = tx
                .prepare_cached(
                    "SELECT COUNT(*) FROM archive \
                     WHERE domain = ?1 AND localpart = ?2 AND offline = 1",
                )?
                .query_row(params![m.domain, m.localpart], |row| row.get(0))?;
            Some(n)
        } else {
            None
        };
        if !queues.admit(m, stored) {
            return Ok(Stored::OfflineFull);
        }
    }
    // The EXISTS turns a missing account into "no row" rather than a foreign-key
    // error that would abort the whole batch.
    let inserted = tx
        .prepare_cached(
            "INSERT INTO archive \
             (domain, localpart, stanza_id, with_jid, origin, at_micros, stanza, offline) \
             SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8 \
             WHERE EXISTS (SELECT 1 FROM users WHERE domain = ?1 AND localpart = ?2)",
        )?
        .execute(params![
            m.domain,
            m.localpart,
            m.stanza_id,
            m.with,
            m.origin,
            m.at_micros,
            m.stanza,
            m.offline
        ])?;
    Ok(if inserted == 0 {
        Stored::NoSuchUser
    } else {
        Stored::Archived
    })
}

/// The `seq` of an archive ID, for anchoring a page.
fn seq_of(conn: &Connection, domain: &str, localpart: &str, id: &str) -> Result<i64, StoreError> {
    conn.prepare_cached(
        "SELECT seq FROM archive WHERE domain = ?1 AND localpart = ?2 AND stanza_id = ?3",
    )?
    .query_row(params![domain, localpart, id], |row| row.get(0))
    .optional()?
    .ok_or(StoreError::ArchiveIdNotFound)
}

fn query(
    conn: &Connection,
    domain: &str,
    localpart: &str,
    q: &ArchiveQuery,
) -> Result<ArchivePage, StoreError> {
    // Anchors as seq bounds: after → seq > a, before → seq < b.
    let (after, before, newest_first) = match &q.page {
        Page::First => (None, None, false),
        Page::After(id) => (Some(seq_of(conn, domain, localpart, id)?), None, false),
        Page::Before(id) => (None, Some(seq_of(conn, domain, localpart, id)?), true),
        Page::Last => (None, None, true),
    };
    let order = if newest_first { "DESC" } else { "ASC" };
    let sql = format!(
        "SELECT {MESSAGE_COLUMNS} FROM archive \
         WHERE domain = ?1 AND localpart = ?2 \
           AND (?3 IS NULL OR with_jid = ?3) \
           AND (?4 IS NULL OR at_micros >= ?4) AND (?5 IS NULL OR at_micros <= ?5) \
           AND (?6 IS NULL OR seq > ?6) AND (?7 IS NULL OR seq < ?7) \
         ORDER BY seq {order} LIMIT ?8"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(
        params![
            domain,
            localpart,
            q.with,
            q.start,
            q.end,
            after,
            before,
            probe_limit(q.max)
        ],
        row_to_message,
    )?;
    let rows = rows.collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(finish_page(rows, q.max, newest_first))
}

#[async_trait::async_trait]
impl ArchiveStore for SqliteStore {
    async fn archive_messages(
        &self,
        batch: &[NewMessage],
        max_offline: usize,
    ) -> Result<Vec<Stored>, StoreError> {
        batch.iter().try_for_each(check_new)?;
        let batch = batch.to_vec();
        self.with_conn(move |conn| {
            let tx = write_transaction(conn)?;
            let mut queues = OfflineQueues::new(max_offline);
            let stored = batch
                .iter()
                .map(|m| store_one(&tx, m, &mut queues))
                .collect::<Result<Vec<_>, _>>()?;
            tx.commit()?;
            Ok(stored)
        })
        .await
    }

    async fn take_offline(
        &self,
        localpart: &str,
        domain: &str,
        max: usize,
    ) -> Result<Vec<ArchivedMessage>, StoreError> {
        let (localpart, domain) = (localpart.to_owned(), domain.to_owned());
        let limit = i64::try_from(max).unwrap_or(i64::MAX);
        self.with_conn(move |conn| {
            let tx = write_transaction(conn)?;
            let taken = tx
                .prepare_cached(&format!(
                    "UPDATE archive SET offline = 0 WHERE seq IN ( \
                       SELECT seq FROM archive \
                       WHERE domain = ?1 AND localpart = ?2 AND offline = 1 \
                       ORDER BY seq LIMIT ?3) \
                     RETURNING seq, {MESSAGE_COLUMNS}"
                ))?
                .query_map(params![domain, localpart, limit], |row| {
                    Ok((
                        row.get::<_, i64>(0)?,
                        ArchivedMessage {
                            stanza_id: row.get(1)?,
                            with: row.get(2)?,
                            at_micros: row.get(3)?,
                            stanza: row.get(4)?,
                        },
                    ))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            tx.commit()?;
            // RETURNING gives no order: restore the queue's.
            let mut taken = taken;
            taken.sort_by_key(|(seq, _)| *seq);
            Ok(taken.into_iter().map(|(_, m)| m).collect())
        })
        .await
    }

    async fn requeue_offline(
        &self,
        localpart: &str,
        domain: &str,
        stanza_ids: &[String],
    ) -> Result<u64, StoreError> {
        let (localpart, domain) = (localpart.to_owned(), domain.to_owned());
        let ids = stanza_ids.to_vec();
        self.with_conn(move |conn| {
            let tx = write_transaction(conn)?;
            let mut changed = 0;
            for id in &ids {
                changed += tx
                    .prepare_cached(
                        "UPDATE archive SET offline = 1 \
                         WHERE domain = ?1 AND localpart = ?2 AND stanza_id = ?3",
                    )?
                    .execute(params![domain, localpart, id])? as u64;
            }
            tx.commit()?;
            Ok(changed)
        })
        .await
    }

    async fn offline_count(&self, localpart: &str, domain: &str) -> Result<u64, StoreError> {
        let (localpart, domain) = (localpart.to_owned(), domain.to_owned());
        self.with_conn(move |conn| {
            let n: i64 = conn
                .prepare_cached(
                    "SELECT COUNT(*) FROM archive \
                     WHERE domain = ?1 AND localpart = ?2 AND offline = 1",
                )?
                .query_row(params![domain, localpart], |row| row.get(0))?;
            Ok(n.unsigned_abs())
        })
        .await
    }

    async fn query_archive(
        &self,
        localpart: &str,
        domain: &str,
        q: &ArchiveQuery,
    ) -> Result<ArchivePage, StoreError> {
        let (localpart, domain, q) = (localpart.to_owned(), domain.to_owned(), q.clone());
        self.with_conn(move |conn| query(conn, &domain, &localpart, &q))
            .await
    }
}
