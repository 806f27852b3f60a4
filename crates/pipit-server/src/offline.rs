//! The offline queue (XEP-0160): messages stored while their account had no
//! resource to take them, delivered when it next sends available presence.
//!
//! The queue is a flag on archive rows (`pipit_store::ArchiveStore`): taking a
//! message clears the flag in the same transaction that reads it, so two sessions
//! coming online at once never both get it. A message handed to a session whose
//! client then never confirmed it (`crate::session` ends it) goes back to the
//! queue by its archive ID.

use pipit_proto::datetime::format_micros;
use pipit_proto::jid::Jid;
use pipit_proto::xml::{Element, Limits, ns, parse_stored};
use pipit_store::ArchivedMessage;

use crate::server::Context;

/// Messages taken from the queue per transaction.
const TAKE: usize = 200;

/// Where queued messages go.
enum To<'a> {
    /// The resource whose available presence asked for them (XEP-0160 §2, step 5).
    Resource(&'a Jid),
    /// Every available resource of non-negative priority (RFC 6121 §8.5.2.1.1).
    Available(&'a Jid),
}

/// Delivers the account's queue to `full`, which has just sent available presence
/// with non-negative priority.
pub async fn flush(ctx: &Context, full: &Jid) {
    flush_to(ctx, &full.to_bare(), To::Resource(full)).await;
}

/// Delivers the account's queue to all its available resources: for a message
/// stored offline just as the account came online.
pub async fn flush_to_available(ctx: &Context, bare: &Jid) {
    flush_to(ctx, bare, To::Available(bare)).await;
}

async fn flush_to(ctx: &Context, bare: &Jid, to: To<'_>) {
    let (local, domain) = (bare.local().unwrap_or_default(), bare.domain());
    loop {
        let taken = match ctx.store.take_offline(local, domain, TAKE).await {
            Ok(taken) => taken,
            Err(e) => {
                tracing::error!("{bare}: reading the offline queue: {e}");
                return;
            }
        };
        let count = taken.len();
        let mut missed = Vec::new();
        for message in taken {
            let Some(stanza) = delayed(&message, domain) else {
                // Unreadable: it stays in the archive, out of the queue.
                tracing::error!("{bare}: stored message {} unreadable", message.stanza_id);
                continue;
            };
            let delivered = match to {
                To::Resource(full) => ctx.router.deliver_to_full(full, stanza),
                To::Available(bare) => {
                    !ctx.router.deliver_to_available(bare, &stanza, 0).is_empty()
                }
            };
            if !delivered {
                missed.push(message.stanza_id);
            }
        }
        if !missed.is_empty() {
            // The session went away meanwhile: the rest waits for the next one.
            requeue(ctx, bare, missed).await;
            return;
        }
        if count < TAKE {
            return;
        }
    }
}

/// A queued message as delivered: with the XEP-0203 delay its storing caused
/// (XEP-0160 §3), stamped by the server.
fn delayed(message: &ArchivedMessage, domain: &str) -> Option<Element> {
    let mut stanza = parse_stored(message.stanza.as_bytes(), stored_limits()).ok()?;
    stanza.append_child(
        Element::new("delay", ns::DELAY)
            .with_attr("from", domain)
            .with_attr("stamp", format_micros(message.at_micros)),
    );
    Some(stanza)
}

/// What stored stanzas are read with: a client's limits, but room for what the
/// server added to a stanza that was at the size limit when it came in.
pub fn stored_limits() -> Limits {
    let limits = Limits::default();
    Limits {
        max_element_bytes: limits.max_element_bytes.saturating_mul(2),
        ..limits
    }
}

/// Puts messages delivered to `bare`'s sessions but never confirmed back in its
/// queue. If that fails they stay in the archive, where the account's clients
/// find them (XEP-0313).
pub async fn requeue(ctx: &Context, bare: &Jid, stanza_ids: Vec<String>) {
    let (local, domain) = (bare.local().unwrap_or_default(), bare.domain());
    if let Err(e) = ctx.store.requeue_offline(local, domain, &stanza_ids).await {
        tracing::error!(
            "{bare}: {} messages back to the offline queue: {e}",
            stanza_ids.len()
        );
    }
}

/// The archive ID a message delivered to `bare` carries, if we archived it.
pub fn archive_id_for(stanza: &Element, bare: &Jid) -> Option<String> {
    let by = bare.to_string();
    stanza
        .children()
        .find(|c| c.is("stanza-id", ns::SID) && c.attr("by") == Some(by.as_str()))
        .and_then(|c| c.attr("id"))
        .map(str::to_owned)
}
