//! The conformance cases for [`RosterStore`]: roster items, waiting subscription
//! requests, the roster version and the size limit (RFC 6121 §2, §3). `main.rs` runs
//! every case listed in [`for_each_case!`] against each backend, like those of
//! `suite.rs`.
//!
//! [`RosterStore`]: pipit_store::RosterStore

use std::collections::BTreeSet;

use pipit_proto::jid::Jid;
use pipit_store::{
    Roster, SharedStore, StoreError, Subscription, SubscriptionChange, SubscriptionEvent,
    SubscriptionState,
};

use crate::suite::{Backend, creds};

/// Calls `$m!(args..., roster: <every case below>)`; add new cases here.
macro_rules! for_each_case {
    ($m:ident $(, $arg:expr)*) => {
        $m!(
            $($arg,)*
            roster:
            a_new_roster_is_empty_at_version_zero,
            roster_items_are_added_and_updated_with_a_new_version_each,
            removing_an_item_takes_its_groups_and_waiting_request,
            a_subscription_handshake_ends_in_both,
            a_stanza_that_changes_nothing_writes_nothing,
            the_size_limit_counts_items_and_waiting_requests,
            roster_changes_need_the_account,
            rosters_die_with_the_user,
            concurrent_roster_changes_each_get_a_version,
        );
    };
}
pub(crate) use for_each_case;

const LIT: &str = "capulet.lit";

fn jid(s: &str) -> Jid {
    Jid::parse(s).unwrap()
}

fn state(subscription: Subscription, pending_out: bool, pending_in: bool) -> SubscriptionState {
    SubscriptionState {
        subscription,
        pending_out,
        pending_in,
    }
}

/// A store with the accounts juliet and romeo on capulet.lit.
async fn lovers(b: &impl Backend) -> SharedStore {
    let s = b.open().await;
    for (i, name) in ["juliet", "romeo"].into_iter().enumerate() {
        s.create_user(name, LIT, &creds(i as u8)).await.unwrap();
    }
    s
}

/// Applies `event` to juliet's state with `contact`, with no size limit.
async fn juliet_gets(
    s: &SharedStore,
    contact: &str,
    event: SubscriptionEvent,
) -> SubscriptionChange {
    s.update_subscription("juliet", LIT, &jid(contact), event, 0)
        .await
        .unwrap()
}

pub async fn a_new_roster_is_empty_at_version_zero(b: &impl Backend) {
    let s = lovers(b).await;
    assert_eq!(s.roster("juliet", LIT).await.unwrap(), Roster::default());
    assert_eq!(s.roster_version("juliet", LIT).await.unwrap(), 0);
    assert!(
        s.pending_subscriptions("juliet", LIT)
            .await
            .unwrap()
            .is_empty()
    );
    let nobody = jid("nurse@capulet.lit");
    assert_eq!(
        s.subscription_state("juliet", LIT, &nobody).await.unwrap(),
        SubscriptionState::default()
    );
    // No such account: the same, not an error.
    assert_eq!(s.roster("tybalt", LIT).await.unwrap(), Roster::default());
}

