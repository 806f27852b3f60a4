//! [`RosterStore`] on PostgreSQL. Every call runs in a transaction on the store's
//! transaction connection; a change first locks the account's `users` row, so two
//! changes to one roster (from this process or another sharing the database) take
//! turns, and what a change read is still true when it writes.

use pipit_proto::jid::Jid;
use tokio_postgres::Transaction;

use super::PostgresStore;
use crate::StoreError;
use crate::roster::{
    self, Found, ItemWrite, Roster, RosterItem, RosterPush, RosterStore, SubscriptionChange,
    SubscriptionEvent, SubscriptionState, attach_groups, check_room, jid_from_db,
    subscription_from_db, subscription_to_db, version_from_db,
};

/// Locks the account's row for the rest of the transaction; Err(NoSuchUser) if absent.
async fn lock_account(
    tx: &Transaction<'_>,
    localpart: &str,
    domain: &str,
) -> Result<(), StoreError> {
    let row = tx
        .query_opt(
            "SELECT 1 FROM users WHERE localpart = $1 AND domain = $2 FOR UPDATE",
            &[&localpart, &domain],
        )
        .await?;
    row.map(|_| ()).ok_or(StoreError::NoSuchUser)
}

/// The item and the waiting request for one contact.
async fn find(
    tx: &Transaction<'_>,
    localpart: &str,
    domain: &str,
    contact: &str,
) -> Result<Found, StoreError> {
    let item = tx
        .query_opt(
            "SELECT subscription, pending_out FROM roster_items \
             WHERE localpart = $1 AND domain = $2 AND contact = $3",
            &[&localpart, &domain, &contact],
        )
        .await?;
    let item = match item {
        Some(row) => {
            let who = || format!("account {localpart}@{domain}");
            let subscription: String = row.try_get(0)?;
            Some((subscription_from_db(&subscription, who)?, row.try_get(1)?))
        }
        None => None,
    };
    let pending_in = tx
        .query_opt(
            "SELECT 1 FROM roster_pending_in \
             WHERE localpart = $1 AND domain = $2 AND contact = $3",
            &[&localpart, &domain, &contact],
        )
        .await?
        .is_some();
    Ok(Found { item, pending_in })
}

/// The places the roster takes: items, and waiting requests without one.
async fn entries(tx: &Transaction<'_>, localpart: &str, domain: &str) -> Result<u64, StoreError> {
    let count: i64 = tx
        .query_one(
            "SELECT (SELECT COUNT(*) FROM roster_items WHERE localpart = $1 AND domain = $2) \
             + (SELECT COUNT(*) FROM roster_pending_in p \
                WHERE p.localpart = $1 AND p.domain = $2 AND NOT EXISTS \
                (SELECT 1 FROM roster_items i WHERE i.domain = p.domain \
                 AND i.localpart = p.localpart AND i.contact = p.contact))",
            &[&localpart, &domain],
        )
        .await?
        .try_get(0)?;
    Ok(count.unsigned_abs())
}

/// Raises the roster version by one; returns the new version.
async fn bump(tx: &Transaction<'_>, localpart: &str, domain: &str) -> Result<u64, StoreError> {
    let version: i64 = tx
        .query_one(
            "INSERT INTO roster_versions (domain, localpart, version) VALUES ($2, $1, 1) \
             ON CONFLICT (domain, localpart) \
             DO UPDATE SET version = roster_versions.version + 1 \
             RETURNING version",
            &[&localpart, &domain],
        )
        .await?
        .try_get(0)?;
    version_from_db(version, || format!("account {localpart}@{domain}"))
}

async fn version(tx: &Transaction<'_>, localpart: &str, domain: &str) -> Result<u64, StoreError> {
    let row = tx
        .query_opt(
            "SELECT version FROM roster_versions WHERE localpart = $1 AND domain = $2",
            &[&localpart, &domain],
        )
        .await?;
    let version = match row {
        Some(row) => row.try_get(0)?,
        None => 0,
    };
    version_from_db(version, || format!("account {localpart}@{domain}"))
}

