//! Rosters (RFC 6121 §2) and presence subscriptions (§3) as stored, and the
//! decisions every backend shares: what a subscription stanza writes, and when a
//! change would take a roster past its size limit.
//!
//! A user's roster holds items (contacts with a name, groups and a subscription
//! state) and, apart from them, the contacts whose subscription requests wait for
//! an answer ("pending in", §3.1.3): a request is not a roster item until the user
//! approves it. Both count towards the size limit, so that nobody can grow another
//! account's storage without bound by asking. Every change to one account's roster
//! (the state, the item, the version) is one transaction, and the roster version
//! (§2.6) goes up by one with each change to an item.

use pipit_proto::jid::Jid;
pub use pipit_proto::roster::{RosterItem, Subscription, SubscriptionEvent, SubscriptionState};

use crate::StoreError;

/// A user's whole roster.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Roster {
    /// The roster version (§2.6): 0 for a roster never changed.
    pub version: u64,
    /// The items, by JID.
    pub items: Vec<RosterItem>,
}

/// An item as a change left it, and the roster version that change made: what a
/// roster push carries (§2.1.6).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RosterPush {
    /// The item after the change.
    pub item: RosterItem,
    /// The roster's new version.
    pub version: u64,
}

/// What a subscription stanza did to a user's state with one contact.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubscriptionChange {
    /// The state before.
    pub before: SubscriptionState,
    /// The state after; equal to `before` when RFC 6121 Appendix A says "no state
    /// change".
    pub after: SubscriptionState,
    /// The roster item, when the change touched it (it is then pushed); `None` for
    /// no change, and for a change to a waiting request alone.
    pub push: Option<RosterPush>,
}

impl SubscriptionChange {
    /// Whether the state changed.
    pub fn changed(&self) -> bool {
        self.before != self.after
    }
}

/// Roster storage. Each method is one transaction on the backing database.
#[async_trait::async_trait]
pub trait RosterStore: Send + Sync {
    /// The account's roster; empty at version 0 for no such account.
    async fn roster(&self, localpart: &str, domain: &str) -> Result<Roster, StoreError>;
    /// The account's roster version (0 for no such account).
    async fn roster_version(&self, localpart: &str, domain: &str) -> Result<u64, StoreError>;
    /// Adds `jid` with this name and these groups, or replaces an item's name and
    /// groups keeping its subscription (§2.3, §2.4); bumps the version.
    /// Err(RosterFull) if that adds an entry to a roster holding `max_items`
    /// (0: no limit), Err(NoSuchUser) if the account is absent.
    async fn set_roster_item(
        &self,
        localpart: &str,
        domain: &str,
        jid: &Jid,
        name: Option<&str>,
        groups: &[String],
        max_items: usize,
    ) -> Result<RosterPush, StoreError>;
    /// Removes the item for `jid` and any request of the contact's waiting (§2.5.2);
    /// bumps the version. Returns the state before and the new version, or `None`
    /// (nothing changed) if there was no such item.
    async fn remove_roster_item(
        &self,
        localpart: &str,
        domain: &str,
        jid: &Jid,
    ) -> Result<Option<(SubscriptionState, u64)>, StoreError>;
    /// The account's state with `jid` (the default state for no item, no request,
    /// or no such account).
    async fn subscription_state(
        &self,
        localpart: &str,
        domain: &str,
        jid: &Jid,
    ) -> Result<SubscriptionState, StoreError>;
    /// Applies a subscription stanza to the account's state with `jid` (RFC 6121
    /// Appendix A): creates the item when the new state needs one, remembers or
    /// forgets a waiting request, bumps the version when the item changed.
    /// Err(RosterFull) if that adds an entry to a roster holding `max_items` (0: no
    /// limit), Err(NoSuchUser) if the account is absent.
    async fn update_subscription(
        &self,
        localpart: &str,
        domain: &str,
        jid: &Jid,
        event: SubscriptionEvent,
        max_items: usize,
    ) -> Result<SubscriptionChange, StoreError>;
    /// The contacts whose subscription requests wait for the account's answer, by JID.
    async fn pending_subscriptions(
        &self,
        localpart: &str,
        domain: &str,
    ) -> Result<Vec<Jid>, StoreError>;
}

/// What a backend found for one contact inside its transaction.
pub(crate) struct Found {
    /// The item's subscription and pending-out flag, if there is an item.
    pub item: Option<(Subscription, bool)>,
    /// The contact's request waits.
    pub pending_in: bool,
}

impl Found {
    /// The state this is.
    pub fn state(&self) -> SubscriptionState {
        let (subscription, pending_out) = self.item.unwrap_or_default();
        SubscriptionState {
            subscription,
            pending_out,
            pending_in: self.pending_in,
        }
    }

    /// Whether the contact has neither an item nor a waiting request, so that
    /// keeping anything for it takes a new place on the roster.
    pub fn is_new(&self) -> bool {
        self.item.is_none() && !self.pending_in
    }
}

/// How a subscription change touches the item row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ItemWrite {
    /// Leave it (or its absence) as it is.
    Keep,
    /// Create it with the new state, no name and no groups.
    Insert,
    /// Set its subscription and pending-out flag.
    Update,
}

