//! Messages to accounts here: the delivery rules of RFC 6121 §8.5, store and
//! forward. A message worth keeping ([`worth_keeping`]) is written to the
//! recipient's archive (XEP-0313), and the sender's, before anything else happens
//! to it; offline when nobody can take it now (XEP-0160). Only then is it
//! delivered, and only then does the sender's session go on to acknowledge it
//! (`crate::archive`). Other messages (chat states, headlines, errors) go straight
//! through, as before.

use std::time::{SystemTime, UNIX_EPOCH};

use pipit_proto::jid::Jid;
use pipit_proto::random::Random;
use pipit_proto::stanza::StanzaError;
use pipit_proto::xml::{Element, ns};
use pipit_store::{NewMessage, Stored};

use crate::im::{copy_carbons, reply_error};
use crate::offline;
use crate::server::Context;
use crate::session::OsRandom;

/// Whether a message belongs in the archive and the offline queue: chat or normal
/// with a body (XEP-0313 §5.1.1; XEP-0160's business rules keep neither headlines,
/// groupchat nor errors; XEP-0085 has chat states alone not stored), unless its
/// sender asked for it not to be stored (XEP-0334 `<no-store/>`,
/// `<no-permanent-store/>`).
pub fn worth_keeping(stanza: &Element) -> bool {
    matches!(stanza.attr("type"), None | Some("normal" | "chat"))
        && stanza.get_child("body", ns::CLIENT).is_some()
        && stanza.get_child("no-store", ns::HINTS).is_none()
        && stanza.get_child("no-permanent-store", ns::HINTS).is_none()
}

/// XEP-0359 §5 (Security Considerations): a `<stanza-id/>` claiming to be by an
/// archive of ours is a forgery unless we added it; such ones are removed before
/// the message goes anywhere.
pub fn strip_forged_ids(mut stanza: Element, ours: &[Jid]) -> Element {
    stanza.retain_children(|e| {
        !(e.is("stanza-id", ns::SID)
            && e.attr("by")
                .and_then(|by| Jid::parse(by).ok())
                .is_some_and(|by| ours.contains(&by)))
    });
    stanza
}

/// A message to an account here that is to be stored and then delivered.
pub struct Pending {
    /// The address as given, bare or full.
    pub to: Jid,
    /// The account it is for.
    pub bare: Jid,
    /// The message, forged wrappers and IDs removed.
    pub stanza: Element,
}

/// What is known of a pending message once its rows are built.
struct Prepared {
    pending: Pending,
    /// Whether a resource could take it when it was stored.
    online: bool,
    /// Its archive ID in the recipient's archive.
    recipient_id: String,
    /// The recipient's copy, with that ID (XEP-0359).
    for_recipient: Element,
}

/// Stores `batch`, messages from `from` in the order sent, in one write, then
/// delivers each in that order: live, or from the offline queue if nobody could
/// take it; a resend (same origin-id) not again; a refusal (queue full, no such
/// account) bounces.
pub async fn store_and_forward(ctx: &Context, from: &Jid, batch: Vec<Pending>) {
    if batch.is_empty() {
        return;
    }
    let at_micros = unix_micros();
    let sender = from.to_bare();
    let mut rows = Vec::with_capacity(batch.len() * 2);
    // Where each message's recipient row is in `rows`.
    let mut firsts = Vec::with_capacity(batch.len());
    let mut prepared = Vec::with_capacity(batch.len());
    for pending in batch {
        // RFC 6121 §8.5.3.2.1: a full JID that is not connected is treated like the bare JID.
        let online = (pending.to.is_full() && ctx.router.is_connected(&pending.to))
            || ctx.router.has_available(&pending.bare, 0);
        let origin = origin(from, &pending.stanza);
        let recipient_id = archive_id();
        let mut for_recipient = pending.stanza.clone();
        for_recipient.append_child(
            Element::new("stanza-id", ns::SID)
                .with_attr("by", pending.bare.to_string())
                .with_attr("id", recipient_id.clone()),
        );
        let row =
            |owner: &Jid, stanza_id: String, with: &Jid, stanza: &Element, offline| NewMessage {
                localpart: owner.local().unwrap_or_default().to_owned(),
                domain: owner.domain().to_owned(),
                stanza_id,
                with: with.to_string(),
                origin: origin.clone(),
                at_micros,
                stanza: String::from_utf8_lossy(&stanza.to_bytes(ns::CLIENT)).into_owned(),
                offline,
            };
        firsts.push(rows.len());
        rows.push(row(
            &pending.bare,
            recipient_id.clone(),
            &sender,
            &for_recipient,
            !online,
        ));
        if sender != pending.bare {
            rows.push(row(
                &sender,
                archive_id(),
                &pending.bare,
                &pending.stanza,
                false,
            ));
        }
        prepared.push(Prepared {
            pending,
            online,
            recipient_id,
            for_recipient,
        });
    }
    let stored = match ctx.archive.write(rows).await {
        Ok(stored) => stored,
        Err(e) => {
            tracing::error!("{from}: {} messages not stored: {e}", prepared.len());
            for p in &prepared {
                reply_error(
                    ctx,
                    from,
                    &p.pending.stanza,
                    StanzaError::InternalServerError,
                );
            }
            return;
        }
    };
    for (p, first) in prepared.into_iter().zip(firsts) {
        forward(ctx, from, p, stored.get(first)).await;
    }
}

