//! The subscription state machine of RFC 6121 Appendix A, without pre-approval
//! (§3.4 is not offered, so the "+ Pre-Approved" states never arise).

use super::item::Subscription;

/// Where a user stands with one contact: the roster item's subscription and
/// pending-out flag, and whether the contact's own request waits for an answer
/// ("pending in", §3.1.3). Two invariants hold in every state [`apply`] makes: no
/// pending-out while subscribed to the contact, no pending-in while the contact is
/// subscribed to the user.
///
/// [`apply`]: SubscriptionState::apply
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct SubscriptionState {
    /// The item's `subscription` (`none` when there is no item).
    pub subscription: Subscription,
    /// The user's request to the contact waits (`ask='subscribe'`).
    pub pending_out: bool,
    /// The contact's request to the user waits.
    pub pending_in: bool,
}

/// A subscription stanza as it concerns one user's state with one contact: sent by
/// the user (outbound, Appendix A.2) or received from the contact (inbound, A.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SubscriptionEvent {
    /// The user asks for the contact's presence (§3.1.2, A.2.1).
    SendSubscribe,
    /// The user approves the contact's request (§3.1.5, A.2.3).
    SendSubscribed,
    /// The user cancels its subscription to the contact (§3.3.2, A.2.2).
    SendUnsubscribe,
    /// The user denies or revokes the contact's subscription (§3.2.2, A.2.4).
    SendUnsubscribed,
    /// The contact asks for the user's presence (§3.1.3, A.3.1).
    ReceiveSubscribe,
    /// The contact approved the user's request (§3.1.6, A.3.3).
    ReceiveSubscribed,
    /// The contact cancelled its subscription to the user (§3.3.3, A.3.2).
    ReceiveUnsubscribe,
    /// The contact denied or revoked the user's subscription (§3.2.3, A.3.4).
    ReceiveUnsubscribed,
}

impl SubscriptionEvent {
    /// The presence `type` of the stanza.
    pub fn kind(self) -> &'static str {
        match self {
            SubscriptionEvent::SendSubscribe | SubscriptionEvent::ReceiveSubscribe => "subscribe",
            SubscriptionEvent::SendSubscribed | SubscriptionEvent::ReceiveSubscribed => {
                "subscribed"
            }
            SubscriptionEvent::SendUnsubscribe | SubscriptionEvent::ReceiveUnsubscribe => {
                "unsubscribe"
            }
            SubscriptionEvent::SendUnsubscribed | SubscriptionEvent::ReceiveUnsubscribed => {
                "unsubscribed"
            }
        }
    }

    /// The outbound event for a presence `type`, `None` if it is no subscription type.
    pub fn outbound(kind: &str) -> Option<SubscriptionEvent> {
        match kind {
            "subscribe" => Some(SubscriptionEvent::SendSubscribe),
            "subscribed" => Some(SubscriptionEvent::SendSubscribed),
            "unsubscribe" => Some(SubscriptionEvent::SendUnsubscribe),
            "unsubscribed" => Some(SubscriptionEvent::SendUnsubscribed),
            _ => None,
        }
    }

    /// The same stanza as the contact's server receives it.
    pub fn inbound(self) -> SubscriptionEvent {
        match self {
            SubscriptionEvent::SendSubscribe => SubscriptionEvent::ReceiveSubscribe,
            SubscriptionEvent::SendSubscribed => SubscriptionEvent::ReceiveSubscribed,
            SubscriptionEvent::SendUnsubscribe => SubscriptionEvent::ReceiveUnsubscribe,
            SubscriptionEvent::SendUnsubscribed => SubscriptionEvent::ReceiveUnsubscribed,
            inbound => inbound,
        }
    }
}

impl SubscriptionState {
    /// The state after `event`, or `None` where Appendix A says "no state change".
    pub fn apply(self, event: SubscriptionEvent) -> Option<SubscriptionState> {
        let to = self.subscription.has_to();
        let from = self.subscription.has_from();
        let mut next = self;
        match event {
            // A.2.1: ask, unless subscribed or already asking.
            SubscriptionEvent::SendSubscribe => {
                if to || self.pending_out {
                    return None;
                }
                next.pending_out = true;
            }
            // A.2.2 and A.3.4: the user's side of the subscription ends, or the
            // request is withdrawn (or denied).
            SubscriptionEvent::SendUnsubscribe | SubscriptionEvent::ReceiveUnsubscribed => {
                if to {
                    next.subscription = Subscription::from_directions(false, from);
                } else if self.pending_out {
                    next.pending_out = false;
                } else {
                    return None;
                }
            }
            // A.2.3: approving needs a request; without pre-approval there is
            // nothing to approve in advance.
            SubscriptionEvent::SendSubscribed => {
                if !self.pending_in {
                    return None;
                }
                next.subscription = Subscription::from_directions(to, true);
                next.pending_in = false;
            }
            // A.2.4 and A.3.2: the contact's side ends, or its request is denied
            // (or withdrawn).
            SubscriptionEvent::SendUnsubscribed | SubscriptionEvent::ReceiveUnsubscribe => {
                if from {
                    next.subscription = Subscription::from_directions(to, false);
                } else if self.pending_in {
                    next.pending_in = false;
                } else {
                    return None;
                }
            }
            // A.3.1: a request is remembered unless already subscribed or waiting.
            SubscriptionEvent::ReceiveSubscribe => {
                if from || self.pending_in {
                    return None;
                }
                next.pending_in = true;
            }
            // A.3.3: an approval counts only for a request the user made.
            SubscriptionEvent::ReceiveSubscribed => {
                if !self.pending_out {
                    return None;
                }
                next.subscription = Subscription::from_directions(true, from);
                next.pending_out = false;
            }
        }
        Some(next)
    }

