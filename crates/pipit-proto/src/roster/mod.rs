//! Rosters and presence subscriptions (RFC 6121 §2 and §3), without I/O: the roster
//! item and how it is written, the checks on a roster set, and the subscription
//! state machine of RFC 6121 Appendix A.
//!
//! The server keeps the state (in `pipit-store`) and routes the stanzas; what a
//! state becomes after a subscription stanza, and which roster sets are refused
//! with which error, is decided here once.
//!
//! - `item.rs`: [`RosterItem`], [`Subscription`] and the elements of a roster
//!   result or push.
//! - `request.rs`: [`RosterSet`] parsed from a roster set, and [`RosterError`].
//! - `subscription.rs`: [`SubscriptionState`] and [`SubscriptionEvent`].

mod item;
mod request;
mod subscription;

pub use item::{RosterItem, Subscription, push, query, removed_item};
pub use request::{MAX_GROUP_BYTES, MAX_NAME_BYTES, RosterError, RosterSet, requested_version};
pub use subscription::{SubscriptionEvent, SubscriptionState};