/// Delivers one stored message as its write found it.
async fn forward(ctx: &Context, from: &Jid, p: Prepared, stored: Option<&Stored>) {
    let Pending { to, bare, stanza } = &p.pending;
    let delivered = match stored {
        Some(Stored::Archived) if p.online => {
            let delivered = deliver_live(ctx, to, bare, p.for_recipient);
            if delivered.is_empty() {
                // Gone offline since: it waits in the queue instead.
                offline::requeue(ctx, bare, vec![p.recipient_id]).await;
            }
            delivered
        }
        Some(Stored::Archived) => {
            // The account may have come online between the check and the commit,
            // and taken its queue before this row was in it.
            if ctx.router.has_available(bare, 0) {
                offline::flush_to_available(ctx, bare).await;
            }
            Vec::new()
        }
        // A resend of a message already handled: nothing again, copies neither.
        Some(Stored::Duplicate(_)) => return,
        // XEP-0160 §2: the recipient's queue is full. RFC 6121 §8.5.1: no such
        // account. Either way service-unavailable, which does not tell the two
        // apart (§8.5.1 privacy).
        _ => {
            reply_error(ctx, from, stanza, StanzaError::ServiceUnavailable);
            return;
        }
    };
    copy_carbons(ctx, from, bare, stanza, &delivered);
}

/// RFC 6121 §8.5.3.1 to the connected full JID, else §8.5.2.1.1 to every available
/// resource of non-negative priority.
fn deliver_live(ctx: &Context, to: &Jid, bare: &Jid, stanza: Element) -> Vec<String> {
    if to.is_full() && ctx.router.deliver_to_full(to, stanza.clone()) {
        return vec![to.resource().unwrap_or_default().to_owned()];
    }
    ctx.router.deliver_to_available(bare, &stanza, 0)
}

/// What identifies a resend of the same message (after a server restart, say,
/// when the client cannot resume its stream and sends again what was never
/// acknowledged): the sender's account with the XEP-0359 `<origin-id/>`, unique
/// by definition. The stanza `id` is not enough: clients reuse ids (a counter
/// restarted per connection, a fixed id for a self-test), and two messages must
/// never be merged. So a client that sends no origin-id may see a message it
/// resends after a crash stored twice; one that does never does.
fn origin(from: &Jid, stanza: &Element) -> Option<String> {
    let id = stanza
        .get_child("origin-id", ns::SID)
        .and_then(|o| o.attr("id"))?;
    Some(format!("{} {id}", from.to_bare()))
}

/// A new archive ID: 96 random bits, so IDs say nothing about how many messages
/// an archive holds or when one was stored.
fn archive_id() -> String {
    OsRandom.hex(12)
}

/// Now, as the archive counts time.
fn unix_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}