pub async fn roster_items_are_added_and_updated_with_a_new_version_each(b: &impl Backend) {
    let s = lovers(b).await;
    let groups = ["Servants".to_string(), "House".to_string()];
    let push = s
        .set_roster_item(
            "juliet",
            LIT,
            &jid("nurse@capulet.lit"),
            Some("Nurse"),
            &groups,
            0,
        )
        .await
        .unwrap();
    assert_eq!(push.version, 1);
    assert_eq!(push.item.name.as_deref(), Some("Nurse"));
    assert_eq!(push.item.subscription, Subscription::None);
    // Groups come back by name.
    assert_eq!(push.item.groups, ["House", "Servants"]);
    let push = s
        .set_roster_item("juliet", LIT, &jid("benvolio@montague.lit"), None, &[], 0)
        .await
        .unwrap();
    assert_eq!(push.version, 2);

    // An update replaces name and groups, and keeps the subscription.
    juliet_gets(&s, "nurse@capulet.lit", SubscriptionEvent::SendSubscribe).await;
    let push = s
        .set_roster_item(
            "juliet",
            LIT,
            &jid("nurse@capulet.lit"),
            None,
            &["Friends".to_string()],
            0,
        )
        .await
        .unwrap();
    assert_eq!(push.version, 4);
    assert_eq!(push.item.name, None);
    assert_eq!(push.item.groups, ["Friends"]);
    assert!(push.item.pending_out);

    let roster = s.roster("juliet", LIT).await.unwrap();
    assert_eq!(roster.version, 4);
    assert_eq!(s.roster_version("juliet", LIT).await.unwrap(), 4);
    let jids: Vec<String> = roster.items.iter().map(|i| i.jid.to_string()).collect();
    assert_eq!(jids, ["benvolio@montague.lit", "nurse@capulet.lit"]);
    assert_eq!(roster.items[1], push.item);
    // Romeo's roster is his own.
    assert!(s.roster("romeo", LIT).await.unwrap().items.is_empty());
}

pub async fn removing_an_item_takes_its_groups_and_waiting_request(b: &impl Backend) {
    let s = lovers(b).await;
    let nurse = jid("nurse@capulet.lit");
    s.set_roster_item("juliet", LIT, &nurse, None, &["House".to_string()], 0)
        .await
        .unwrap();
    juliet_gets(&s, "nurse@capulet.lit", SubscriptionEvent::ReceiveSubscribe).await;
    let removed = s.remove_roster_item("juliet", LIT, &nurse).await.unwrap();
    assert_eq!(removed, Some((state(Subscription::None, false, true), 2)));
    assert!(s.roster("juliet", LIT).await.unwrap().items.is_empty());
    assert!(
        s.pending_subscriptions("juliet", LIT)
            .await
            .unwrap()
            .is_empty()
    );
    // Nothing to remove: nothing changes, not even the version.
    assert_eq!(
        s.remove_roster_item("juliet", LIT, &nurse).await.unwrap(),
        None
    );
    assert_eq!(s.roster_version("juliet", LIT).await.unwrap(), 2);
    // Added again, it starts without the old groups.
    let push = s
        .set_roster_item("juliet", LIT, &nurse, None, &[], 0)
        .await
        .unwrap();
    assert!(push.item.groups.is_empty());
}