/// The items (one contact's, or all with `None`), by JID, with their groups.
async fn items(
    tx: &Transaction<'_>,
    localpart: &str,
    domain: &str,
    contact: Option<&str>,
) -> Result<Vec<RosterItem>, StoreError> {
    let who = || format!("account {localpart}@{domain}");
    let rows = tx
        .query(
            "SELECT contact, name, subscription, pending_out FROM roster_items \
             WHERE localpart = $1 AND domain = $2 AND ($3::TEXT IS NULL OR contact = $3) \
             ORDER BY contact",
            &[&localpart, &domain, &contact],
        )
        .await?;
    let mut items = Vec::new();
    for row in rows {
        let jid: String = row.try_get(0)?;
        let subscription: String = row.try_get(2)?;
        items.push(RosterItem {
            jid: jid_from_db(&jid, who)?,
            name: row.try_get(1)?,
            subscription: subscription_from_db(&subscription, who)?,
            pending_out: row.try_get(3)?,
            groups: Vec::new(),
        });
    }
    let groups = tx
        .query(
            "SELECT contact, name FROM roster_groups \
             WHERE localpart = $1 AND domain = $2 AND ($3::TEXT IS NULL OR contact = $3) \
             ORDER BY contact, name",
            &[&localpart, &domain, &contact],
        )
        .await?
        .iter()
        .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
        .collect::<Result<Vec<_>, StoreError>>()?;
    attach_groups(&mut items, groups);
    Ok(items)
}

/// The one item for `contact` as it now is, with the version just made.
async fn pushed(
    tx: &Transaction<'_>,
    localpart: &str,
    domain: &str,
    contact: &str,
    version: u64,
) -> Result<RosterPush, StoreError> {
    let item = items(tx, localpart, domain, Some(contact))
        .await?
        .pop()
        .ok_or_else(|| StoreError::Corrupt(format!("roster item {contact} vanished")))?;
    Ok(RosterPush { item, version })
}

#[async_trait::async_trait]
impl RosterStore for PostgresStore {
    async fn roster(&self, localpart: &str, domain: &str) -> Result<Roster, StoreError> {
        let mut conn = self.transactions.lock().await;
        // One transaction: the version matches the items.
        let tx = conn.transaction().await?;
        let roster = Roster {
            version: version(&tx, localpart, domain).await?,
            items: items(&tx, localpart, domain, None).await?,
        };
        tx.commit().await?;
        Ok(roster)
    }

    async fn roster_version(&self, localpart: &str, domain: &str) -> Result<u64, StoreError> {
        let mut conn = self.transactions.lock().await;
        let tx = conn.transaction().await?;
        let version = version(&tx, localpart, domain).await?;
        tx.commit().await?;
        Ok(version)
    }

    async fn set_roster_item(
        &self,
        localpart: &str,
        domain: &str,
        jid: &Jid,
        name: Option<&str>,
        groups: &[String],
        max_items: usize,
    ) -> Result<RosterPush, StoreError> {
        let contact = jid.to_string();
        let mut conn = self.transactions.lock().await;
        let tx = conn.transaction().await?;
        lock_account(&tx, localpart, domain).await?;
        if find(&tx, localpart, domain, &contact).await?.is_new() {
            check_room(entries(&tx, localpart, domain).await?, max_items)?;
        }
        tx.execute(
            "INSERT INTO roster_items (domain, localpart, contact, name, subscription) \
             VALUES ($2, $1, $3, $4, 'none') \
             ON CONFLICT (domain, localpart, contact) DO UPDATE SET name = excluded.name",
            &[&localpart, &domain, &contact, &name],
        )
        .await?;
        tx.execute(
            "DELETE FROM roster_groups WHERE localpart = $1 AND domain = $2 AND contact = $3",
            &[&localpart, &domain, &contact],
        )
        .await?;
        for group in groups {
            tx.execute(
                "INSERT INTO roster_groups (domain, localpart, contact, name) \
                 VALUES ($2, $1, $3, $4) ON CONFLICT DO NOTHING",
                &[&localpart, &domain, &contact, group],
            )
            .await?;
        }
        let version = bump(&tx, localpart, domain).await?;
        let push = pushed(&tx, localpart, domain, &contact, version).await?;
        tx.commit().await?;
        Ok(push)
    }