/// What a backend writes for a subscription stanza.
pub(crate) struct Plan {
    pub before: SubscriptionState,
    pub after: SubscriptionState,
    pub item: ItemWrite,
    /// The waiting request's new presence, if it changes.
    pub pending_in: Option<bool>,
    /// The change takes a new place on the roster: check the limit first.
    pub new_entry: bool,
}

/// Plans `event` against what was found; `None` for no state change.
pub(crate) fn plan(found: &Found, event: SubscriptionEvent) -> Option<Plan> {
    let before = found.state();
    let after = before.apply(event)?;
    let item_changed =
        after.subscription != before.subscription || after.pending_out != before.pending_out;
    let item = match (found.item.is_some(), item_changed) {
        (true, true) => ItemWrite::Update,
        // An item, once there, stays until the user removes it (§2.5).
        (true, false) => ItemWrite::Keep,
        (false, _) if after.needs_item() => ItemWrite::Insert,
        (false, _) => ItemWrite::Keep,
    };
    Some(Plan {
        before,
        after,
        item,
        pending_in: (after.pending_in != before.pending_in).then_some(after.pending_in),
        new_entry: found.is_new(),
    })
}

/// Err(RosterFull) if a roster with `entries` places has none left under
/// `max_items` (0: no limit).
pub(crate) fn check_room(entries: u64, max_items: usize) -> Result<(), StoreError> {
    if max_items != 0 && entries >= max_items as u64 {
        return Err(StoreError::RosterFull);
    }
    Ok(())
}

/// The column value of a subscription.
pub(crate) fn subscription_to_db(subscription: Subscription) -> &'static str {
    subscription.name()
}

/// A subscription read back; `who` names the account.
pub(crate) fn subscription_from_db(
    value: &str,
    who: impl Fn() -> String,
) -> Result<Subscription, StoreError> {
    Subscription::from_name(value)
        .ok_or_else(|| StoreError::Corrupt(format!("{}: roster subscription {value:?}", who())))
}

/// A contact's JID read back.
pub(crate) fn jid_from_db(value: &str, who: impl Fn() -> String) -> Result<Jid, StoreError> {
    Jid::parse(value)
        .map_err(|e| StoreError::Corrupt(format!("{}: roster JID {value:?}: {e}", who())))
}

/// A roster version read back.
pub(crate) fn version_from_db(value: i64, who: impl Fn() -> String) -> Result<u64, StoreError> {
    u64::try_from(value)
        .map_err(|_| StoreError::Corrupt(format!("{}: roster version {value}", who())))
}

/// Groups read back in rows of (contact, group), sorted by contact, attached to
/// the items (sorted by contact too).
pub(crate) fn attach_groups(items: &mut [RosterItem], groups: Vec<(String, String)>) {
    let mut groups = groups.into_iter().peekable();
    for item in items.iter_mut() {
        let key = item.jid.to_string();
        while let Some((contact, _)) = groups.peek() {
            if *contact < key {
                groups.next();
            } else {
                break;
            }
        }
        while let Some((_, group)) = groups.next_if(|(contact, _)| *contact == key) {
            item.groups.push(group);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(subscription: Option<Subscription>, pending_in: bool) -> Found {
        Found {
            item: subscription.map(|s| (s, false)),
            pending_in,
        }
    }

    #[test]
    fn a_request_alone_keeps_no_item_and_approving_it_makes_one() {
        let asked = plan(&found(None, false), SubscriptionEvent::ReceiveSubscribe).unwrap();
        assert_eq!(asked.item, ItemWrite::Keep);
        assert_eq!(asked.pending_in, Some(true));
        assert!(asked.new_entry);
        let approved = plan(&found(None, true), SubscriptionEvent::SendSubscribed).unwrap();
        assert_eq!(approved.item, ItemWrite::Insert);
        assert_eq!(approved.pending_in, Some(false));
        // The request's place becomes the item's.
        assert!(!approved.new_entry);
    }

    #[test]
    fn an_item_stays_when_its_subscription_ends() {
        let item = Some(Subscription::To);
        let cancelled = plan(&found(item, false), SubscriptionEvent::SendUnsubscribe).unwrap();
        assert_eq!(cancelled.item, ItemWrite::Update);
        assert_eq!(cancelled.after, SubscriptionState::default());
        assert!(plan(&found(item, false), SubscriptionEvent::SendSubscribe).is_none());
    }

    #[test]
    fn the_limit_counts_places_and_zero_is_none() {
        assert!(check_room(2, 3).is_ok());
        assert!(matches!(check_room(3, 3), Err(StoreError::RosterFull)));
        assert!(check_room(u64::MAX, 0).is_ok());
    }

    #[test]
    fn groups_land_on_their_items() {
        let mut items: Vec<RosterItem> = ["a@x", "c@x", "d@x"]
            .iter()
            .map(|j| RosterItem::new(Jid::parse(j).unwrap()))
            .collect();
        let rows = [("a@x", "1"), ("a@x", "2"), ("b@x", "orphan"), ("d@x", "3")]
            .iter()
            .map(|(c, g)| (c.to_string(), g.to_string()))
            .collect();
        attach_groups(&mut items, rows);
        let groups: Vec<_> = items.iter().map(|i| i.groups.join(",")).collect();
        assert_eq!(groups, ["1,2", "", "3"]);
    }
}