pub async fn a_subscription_handshake_ends_in_both(b: &impl Backend) {
    let s = lovers(b).await;
    let (juliet, romeo) = (jid("juliet@capulet.lit"), jid("romeo@capulet.lit"));
    let up = |user: &'static str, contact: &Jid, event| {
        let (s, contact) = (s.clone(), contact.clone());
        async move {
            s.update_subscription(user, LIT, &contact, event, 0)
                .await
                .unwrap()
        }
    };
    // Romeo asks: his item appears with ask, Juliet gets a waiting request, no item.
    let asked = up("romeo", &juliet, SubscriptionEvent::SendSubscribe).await;
    assert_eq!(asked.after, state(Subscription::None, true, false));
    assert!(asked.push.as_ref().unwrap().item.pending_out);
    let waiting = up("juliet", &romeo, SubscriptionEvent::ReceiveSubscribe).await;
    assert!(waiting.changed() && waiting.push.is_none());
    assert_eq!(
        s.pending_subscriptions("juliet", LIT).await.unwrap(),
        std::slice::from_ref(&romeo)
    );
    assert!(s.roster("juliet", LIT).await.unwrap().items.is_empty());

    // Juliet approves: her item appears with `from`, and the request is gone.
    let approved = up("juliet", &romeo, SubscriptionEvent::SendSubscribed).await;
    assert_eq!(approved.after, state(Subscription::From, false, false));
    let push = approved.push.unwrap();
    assert_eq!(
        (push.item.subscription, push.version),
        (Subscription::From, 1)
    );
    assert!(
        s.pending_subscriptions("juliet", LIT)
            .await
            .unwrap()
            .is_empty()
    );
    let to = up("romeo", &juliet, SubscriptionEvent::ReceiveSubscribed).await;
    assert_eq!(to.push.unwrap().item.subscription, Subscription::To);

    // And back.
    up("juliet", &romeo, SubscriptionEvent::SendSubscribe).await;
    up("romeo", &juliet, SubscriptionEvent::ReceiveSubscribe).await;
    up("romeo", &juliet, SubscriptionEvent::SendSubscribed).await;
    let both = up("juliet", &romeo, SubscriptionEvent::ReceiveSubscribed).await;
    assert_eq!(both.after, state(Subscription::Both, false, false));
    for (user, contact) in [("juliet", &romeo), ("romeo", &juliet)] {
        assert_eq!(
            s.subscription_state(user, LIT, contact).await.unwrap(),
            state(Subscription::Both, false, false)
        );
        let roster = s.roster(user, LIT).await.unwrap();
        assert_eq!(roster.items.len(), 1);
        assert_eq!(roster.items[0].subscription, Subscription::Both);
    }

    // Romeo cancels: his `both` becomes `from`; the item stays.
    let cancelled = up("romeo", &juliet, SubscriptionEvent::SendUnsubscribe).await;
    assert_eq!(cancelled.after, state(Subscription::From, false, false));
    assert_eq!(s.roster("romeo", LIT).await.unwrap().items.len(), 1);
}

pub async fn a_stanza_that_changes_nothing_writes_nothing(b: &impl Backend) {
    let s = lovers(b).await;
    // Approving with no request waiting (pre-approval is not offered).
    let none = juliet_gets(&s, "romeo@capulet.lit", SubscriptionEvent::SendSubscribed).await;
    assert!(!none.changed() && none.push.is_none());
    // An approval nobody asked for.
    let none = juliet_gets(
        &s,
        "romeo@capulet.lit",
        SubscriptionEvent::ReceiveSubscribed,
    )
    .await;
    assert!(!none.changed());
    assert_eq!(s.roster("juliet", LIT).await.unwrap(), Roster::default());
    // Asking twice changes the state once.
    juliet_gets(&s, "romeo@capulet.lit", SubscriptionEvent::SendSubscribe).await;
    let again = juliet_gets(&s, "romeo@capulet.lit", SubscriptionEvent::SendSubscribe).await;
    assert!(!again.changed() && again.push.is_none());
    assert_eq!(s.roster_version("juliet", LIT).await.unwrap(), 1);
}

pub async fn the_size_limit_counts_items_and_waiting_requests(b: &impl Backend) {
    let s = lovers(b).await;
    let set = |contact: &'static str| {
        let s = s.clone();
        async move {
            s.set_roster_item("juliet", LIT, &jid(contact), None, &[], 2)
                .await
        }
    };
    set("a@capulet.lit").await.unwrap();
    s.update_subscription(
        "juliet",
        LIT,
        &jid("b@capulet.lit"),
        SubscriptionEvent::ReceiveSubscribe,
        2,
    )
    .await
    .unwrap();
    // Full: neither a new item nor a new request fits, and nothing is written.
    assert!(matches!(
        set("c@capulet.lit").await,
        Err(StoreError::RosterFull)
    ));
    let refused = s
        .update_subscription(
            "juliet",
            LIT,
            &jid("c@capulet.lit"),
            SubscriptionEvent::ReceiveSubscribe,
            2,
        )
        .await;
    assert!(
        matches!(refused, Err(StoreError::RosterFull)),
        "{refused:?}"
    );
    let refused = s
        .update_subscription(
            "juliet",
            LIT,
            &jid("c@capulet.lit"),
            SubscriptionEvent::SendSubscribe,
            2,
        )
        .await;
    assert!(
        matches!(refused, Err(StoreError::RosterFull)),
        "{refused:?}"
    );
    assert_eq!(s.roster_version("juliet", LIT).await.unwrap(), 1);
    assert_eq!(
        s.pending_subscriptions("juliet", LIT).await.unwrap(),
        [jid("b@capulet.lit")]
    );
    // What is there can still change: an update, and the waiting request becoming
    // an item in its own place.
    set("a@capulet.lit").await.unwrap();
    set("b@capulet.lit").await.unwrap();
    s.update_subscription(
        "juliet",
        LIT,
        &jid("b@capulet.lit"),
        SubscriptionEvent::SendSubscribed,
        2,
    )
    .await
    .unwrap();
    assert_eq!(s.roster("juliet", LIT).await.unwrap().items.len(), 2);
    // Zero is no limit.
    s.set_roster_item("juliet", LIT, &jid("c@capulet.lit"), None, &[], 0)
        .await
        .unwrap();
}

