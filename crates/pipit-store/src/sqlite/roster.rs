//! [`RosterStore`] on SQLite. A change reads, decides and writes inside one
//! `BEGIN IMMEDIATE` transaction: it takes the write lock before it reads, so no
//! other writer (another task, or the CLI) can change the roster in between, and no
//! read lock ever has to become a write lock.

use pipit_proto::jid::Jid;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::SqliteStore;
use crate::StoreError;
use crate::roster::{
    self, Found, ItemWrite, Roster, RosterItem, RosterPush, RosterStore, SubscriptionChange,
    SubscriptionEvent, SubscriptionState, attach_groups, check_room, jid_from_db,
    subscription_from_db, subscription_to_db, version_from_db,
};

/// Runs `f` in a transaction, committed if it returns `Ok`: `Immediate` for one
/// that writes, `Deferred` for reads that must agree with each other.
fn in_transaction<T>(
    conn: &Connection,
    behavior: TransactionBehavior,
    f: impl FnOnce(&Connection) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    let tx = rusqlite::Transaction::new_unchecked(conn, behavior)?;
    let value = f(&tx)?;
    tx.commit()?;
    Ok(value)
}

/// Err(NoSuchUser) unless the account exists.
fn account_exists(conn: &Connection, localpart: &str, domain: &str) -> Result<(), StoreError> {
    let found = conn
        .prepare_cached("SELECT 1 FROM users WHERE localpart = ?1 AND domain = ?2")?
        .exists(params![localpart, domain])?;
    if found {
        Ok(())
    } else {
        Err(StoreError::NoSuchUser)
    }
}

/// The item and the waiting request for one contact.
fn find(
    conn: &Connection,
    localpart: &str,
    domain: &str,
    contact: &str,
) -> Result<Found, StoreError> {
    let item = conn
        .prepare_cached(
            "SELECT subscription, pending_out FROM roster_items \
             WHERE localpart = ?1 AND domain = ?2 AND contact = ?3",
        )?
        .query_row(params![localpart, domain, contact], |row| {
            Ok((row.get::<_, String>(0)?, row.get::<_, bool>(1)?))
        })
        .optional()?;
    let item = match item {
        Some((subscription, pending_out)) => {
            let who = || format!("account {localpart}@{domain}");
            Some((subscription_from_db(&subscription, who)?, pending_out))
        }
        None => None,
    };
    let pending_in = conn
        .prepare_cached(
            "SELECT 1 FROM roster_pending_in \
             WHERE localpart = ?1 AND domain = ?2 AND contact = ?3",
        )?
        .exists(params![localpart, domain, contact])?;
    Ok(Found { item, pending_in })
}

/// The places the roster takes: items, and waiting requests without one.
fn entries(conn: &Connection, localpart: &str, domain: &str) -> Result<u64, StoreError> {
    let count: i64 = conn
        .prepare_cached(
            "SELECT (SELECT COUNT(*) FROM roster_items WHERE localpart = ?1 AND domain = ?2) \
             + (SELECT COUNT(*) FROM roster_pending_in p \
                WHERE p.localpart = ?1 AND p.domain = ?2 AND NOT EXISTS \
                (SELECT 1 FROM roster_items i WHERE i.domain = p.domain \
                 AND i.localpart = p.localpart AND i.contact = p.contact))",
        )?
        .query_row(params![localpart, domain], |row| row.get(0))?;
    Ok(count.unsigned_abs())
}

/// Raises the roster version by one; returns the new version.
fn bump(conn: &Connection, localpart: &str, domain: &str) -> Result<u64, StoreError> {
    let version: i64 = conn
        .prepare_cached(
            "INSERT INTO roster_versions (domain, localpart, version) VALUES (?2, ?1, 1) \
             ON CONFLICT (domain, localpart) DO UPDATE SET version = version + 1 \
             RETURNING version",
        )?
        .query_row(params![localpart, domain], |row| row.get(0))?;
    version_from_db(version, || format!("account {localpart}@{domain}"))
}

fn version(conn: &Connection, localpart: &str, domain: &str) -> Result<u64, StoreError> {
    let version: Option<i64> = conn
        .prepare_cached("SELECT version FROM roster_versions WHERE localpart = ?1 AND domain = ?2")?
        .query_row(params![localpart, domain], |row| row.get(0))
        .optional()?;
    version_from_db(version.unwrap_or(0), || {
        format!("account {localpart}@{domain}")
    })
}

