//! Presence (RFC 6121 §3 and §4): subscription stanzas and the roster states they
//! change, and where a user's presence goes: to its own resources, to the contacts
//! subscribed to it, and to whoever it sent directed presence.
//!
//! Every contact is an account here (there is no server-to-server yet), so each
//! subscription stanza is processed twice in one go: outbound against the sender's
//! roster (§3.x.2), then inbound against the contact's (§3.x.3). Probes never go on
//! the wire: a user's server would send them on its behalf and the contact's server
//! would answer with the contact's presence (§4.3), and both are this server, so the
//! answer is read from the router.

use pipit_proto::jid::Jid;
use pipit_proto::roster::SubscriptionEvent;
use pipit_proto::stanza::StanzaError;
use pipit_proto::xml::{Element, ns};
use pipit_store::{RosterItem, StoreError, SubscriptionChange};

use crate::im::{Target, reply_error, target};
use crate::offline;
use crate::roster::{self, account};
use crate::server::Context;

/// Handles a presence stanza whose `from` the core has stamped with `from`.
pub(crate) async fn handle(ctx: &Context, from: &Jid, to: Option<Jid>, stanza: Element) {
    let kind = stanza.attr("type");
    let Some(to) = to else {
        match kind {
            None => available(ctx, from, stanza).await,
            Some("unavailable") => unavailable(ctx, from, stanza).await,
            // Subscription states and probes need a `to` (RFC 6121 §3); errors die here.
            Some("error") => {}
            Some(_) => reply_error(ctx, from, &stanza, StanzaError::BadRequest),
        }
        return;
    };
    match kind.and_then(SubscriptionEvent::outbound) {
        Some(event) => subscription(ctx, from, &to, event, &stanza).await,
        None if kind == Some("probe") => probe(ctx, from, &to, &stanza).await,
        None => directed(ctx, from, &to, stanza),
    }
}

/// §4.2 and §4.4: initial or updated available presence goes to all of the user's
/// available resources (the sender included) and to each contact subscribed to it.
/// The first one from a resource also brings it the presence of its other resources
/// and of the contacts it is subscribed to (the probes of §4.2.2, answered at once),
/// and the subscription requests that wait for an answer (§3.1.3). Presence that
/// makes the resource take messages (non-negative priority) then gets the offline
/// queue (XEP-0160 §2).
async fn available(ctx: &Context, from: &Jid, stanza: Element) {
    let priority = stanza
        .get_child("priority", ns::CLIENT)
        .and_then(|p| p.text().trim().parse::<i8>().ok())
        .unwrap_or(0);
    let bare = from.to_bare();
    let before = ctx.router.available_priority(from);
    let first = before.is_none();
    ctx.router
        .set_presence(from, Some(stanza.clone()), priority);
    ctx.router.deliver_to_available(&bare, &stanza, i8::MIN);
    if first {
        for mut other in ctx
            .router
            .presences_of_others(&bare, from.resource().unwrap_or_default())
        {
            other.set_attr("to", from.to_string());
            ctx.router.deliver_to_full(from, other);
        }
    }
    let (local, domain) = account(&bare);
    let items = match ctx.store.roster(local, domain).await {
        Ok(roster) => roster.items,
        Err(e) => {
            tracing::error!("{from}: roster for presence: {e}");
            Vec::new()
        }
    };
    let watchers = items
        .iter()
        .filter(|i| i.subscription.has_from())
        .map(|i| i.jid.clone());
    to_contacts(ctx, &stanza, watchers, Vec::new());
    if first {
        contacts_and_requests(ctx, from, &items).await;
    }
    // XEP-0160 §2: the queue goes out once the resource takes messages.
    if priority >= 0 && before.is_none_or(|p| p < 0) {
        offline::flush(ctx, from).await;
    }
}