    /// Whether this state needs a roster item: a subscription either way, or the
    /// user's own request waiting. A request from the contact alone does not
    /// (§3.1.3: it waits for the user's answer without being on the roster).
    pub fn needs_item(self) -> bool {
        self.subscription != Subscription::None || self.pending_out
    }
}

#[cfg(test)]
mod tests {
    use super::SubscriptionEvent::*;
    use super::*;

    const EVENTS: [SubscriptionEvent; 8] = [
        SendSubscribe,
        SendSubscribed,
        SendUnsubscribe,
        SendUnsubscribed,
        ReceiveSubscribe,
        ReceiveSubscribed,
        ReceiveUnsubscribe,
        ReceiveUnsubscribed,
    ];

    fn state(subscription: &str, pending_out: bool, pending_in: bool) -> SubscriptionState {
        SubscriptionState {
            subscription: Subscription::from_name(subscription).unwrap(),
            pending_out,
            pending_in,
        }
    }

    /// Every state the invariants allow.
    fn all_states() -> Vec<SubscriptionState> {
        let mut states = Vec::new();
        for s in ["none", "to", "from", "both"] {
            for out in [false, true] {
                for pending_in in [false, true] {
                    let st = state(s, out, pending_in);
                    let subscribed_and_asking = st.subscription.has_to() && out;
                    let subscribed_and_asked = st.subscription.has_from() && pending_in;
                    if !subscribed_and_asking && !subscribed_and_asked {
                        states.push(st);
                    }
                }
            }
        }
        states
    }

    #[test]
    fn a_handshake_both_ways_ends_in_both() {
        // Romeo asks Juliet; each side's view, as in RFC 6121 §3.1.
        let romeo = SubscriptionState::default().apply(SendSubscribe).unwrap();
        assert_eq!(romeo, state("none", true, false));
        let juliet = SubscriptionState::default()
            .apply(ReceiveSubscribe)
            .unwrap();
        assert_eq!(juliet, state("none", false, true));
        let juliet = juliet.apply(SendSubscribed).unwrap();
        assert_eq!(juliet, state("from", false, false));
        let romeo = romeo.apply(ReceiveSubscribed).unwrap();
        assert_eq!(romeo, state("to", false, false));
        // And back (§3.1, "mutual subscription").
        let juliet = juliet.apply(SendSubscribe).unwrap();
        let romeo = romeo.apply(ReceiveSubscribe).unwrap().apply(SendSubscribed);
        assert_eq!(romeo, Some(state("both", false, false)));
        assert_eq!(
            juliet.apply(ReceiveSubscribed),
            Some(state("both", false, false))
        );
    }

    #[test]
    fn appendix_a_rows_that_change_nothing() {
        assert_eq!(state("to", false, false).apply(SendSubscribe), None);
        assert_eq!(state("none", true, false).apply(SendSubscribe), None);
        assert_eq!(state("none", false, false).apply(SendSubscribed), None);
        assert_eq!(state("from", false, false).apply(ReceiveSubscribe), None);
        assert_eq!(state("none", false, false).apply(ReceiveSubscribed), None);
        assert_eq!(state("from", false, false).apply(SendUnsubscribe), None);
        assert_eq!(state("to", false, false).apply(SendUnsubscribed), None);
    }

    #[test]
    fn cancelling_and_revoking_take_one_direction_away() {
        let both = state("both", false, false);
        assert_eq!(
            both.apply(SendUnsubscribe),
            Some(state("from", false, false))
        );
        assert_eq!(
            both.apply(ReceiveUnsubscribed),
            Some(state("from", false, false))
        );
        assert_eq!(
            both.apply(SendUnsubscribed),
            Some(state("to", false, false))
        );
        assert_eq!(
            both.apply(ReceiveUnsubscribe),
            Some(state("to", false, false))
        );
        // A waiting request is withdrawn or denied.
        let asking = state("none", true, true);
        assert_eq!(
            asking.apply(SendUnsubscribe),
            Some(state("none", false, true))
        );
        assert_eq!(
            asking.apply(SendUnsubscribed),
            Some(state("none", true, false))
        );
    }

    #[test]
    fn every_transition_keeps_the_invariants_and_changes_something() {
        let states = all_states();
        assert_eq!(states.len(), 9, "{states:?}");
        for st in states.iter().copied() {
            for event in EVENTS {
                if let Some(next) = st.apply(event) {
                    assert_ne!(next, st, "{st:?} {event:?}");
                    assert!(states.contains(&next), "{st:?} {event:?} -> {next:?}");
                }
            }
        }
    }

    #[test]
    fn kinds_round_trip() {
        for event in EVENTS {
            let outbound = SubscriptionEvent::outbound(event.kind()).unwrap();
            assert_eq!(outbound.inbound(), event.inbound());
        }
        assert_eq!(SubscriptionEvent::outbound("probe"), None);
    }
}