pub async fn roster_changes_need_the_account(b: &impl Backend) {
    let s = b.open().await;
    let nurse = jid("nurse@capulet.lit");
    let set = s.set_roster_item("tybalt", LIT, &nurse, None, &[], 0).await;
    assert!(matches!(set, Err(StoreError::NoSuchUser)), "{set:?}");
    let update = s
        .update_subscription(
            "tybalt",
            LIT,
            &nurse,
            SubscriptionEvent::ReceiveSubscribe,
            0,
        )
        .await;
    assert!(matches!(update, Err(StoreError::NoSuchUser)), "{update:?}");
    assert_eq!(
        s.remove_roster_item("tybalt", LIT, &nurse).await.unwrap(),
        None
    );
}

pub async fn rosters_die_with_the_user(b: &impl Backend) {
    let s = lovers(b).await;
    s.set_roster_item(
        "juliet",
        LIT,
        &jid("nurse@capulet.lit"),
        None,
        &["House".to_string()],
        0,
    )
    .await
    .unwrap();
    juliet_gets(&s, "romeo@capulet.lit", SubscriptionEvent::ReceiveSubscribe).await;
    s.delete_user("juliet", LIT).await.unwrap();
    s.create_user("juliet", LIT, &creds(7)).await.unwrap();
    // A new account with the same name starts with nothing of the old one's.
    assert_eq!(s.roster("juliet", LIT).await.unwrap(), Roster::default());
    assert!(
        s.pending_subscriptions("juliet", LIT)
            .await
            .unwrap()
            .is_empty()
    );
}

pub async fn concurrent_roster_changes_each_get_a_version(b: &impl Backend) {
    let handles = [b.open().await, b.open().await];
    handles[0]
        .create_user("juliet", LIT, &creds(0))
        .await
        .unwrap();
    const CHANGES: usize = 32;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..CHANGES {
        let s = handles[i % 2].clone();
        tasks.spawn(async move {
            let contact = jid(&format!("c{i:02}@capulet.lit"));
            if i % 2 == 0 {
                s.set_roster_item("juliet", LIT, &contact, None, &[], 0)
                    .await
                    .unwrap()
                    .version
            } else {
                let change = s
                    .update_subscription(
                        "juliet",
                        LIT,
                        &contact,
                        SubscriptionEvent::SendSubscribe,
                        0,
                    )
                    .await
                    .unwrap();
                change.push.unwrap().version
            }
        });
    }
    let mut versions = BTreeSet::new();
    while let Some(done) = tasks.join_next().await {
        versions.insert(done.unwrap());
    }
    // Every change made its own version: none lost, none shared.
    assert_eq!(versions, (1..=CHANGES as u64).collect());
    let roster = handles[1].roster("juliet", LIT).await.unwrap();
    assert_eq!(
        (roster.version, roster.items.len()),
        (CHANGES as u64, CHANGES)
    );
}