/// The items (one contact's, or all with `None`), by JID, with their groups.
fn items(
    conn: &Connection,
    localpart: &str,
    domain: &str,
    contact: Option<&str>,
) -> Result<Vec<RosterItem>, StoreError> {
    let who = || format!("account {localpart}@{domain}");
    let mut stmt = conn.prepare_cached(
        "SELECT contact, name, subscription, pending_out FROM roster_items \
         WHERE localpart = ?1 AND domain = ?2 AND (?3 IS NULL OR contact = ?3) \
         ORDER BY contact",
    )?;
    let rows = stmt.query_map(params![localpart, domain, contact], |row| {
        Ok((
            row.get::<_, String>(0)?,
            row.get::<_, Option<String>>(1)?,
            row.get::<_, String>(2)?,
            row.get::<_, bool>(3)?,
        ))
    })?;
    let mut items = Vec::new();
    for row in rows {
        let (jid, name, subscription, pending_out) = row?;
        items.push(RosterItem {
            jid: jid_from_db(&jid, who)?,
            name,
            subscription: subscription_from_db(&subscription, who)?,
            pending_out,
            groups: Vec::new(),
        });
    }
    let mut stmt = conn.prepare_cached(
        "SELECT contact, name FROM roster_groups \
         WHERE localpart = ?1 AND domain = ?2 AND (?3 IS NULL OR contact = ?3) \
         ORDER BY contact, name",
    )?;
    let groups = stmt
        .query_map(params![localpart, domain, contact], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    attach_groups(&mut items, groups);
    Ok(items)
}

/// The one item for `contact` as it now is, with the version just made.
fn pushed(
    conn: &Connection,
    localpart: &str,
    domain: &str,
    contact: &str,
    version: u64,
) -> Result<RosterPush, StoreError> {
    let item = items(conn, localpart, domain, Some(contact))?
        .pop()
        .ok_or_else(|| StoreError::Corrupt(format!("roster item {contact} vanished")))?;
    Ok(RosterPush { item, version })
}

#[async_trait::async_trait]
impl RosterStore for SqliteStore {
    async fn roster(&self, localpart: &str, domain: &str) -> Result<Roster, StoreError> {
        let (localpart, domain) = (localpart.to_owned(), domain.to_owned());
        self.with_conn(move |conn| {
            // One read transaction: the version matches the items.
            in_transaction(conn, TransactionBehavior::Deferred, |conn| {
                Ok(Roster {
                    version: version(conn, &localpart, &domain)?,
                    items: items(conn, &localpart, &domain, None)?,
                })
            })
        })
        .await
    }

    async fn roster_version(&self, localpart: &str, domain: &str) -> Result<u64, StoreError> {
        let (localpart, domain) = (localpart.to_owned(), domain.to_owned());
        self.with_conn(move |conn| version(conn, &localpart, &domain))
            .await
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
        let (localpart, domain, contact) =
            (localpart.to_owned(), domain.to_owned(), jid.to_string());
        let (name, groups) = (name.map(str::to_owned), groups.to_vec());
        self.with_conn(move |conn| {
            in_transaction(conn, TransactionBehavior::Immediate, |conn| {
                account_exists(conn, &localpart, &domain)?;
                if find(conn, &localpart, &domain, &contact)?.is_new() {
                    check_room(entries(conn, &localpart, &domain)?, max_items)?;
                }
                conn.prepare_cached(
                    "INSERT INTO roster_items (domain, localpart, contact, name, subscription) \
                     VALUES (?2, ?1, ?3, ?4, 'none') \
                     ON CONFLICT (domain, localpart, contact) DO UPDATE SET name = excluded.name",
                )?
                .execute(params![localpart, domain, contact, name])?;
                conn.prepare_cached(
                    "DELETE FROM roster_groups WHERE localpart = ?1 AND domain = ?2 AND contact = ?3",
                )?
                .execute(params![localpart, domain, contact])?;
                let mut insert = conn.prepare_cached(
                    "INSERT INTO roster_groups (domain, localpart, contact, name) \
                     VALUES (?2, ?1, ?3, ?4) ON CONFLICT DO NOTHING",
                )?;
                for group in &groups {
                    insert.execute(params![localpart, domain, contact, group])?;
                }
                let version = bump(conn, &localpart, &domain)?;
                pushed(conn, &localpart, &domain, &contact, version)
            })
        })
        .await
    }

    async fn remove_roster_item(
        &self,
        localpart: &str,
        domain: &str,
        jid: &Jid,
    ) -> Result<Option<(SubscriptionState, u64)>, StoreError> {
        let (localpart, domain, contact) =
            (localpart.to_owned(), domain.to_owned(), jid.to_string());
        self.with_conn(move |conn| {
            in_transaction(conn, TransactionBehavior::Immediate, |conn| {
                let found = find(conn, &localpart, &domain, &contact)?;
                if found.item.is_none() {
                    return Ok(None);
                }
                for table in ["roster_items", "roster_pending_in"] {
                    conn.prepare_cached(&format!(
                        "DELETE FROM {table} WHERE localpart = ?1 AND domain = ?2 AND contact = ?3"
                    ))?
                    .execute(params![localpart, domain, contact])?;
                }
                Ok(Some((found.state(), bump(conn, &localpart, &domain)?)))
            })
        })
        .await
    }

    async fn subscription_state(
        &self,
        localpart: &str,
        domain: &str,
        jid: &Jid,
    ) -> Result<SubscriptionState, StoreError> {
        let (localpart, domain, contact) =
            (localpart.to_owned(), domain.to_owned(), jid.to_string());
        self.with_conn(move |conn| {
            in_transaction(conn, TransactionBehavior::Deferred, |conn| {
                Ok(find(conn, &localpart, &domain, &contact)?.state())
            })
        })
        .await
    }

    async fn update_subscription(
        &self,
        localpart: &str,
        domain: &str,
        jid: &Jid,
        event: SubscriptionEvent,
        max_items: usize,
    ) -> Result<SubscriptionChange, StoreError> {
        let (localpart, domain, contact) =
            (localpart.to_owned(), domain.to_owned(), jid.to_string());
        self.with_conn(move |conn| {
            in_transaction(conn, TransactionBehavior::Immediate, |conn| {
                account_exists(conn, &localpart, &domain)?;
                let found = find(conn, &localpart, &domain, &contact)?;
                let Some(plan) = roster::plan(&found, event) else {
                    let state = found.state();
                    return Ok(SubscriptionChange {
                        before: state,
                        after: state,
                        push: None,
                    });
                };
                if plan.new_entry {
                    check_room(entries(conn, &localpart, &domain)?, max_items)?;
                }
                let subscription = subscription_to_db(plan.after.subscription);
                let sql = match plan.item {
                    ItemWrite::Keep => None,
                    ItemWrite::Insert => Some(
                        "INSERT INTO roster_items \
                         (domain, localpart, contact, subscription, pending_out) \
                         VALUES (?2, ?1, ?3, ?4, ?5)",
                    ),
                    ItemWrite::Update => Some(
                        "UPDATE roster_items SET subscription = ?4, pending_out = ?5 \
                         WHERE localpart = ?1 AND domain = ?2 AND contact = ?3",
                    ),
                };
                if let Some(sql) = sql {
                    conn.prepare_cached(sql)?.execute(params![
                        localpart,
                        domain,
                        contact,
                        subscription,
                        plan.after.pending_out
                    ])?;
                }
                let sql = match plan.pending_in {
                    None => None,
                    Some(true) => Some(
                        "INSERT INTO roster_pending_in (domain, localpart, contact) \
                         VALUES (?2, ?1, ?3)",
                    ),
                    Some(false) => Some(
                        "DELETE FROM roster_pending_in \
                         WHERE localpart = ?1 AND domain = ?2 AND contact = ?3",
                    ),
                };
                if let Some(sql) = sql {
                    conn.prepare_cached(sql)?
                        .execute(params![localpart, domain, contact])?;
                }
                let push = match plan.item {
                    ItemWrite::Keep => None,
                    ItemWrite::Insert | ItemWrite::Update => {
                        let version = bump(conn, &localpart, &domain)?;
                        Some(pushed(conn, &localpart, &domain, &contact, version)?)
                    }
                };
                Ok(SubscriptionChange {
                    before: plan.before,
                    after: plan.after,
                    push,
                })
            })
        })
        .await
    }

    async fn pending_subscriptions(
        &self,
        localpart: &str,
        domain: &str,
    ) -> Result<Vec<Jid>, StoreError> {
        let (localpart, domain) = (localpart.to_owned(), domain.to_owned());
        self.with_conn(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT contact FROM roster_pending_in \
                 WHERE localpart = ?1 AND domain = ?2 ORDER BY contact",
            )?;
            let rows = stmt.query_map(params![localpart, domain], |row| row.get::<_, String>(0))?;
            let who = || format!("account {localpart}@{domain}");
            rows.map(|row| jid_from_db(&row?, who)).collect()
        })
        .await
    }
}
