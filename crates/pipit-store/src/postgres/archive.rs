//! [`ArchiveStore`] for PostgreSQL.
//!
//! Batches and offline takes are transactions on the store's dedicated
//! transaction connection; queries use the shared one.

use std::collections::BTreeSet;

use tokio_postgres::{GenericClient, Row, Transaction};

use super::PostgresStore;
use crate::StoreError;
use crate::archive::{
    ArchivePage, ArchiveQuery, ArchiveStore, ArchivedMessage, NewMessage, OfflineQueues, Page,
    Stored, check_new, finish_page, probe_limit,
};

/// The columns of [`ArchivedMessage`], in the order [`row_to_message`] reads them.
const MESSAGE_COLUMNS: &str = "stanza_id, with_jid, at_micros, stanza";

fn row_to_message(row: &Row, at: usize) -> Result<ArchivedMessage, StoreError> {
    Ok(ArchivedMessage {
        stanza_id: row.try_get(at)?,
        with: row.try_get(at + 1)?,
        at_micros: row.try_get(at + 2)?,
        stanza: row.try_get(at + 3)?,
    })
}

/// Locks the batch's accounts' rows until the transaction ends, in key order so that two
/// batches never deadlock. Another connection's batch for the same owner then waits,
/// and sees this one's offline count and origins: without the lock (READ COMMITTED)
/// both would count the same queue past `max_offline`, and both would insert a shared
/// origin, the second failing its whole batch on the unique constraint. `NO KEY`: the
/// foreign-key checks of other tables' inserts need not wait.
async fn lock_owners(tx: &Transaction<'_>, batch: &[NewMessage]) -> Result<(), StoreError> {
    let owners: BTreeSet<(&str, &str)> = batch
        .iter()
        .map(|m| (m.domain.as_str(), m.localpart.as_str()))
        .collect();
    let (domains, localparts): (Vec<&str>, Vec<&str>) = owners.into_iter().unzip();
    tx.query(
        "SELECT 1 FROM users \
         WHERE (domain, localpart) IN (SELECT * FROM unnest($1::TEXT[], $2::TEXT[])) \
         ORDER BY domain, localpart FOR NO KEY UPDATE",
        &[&domains, &localparts],
    )
    .await?;
    Ok(())
}