/// What a resource's first available presence brings it: the presence of the
/// contacts it is subscribed to (§4.2.2) and the requests waiting (§3.1.3).
async fn contacts_and_requests(ctx: &Context, from: &Jid, items: &[RosterItem]) {
    let bare = from.to_bare();
    let (local, domain) = account(&bare);
    for item in items.iter().filter(|i| i.subscription.has_to()) {
        for mut presence in ctx.router.presences(&item.jid) {
            presence.set_attr("to", from.to_string());
            ctx.router.deliver_to_full(from, presence);
        }
    }
    match ctx.store.pending_subscriptions(local, domain).await {
        Ok(waiting) => {
            for contact in waiting {
                let request = subscription_stanza("subscribe", &contact, &bare);
                ctx.router.deliver_to_full(from, request);
            }
        }
        Err(e) => tracing::error!("{from}: waiting subscription requests: {e}"),
    }
}

/// §4.5: unavailable presence goes to the user's available resources and the sender
/// (as before), and, from a resource that was available, to the contacts subscribed
/// to the user and to where it sent directed presence.
async fn unavailable(ctx: &Context, from: &Jid, stanza: Element) {
    let was_available = ctx.router.available_priority(from).is_some();
    ctx.router.set_presence(from, None, 0);
    ctx.router
        .deliver_to_available(&from.to_bare(), &stanza, i8::MIN);
    ctx.router.deliver_to_full(from, stanza.clone());
    if was_available {
        let directed = ctx.router.take_directed(from);
        tell_watchers(ctx, from, &stanza, directed).await;
    }
}

/// §4.5.3 and §4.6.3: a session that ended without a word, while available, still
/// goes unavailable for the user's other resources, its contacts and whoever got
/// its directed presence.
pub(crate) async fn session_ended(ctx: &Context, full: &Jid, directed: Vec<Jid>) {
    let unavailable = Element::new("presence", ns::CLIENT)
        .with_attr("type", "unavailable")
        .with_attr("from", full.to_string());
    ctx.router
        .deliver_to_available(&full.to_bare(), &unavailable, i8::MIN);
    tell_watchers(ctx, full, &unavailable, directed).await;
}

/// Sends `stanza` from `from` to the contacts subscribed to its account, then to the
/// `directed` ones they do not already cover.
async fn tell_watchers(ctx: &Context, from: &Jid, stanza: &Element, directed: Vec<Jid>) {
    let (local, domain) = account(from);
    let watchers = match ctx.store.roster(local, domain).await {
        Ok(roster) => roster
            .items
            .into_iter()
            .filter(|i| i.subscription.has_from())
            .map(|i| i.jid)
            .collect(),
        Err(e) => {
            tracing::error!("{from}: roster for presence: {e}");
            Vec::new()
        }
    };
    to_contacts(ctx, stanza, watchers, directed);
}

/// Delivers `stanza` to every available resource of each of `watchers` (bare JIDs,
/// `to` set to each), then to each of `directed` whose account is not a watcher.
fn to_contacts(
    ctx: &Context,
    stanza: &Element,
    watchers: impl IntoIterator<Item = Jid>,
    directed: Vec<Jid>,
) {
    let mut told = Vec::new();
    for watcher in watchers {
        let mut copy = stanza.clone();
        copy.set_attr("to", watcher.to_string());
        ctx.router.deliver_to_available(&watcher, &copy, i8::MIN);
        told.push(watcher);
    }
    for to in directed {
        if told.contains(&to.to_bare()) {
            continue;
        }
        let mut copy = stanza.clone();
        copy.set_attr("to", to.to_string());
        if to.is_full() {
            ctx.router.deliver_to_full(&to, copy);
        } else {
            ctx.router.deliver_to_available(&to, &copy, i8::MIN);
        }
    }
}

