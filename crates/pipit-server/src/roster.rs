//! Roster management (RFC 6121 §2): the roster get and set an account's own
//! resources send, and the roster pushes to its interested resources (§2.1.6).
//!
//! The checks on a roster set and the item elements come from
//! [`pipit_proto::roster`]; the roster itself from the store's [`RosterStore`].
//!
//! [`RosterStore`]: pipit_store::RosterStore

use pipit_proto::jid::Jid;
use pipit_proto::random::Random;
use pipit_proto::roster::{self, RosterSet, SubscriptionEvent};
use pipit_proto::stanza::{StanzaError, iq_result};
use pipit_proto::xml::{Element, ns};
use pipit_store::StoreError;

use crate::im::reply_error;
use crate::presence;
use crate::server::Context;
use crate::session::OsRandom;

/// Whether an iq request is a roster get or set.
pub(crate) fn is_roster_request(iq: &Element) -> bool {
    iq.children()
        .next()
        .is_some_and(|q| q.is("query", ns::ROSTER))
}

/// Answers a roster get or set from `from` to the account `bare` (its `to`, or its
/// own account when it had none).
pub(crate) async fn handle(ctx: &Context, from: &Jid, bare: &Jid, iq: &Element) {
    // §2.1.5 and §2.3.3: only the account's own resources see or change a roster.
    if from.to_bare() != *bare {
        return reply_error(ctx, from, iq, StanzaError::Forbidden);
    }
    let Some(query) = iq.children().next() else {
        return;
    };
    if iq.attr("type") == Some("get") {
        get(ctx, from, iq, query).await;
    } else {
        set(ctx, from, iq, query).await;
    }
}

/// The local and domain parts the store keys an account by.
pub(crate) fn account(bare: &Jid) -> (&str, &str) {
    (bare.local().unwrap_or_default(), bare.domain())
}

/// Logs a store failure and answers `internal-server-error` (RFC 6121 §2.2 names it
/// for a roster the server cannot read).
fn failed(ctx: &Context, from: &Jid, iq: &Element, e: &StoreError) {
    tracing::error!("{from}: roster: {e}");
    reply_error(ctx, from, iq, StanzaError::InternalServerError);
}

/// §2.2 and §2.6: the roster, or an empty result when the client's cached
/// version is current (after which nothing has changed, so no push follows).
/// The resource becomes interested either way.
async fn get(ctx: &Context, from: &Jid, iq: &Element, query: &Element) {
    let (local, domain) = account(from);
    ctx.router.set_interested(from);
    let cached = roster::requested_version(query);
    if let Some(cached) = cached {
        match ctx.store.roster_version(local, domain).await {
            Ok(version) if version == cached => {
                ctx.router.deliver_to_full(from, iq_result(iq));
                return;
            }
            Ok(_) => {}
            Err(e) => return failed(ctx, from, iq, &e),
        }
    }
    // §2.6.3 lets a stale cache get the whole roster rather than the changes.
    match ctx.store.roster(local, domain).await {
        Ok(r) => {
            let items = r.items.iter().map(|item| item.to_element());
            let reply = iq_result(iq).with_child(roster::query(r.version, items));
            ctx.router.deliver_to_full(from, reply);
        }
        Err(e) => failed(ctx, from, iq, &e),
    }
}

/// §2.3 to §2.5: adds, updates or removes one item; the requester gets the result,
/// every interested resource the push.
async fn set(ctx: &Context, from: &Jid, iq: &Element, query: &Element) {
    let (local, domain) = account(from);
    let user = from.to_bare();
    let change = match RosterSet::parse(query) {
        Ok(change) => change,
        Err(e) => return reply_error(ctx, from, iq, e.stanza_error()),
    };
    match change {
        RosterSet::Update { jid, name, groups } => {
            let stored = ctx
                .store
                .set_roster_item(
                    local,
                    domain,
                    &jid,
                    name.as_deref(),
                    &groups,
                    ctx.config.max_roster_items,
                )
                .await;
            match stored {
                Ok(pushed) => {
                    ctx.router.deliver_to_full(from, iq_result(iq));
                    push(ctx, &user, pushed.version, pushed.item.to_element());
                }
                // The roster is at its maximum size: RFC 6121 §2.3.3 lets a server
                // refuse a roster change with <not-allowed/>.
                Err(StoreError::RosterFull) => reply_error(ctx, from, iq, StanzaError::NotAllowed),
                Err(e) => failed(ctx, from, iq, &e),
            }
        }
        RosterSet::Remove(jid) => match ctx.store.remove_roster_item(local, domain, &jid).await {
            Ok(Some((before, version))) => {
                ctx.router.deliver_to_full(from, iq_result(iq));
                push(ctx, &user, version, roster::removed_item(&jid));
                // §2.5.2: removing a contact cancels the subscriptions both ways.
                if before.subscription.has_to() || before.pending_out {
                    presence::deliver_subscription(
                        ctx,
                        &user,
                        &jid,
                        SubscriptionEvent::ReceiveUnsubscribe,
                    )
                    .await;
                }
                if before.subscription.has_from() || before.pending_in {
                    presence::deliver_subscription(
                        ctx,
                        &user,
                        &jid,
                        SubscriptionEvent::ReceiveUnsubscribed,
                    )
                    .await;
                }
                if before.subscription.has_from() {
                    presence::went_unavailable_for(ctx, &user, &jid);
                }
            }
            // §2.5.3: nothing to remove.
            Ok(None) => reply_error(ctx, from, iq, StanzaError::ItemNotFound),
            Err(e) => failed(ctx, from, iq, &e),
        },
    }
}

/// A roster push of `item` at `version` to every interested resource of the
/// account `bare` (§2.1.6), each with an id of its own.
pub(crate) fn push(ctx: &Context, bare: &Jid, version: u64, item: Element) {
    for resource in ctx.router.interested(bare) {
        let id = format!("push-{}", OsRandom.hex(6));
        let push = roster::push(&id, &resource, version, item.clone());
        ctx.router.deliver_to_full(&resource, push);
    }
}