/// Writes one row inside the batch's transaction.
async fn store_one(
    tx: &Transaction<'_>,
    m: &NewMessage,
    queues: &mut OfflineQueues,
) -> Result<Stored, StoreError> {
    if let Some(origin) = &m.origin {
        let existing = tx
            .query_opt(
                "SELECT stanza_id FROM archive \
                 WHERE domain = $1 AND localpart = $2 AND origin = $3",
                &[&m.domain, &m.localpart, origin],
            )
            .await?;
        if let Some(row) = existing {
            return Ok(Stored::Duplicate(row.try_get(0)?));
        }
    }
    if m.offline {
        let stored = if queues.unknown(m) {
            let row = tx
                .query_one(
                    "SELECT COUNT(*) FROM archive \
                     WHERE domain = $1 AND localpart = $2 AND offline",
                    &[&m.domain, &m.localpart],
                )
                .await?;
            Some(row.try_get(0)?)
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
        .execute(
            "INSERT INTO archive \
             (domain, localpart, stanza_id, with_jid, origin, at_micros, stanza, offline) \
             SELECT $1, $2, $3, $4, $5, $6, $7, $8 \
             WHERE EXISTS (SELECT 1 FROM users WHERE domain = $1 AND localpart = $2)",
            &[
                &m.domain,
                &m.localpart,
                &m.stanza_id,
                &m.with,
                &m.origin,
                &m.at_micros,
                &m.stanza,
                &m.offline,
            ],
        )
        .await?;
    Ok(if inserted == 0 {
        Stored::NoSuchUser
    } else {
        Stored::Archived
    })
}

/// The `seq` of an archive ID, for anchoring a page.
async fn seq_of(
    client: &impl GenericClient,
    domain: &str,
    localpart: &str,
    id: &str,
) -> Result<i64, StoreError> {
    let row = client
        .query_opt(
            "SELECT seq FROM archive WHERE domain = $1 AND localpart = $2 AND stanza_id = $3",
            &[&domain, &localpart, &id],
        )
        .await?
        .ok_or(StoreError::ArchiveIdNotFound)?;
    Ok(row.try_get(0)?)
}

#[async_trait::async_trait]
impl ArchiveStore for PostgresStore {
    async fn archive_messages(
        &self,
        batch: &[NewMessage],
        max_offline: usize,
    ) -> Result<Vec<Stored>, StoreError> {
        batch.iter().try_for_each(check_new)?;
        let mut conn = self.transactions.lock().await;
        let tx = conn.transaction().await?;
        lock_owners(&tx, batch).await?;
        let mut queues = OfflineQueues::new(max_offline);
        let mut stored = Vec::with_capacity(batch.len());
        for m in batch {
            stored.push(store_one(&tx, m, &mut queues).await?);
        }
        tx.commit().await?;
        Ok(stored)
    }

    async fn take_offline(
        &self,
        localpart: &str,
        domain: &str,
        max: usize,
    ) -> Result<Vec<ArchivedMessage>, StoreError> {
        let limit = i64::try_from(max).unwrap_or(i64::MAX);
        let mut conn = self.transactions.lock().await;
        let tx = conn.transaction().await?;
        // FOR UPDATE: a concurrent take waits, then finds these rows no longer offline.
        let rows = tx
            .query(
                &format!(
                    "UPDATE archive SET offline = false WHERE seq IN ( \
                       SELECT seq FROM archive \
                       WHERE domain = $1 AND localpart = $2 AND offline \
                       ORDER BY seq LIMIT $3 FOR UPDATE) \
                     RETURNING seq, {MESSAGE_COLUMNS}"
                ),
                &[&domain, &localpart, &limit],
            )
            .await?;
        tx.commit().await?;
        let mut taken = rows
            .iter()
            .map(|row| Ok((row.try_get::<_, i64>(0)?, row_to_message(row, 1)?)))
            .collect::<Result<Vec<_>, StoreError>>()?;
        // RETURNING gives no order: restore the queue's.
        taken.sort_by_key(|(seq, _)| *seq);
        Ok(taken.into_iter().map(|(_, m)| m).collect())
    }

    async fn requeue_offline(
        &self,
        localpart: &str,
        domain: &str,
        stanza_ids: &[String],
    ) -> Result<u64, StoreError> {
        let ids = stanza_ids.to_vec();
        Ok(self
            .client
            .execute(
                "UPDATE archive SET offline = true \
                 WHERE domain = $1 AND localpart = $2 AND stanza_id = ANY($3)",
                &[&domain, &localpart, &ids],
            )
            .await?)
    }

    async fn offline_count(&self, localpart: &str, domain: &str) -> Result<u64, StoreError> {
        let n: i64 = self
            .client
            .query_one(
                "SELECT COUNT(*) FROM archive WHERE domain = $1 AND localpart = $2 AND offline",
                &[&domain, &localpart],
            )
            .await?
            .try_get(0)?;
        Ok(n.unsigned_abs())
    }

    async fn query_archive(
        &self,
        localpart: &str,
        domain: &str,
        q: &ArchiveQuery,
    ) -> Result<ArchivePage, StoreError> {
        let (after, before, newest_first) = match &q.page {
            Page::First => (None, None, false),
            Page::After(id) => (
                Some(seq_of(&self.client, domain, localpart, id).await?),
                None,
                false,
            ),
            Page::Before(id) => (
                None,
                Some(seq_of(&self.client, domain, localpart, id).await?),
                true,
            ),
            Page::Last => (None, None, true),
        };
        let order = if newest_first { "DESC" } else { "ASC" };
        let rows = self
            .client
            .query(
                &format!(
                    "SELECT {MESSAGE_COLUMNS} FROM archive \
                     WHERE domain = $1 AND localpart = $2 \
                       AND ($3::TEXT IS NULL OR with_jid = $3) \
                       AND ($4::BIGINT IS NULL OR at_micros >= $4) \
                       AND ($5::BIGINT IS NULL OR at_micros <= $5) \
                       AND ($6::BIGINT IS NULL OR seq > $6) \
                       AND ($7::BIGINT IS NULL OR seq < $7) \
                     ORDER BY seq {order} LIMIT $8"
                ),
                &[
                    &domain,
                    &localpart,
                    &q.with,
                    &q.start,
                    &q.end,
                    &after,
                    &before,
                    &probe_limit(q.max),
                ],
            )
            .await?;
        let rows = rows
            .iter()
            .map(|row| row_to_message(row, 0))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(finish_page(rows, q.max, newest_first))
    }
}