    async fn remove_roster_item(
        &self,
        localpart: &str,
        domain: &str,
        jid: &Jid,
    ) -> Result<Option<(SubscriptionState, u64)>, StoreError> {
        let contact = jid.to_string();
        let mut conn = self.transactions.lock().await;
        let tx = conn.transaction().await?;
        match lock_account(&tx, localpart, domain).await {
            Err(StoreError::NoSuchUser) => return Ok(None),
            locked => locked?,
        }
        let found = find(&tx, localpart, domain, &contact).await?;
        if found.item.is_none() {
            return Ok(None);
        }
        for table in ["roster_items", "roster_pending_in"] {
            tx.execute(
                &format!(
                    "DELETE FROM {table} WHERE localpart = $1 AND domain = $2 AND contact = $3"
                ),
                &[&localpart, &domain, &contact],
            )
            .await?;
        }
        let version = bump(&tx, localpart, domain).await?;
        tx.commit().await?;
        Ok(Some((found.state(), version)))
    }

    async fn subscription_state(
        &self,
        localpart: &str,
        domain: &str,
        jid: &Jid,
    ) -> Result<SubscriptionState, StoreError> {
        let contact = jid.to_string();
        let mut conn = self.transactions.lock().await;
        let tx = conn.transaction().await?;
        let state = find(&tx, localpart, domain, &contact).await?.state();
        tx.commit().await?;
        Ok(state)
    }

    async fn update_subscription(
        &self,
        localpart: &str,
        domain: &str,
        jid: &Jid,
        event: SubscriptionEvent,
        max_items: usize,
    ) -> Result<SubscriptionChange, StoreError> {
        let contact = jid.to_string();
        let mut conn = self.transactions.lock().await;
        let tx = conn.transaction().await?;
        lock_account(&tx, localpart, domain).await?;
        let found = find(&tx, localpart, domain, &contact).await?;
        let Some(plan) = roster::plan(&found, event) else {
            let state = found.state();
            return Ok(SubscriptionChange {
                before: state,
                after: state,
                push: None,
            });
        };
        if plan.new_entry {
            check_room(entries(&tx, localpart, domain).await?, max_items)?;
        }
        let subscription = subscription_to_db(plan.after.subscription);
        let sql = match plan.item {
            ItemWrite::Keep => None,
            ItemWrite::Insert => Some(
                "INSERT INTO roster_items (domain, localpart, contact, subscription, pending_out) \
                 VALUES ($2, $1, $3, $4, $5)",
            ),
            ItemWrite::Update => Some(
                "UPDATE roster_items SET subscription = $4, pending_out = $5 \
                 WHERE localpart = $1 AND domain = $2 AND contact = $3",
            ),
        };
        if let Some(sql) = sql {
            tx.execute(
                sql,
                &[
                    &localpart,
                    &domain,
                    &contact,
                    &subscription,
                    &plan.after.pending_out,
                ],
            )
            .await?;
        }
        let sql = match plan.pending_in {
            None => None,
            Some(true) => Some(
                "INSERT INTO roster_pending_in (domain, localpart, contact) VALUES ($2, $1, $3)",
            ),
            Some(false) => Some(
                "DELETE FROM roster_pending_in \
                 WHERE localpart = $1 AND domain = $2 AND contact = $3",
            ),
        };
        if let Some(sql) = sql {
            tx.execute(sql, &[&localpart, &domain, &contact]).await?;
        }
        let push = match plan.item {
            ItemWrite::Keep => None,
            ItemWrite::Insert | ItemWrite::Update => {
                let version = bump(&tx, localpart, domain).await?;
                Some(pushed(&tx, localpart, domain, &contact, version).await?)
            }
        };
        tx.commit().await?;
        Ok(SubscriptionChange {
            before: plan.before,
            after: plan.after,
            push,
        })
    }

    async fn pending_subscriptions(
        &self,
        localpart: &str,
        domain: &str,
    ) -> Result<Vec<Jid>, StoreError> {
        let rows = self
            .client
            .query(
                "SELECT contact FROM roster_pending_in \
                 WHERE localpart = $1 AND domain = $2 ORDER BY contact",
                &[&localpart, &domain],
            )
            .await?;
        let who = || format!("account {localpart}@{domain}");
        rows.iter()
            .map(|row| jid_from_db(row.try_get::<_, &str>(0)?, who))
            .collect()
    }
}