/// §4.6: directed presence, delivered as addressed. Available presence to another
/// account is remembered, so that it is followed by unavailable when the sender
/// goes (§4.6.2); directed unavailable presence ends that (§4.6.3).
fn directed(ctx: &Context, from: &Jid, to: &Jid, stanza: Element) {
    match target(ctx, to) {
        Target::Remote => reply_error(ctx, from, &stanza, StanzaError::RemoteServerNotFound),
        Target::Server => {}
        Target::Account(bare) => {
            if bare != from.to_bare() {
                match stanza.attr("type") {
                    None => ctx.router.note_directed(from, to, true),
                    Some("unavailable") => ctx.router.note_directed(from, to, false),
                    _ => {}
                }
            }
            if to.is_full() {
                ctx.router.deliver_to_full(to, stanza);
            } else {
                ctx.router.deliver_to_available(&bare, &stanza, i8::MIN);
            }
        }
    }
}

/// §4.3: a probe a client sent itself (servers send them, clients should not, but
/// may). It is answered, from the router, only where the contact's roster says the
/// prober is subscribed (§4.3.2: otherwise nothing is revealed).
async fn probe(ctx: &Context, from: &Jid, to: &Jid, stanza: &Element) {
    let contact = match target(ctx, to) {
        Target::Remote => {
            return reply_error(ctx, from, stanza, StanzaError::RemoteServerNotFound);
        }
        Target::Server => return,
        Target::Account(contact) => contact,
    };
    let (local, domain) = account(&contact);
    match ctx
        .store
        .subscription_state(local, domain, &from.to_bare())
        .await
    {
        Ok(state) if state.subscription.has_from() => {
            for mut presence in ctx.router.presences(&contact) {
                presence.set_attr("to", from.to_string());
                ctx.router.deliver_to_full(from, presence);
            }
        }
        Ok(_) => {}
        Err(e) => tracing::error!("{from}: probe of {contact}: {e}"),
    }
}

/// §3: a subscription stanza from the user. Outbound processing first, against the
/// user's roster (stamped with the bare JIDs of both, §3.1.2); then the stanza goes
/// on to the contact, which a subscribe or unsubscribe always does, and an
/// approval or a denial only when it changed something (Appendix A.2.3, A.2.4).
async fn subscription(
    ctx: &Context,
    from: &Jid,
    to: &Jid,
    event: SubscriptionEvent,
    stanza: &Element,
) {
    let user = from.to_bare();
    let contact = to.to_bare();
    match target(ctx, &contact) {
        // No server-to-server: as for a message to another domain.
        Target::Remote => {
            return reply_error(ctx, from, stanza, StanzaError::RemoteServerNotFound);
        }
        // A server has no presence to subscribe to, and one's own is always seen.
        Target::Server => return,
        Target::Account(_) if contact == user => return,
        Target::Account(_) => {}
    }
    let (local, domain) = account(&user);
    let change = match ctx
        .store
        .update_subscription(local, domain, &contact, event, ctx.config.max_roster_items)
        .await
    {
        Ok(change) => change,
        // Asking would add a contact to a full roster: refused as a roster set
        // would be (RFC 6121 §2.3.3).
        Err(StoreError::RosterFull) => {
            return reply_error(ctx, from, stanza, StanzaError::NotAllowed);
        }
        Err(e) => {
            tracing::error!("{from}: {} to {contact}: {e}", event.kind());
            return reply_error(ctx, from, stanza, StanzaError::InternalServerError);
        }
    };
    applied(ctx, &user, &contact, &change);
    let goes_on = matches!(
        event,
        SubscriptionEvent::SendSubscribe | SubscriptionEvent::SendUnsubscribe
    ) || change.changed();
    if goes_on {
        deliver_subscription(ctx, &user, &contact, event.inbound()).await;
    }
}

/// Inbound processing (§3.1.3, §3.1.6, §3.2.3, §3.3.3) of a subscription stanza
/// from `sender` at the account `recipient`, and of the answers the server gives
/// on the recipient's behalf, each inbound at the other side in turn.
pub(crate) async fn deliver_subscription(
    ctx: &Context,
    sender: &Jid,
    recipient: &Jid,
    event: SubscriptionEvent,
) {
    let (mut sender, mut recipient, mut event) = (sender.clone(), recipient.clone(), event);
    while let Some(answer) = inbound(ctx, &sender, &recipient, event).await {
        std::mem::swap(&mut sender, &mut recipient);
        event = answer;
    }
}

/// One inbound subscription stanza; returns the answer the server sends back for
/// the recipient, if any.
///
/// - A request to an account that does not exist, or whose roster is full, is
///   answered `unsubscribed` (the RFC's "deny"), so the asker is not left waiting;
///   any other stanza to a missing account vanishes (RFC 6121 §8.5.1).
/// - A request from a contact already subscribed is approved at once (§3.1.3).
/// - Otherwise a stanza that changed the recipient's state is delivered to its
///   available resources; a request none of them saw waits in the store and is
///   delivered again at each login until answered (§3.1.3).
async fn inbound(
    ctx: &Context,
    sender: &Jid,
    recipient: &Jid,
    event: SubscriptionEvent,
) -> Option<SubscriptionEvent> {
    let request = event == SubscriptionEvent::ReceiveSubscribe;
    let (local, domain) = account(recipient);
    let change = match ctx
        .store
        .update_subscription(local, domain, sender, event, ctx.config.max_roster_items)
        .await
    {
        Ok(change) => change,
        Err(StoreError::NoSuchUser | StoreError::RosterFull) => {
            return request.then_some(SubscriptionEvent::ReceiveUnsubscribed);
        }
        Err(e) => {
            tracing::error!("{recipient}: {} from {sender}: {e}", event.kind());
            return None;
        }
    };
    applied(ctx, recipient, sender, &change);
    if request && change.before.subscription.has_from() {
        return Some(SubscriptionEvent::ReceiveSubscribed);
    }
    if change.changed() {
        let stanza = subscription_stanza(event.kind(), sender, recipient);
        ctx.router.deliver_to_available(recipient, &stanza, i8::MIN);
    }
    None
}

/// What follows a change to `owner`'s state with `contact`: the roster push, and
/// the owner's presence to the contact when it starts (§3.1.5) or stops (§3.2.2,
/// §3.3.3) being subscribed to it.
fn applied(ctx: &Context, owner: &Jid, contact: &Jid, change: &SubscriptionChange) {
    if let Some(push) = &change.push {
        roster::push(ctx, owner, push.version, push.item.to_element());
    }
    match (
        change.before.subscription.has_from(),
        change.after.subscription.has_from(),
    ) {
        (false, true) => {
            for mut presence in ctx.router.presences(owner) {
                presence.set_attr("to", contact.to_string());
                ctx.router.deliver_to_available(contact, &presence, i8::MIN);
            }
        }
        (true, false) => went_unavailable_for(ctx, owner, contact),
        _ => {}
    }
}

/// Unavailable presence from each available resource of `owner` to `contact`, which
/// is no longer subscribed to it.
pub(crate) fn went_unavailable_for(ctx: &Context, owner: &Jid, contact: &Jid) {
    for presence in ctx.router.presences(owner) {
        let Some(resource) = presence.attr("from") else {
            continue;
        };
        let unavailable = Element::new("presence", ns::CLIENT)
            .with_attr("type", "unavailable")
            .with_attr("from", resource)
            .with_attr("to", contact.to_string());
        ctx.router
            .deliver_to_available(contact, &unavailable, i8::MIN);
    }
}

/// A subscription stanza between two bare JIDs, as §3.1.2 has the server stamp it.
fn subscription_stanza(kind: &str, from: &Jid, to: &Jid) -> Element {
    Element::new("presence", ns::CLIENT)
        .with_attr("type", kind)
        .with_attr("from", from.to_string())
        .with_attr("to", to.to_string())
}
