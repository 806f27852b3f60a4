//! What happens to a stanza from a bound session: the delivery rules of RFC 6121
//! §8.5, with Message Carbons (XEP-0280, rules in [`carbons`]) after delivery, and
//! the iq the server answers itself. Later features (roster, offline
//! storage, archive) slot in here as further handlers.

use pipit_proto::jid::Jid;
use pipit_proto::stanza::{StanzaError, error_reply, iq_result};
use pipit_proto::xml::{Element, ns};

use crate::carbons;
use crate::server::Context;

/// Features announced in the server's disco#info, each answered below.
const SERVER_FEATURES: &[&str] = &[ns::DISCO_INFO, DISCO_ITEMS, ns::PING, ns::CARBONS];
const DISCO_ITEMS: &str = "http://jabber.org/protocol/disco#items";

/// Handles one stanza whose `from` the core has stamped with `from`.
pub fn handle_stanza(ctx: &Context, from: &Jid, stanza: Element) {
    // The core has checked `to` parses (jid-malformed otherwise).
    let to = stanza.attr("to").and_then(|t| Jid::parse(t).ok());
    match stanza.name() {
        "message" => message(ctx, from, to, stanza),
        "presence" => presence(ctx, from, to, stanza),
        _ => iq(ctx, from, to, stanza),
    }
}

/// A stanza routed to a session that ended for good before its client confirmed
/// it: sent but never acknowledged (XEP-0198 §4), or never written at all. It is
/// handled as one sent to an unavailable resource (RFC 6121 §8.5.3.2), never lost
/// silently: with no offline storage yet, a message bounces to its sender with
/// `service-unavailable` (errors and headlines excepted, §8.5.2.2.1), an iq request
/// gets that error, presence and iq results are dropped. A carbon copy is dropped
/// too: its sender is the account itself, which has the original. Offline storage
/// slots in here: store the message instead of bouncing it.
pub fn undeliverable(ctx: &Context, stanza: Element) {
    let kind = stanza.attr("type");
    let bounce = match stanza.name() {
        "message" => !matches!(kind, Some("error" | "headline")) && !carbons::is_carbon(&stanza),
        "iq" => matches!(kind, Some("get" | "set")),
        _ => false,
    };
    // The core stamped `from` on everything a client sent.
    let sender = stanza.attr("from").and_then(|f| Jid::parse(f).ok());
    if let (true, Some(sender)) = (bounce, sender) {
        reply_error(ctx, &sender, &stanza, StanzaError::ServiceUnavailable);
    }
}

fn reply_error(ctx: &Context, from: &Jid, stanza: &Element, error: StanzaError) {
    if let Some(reply) = error_reply(stanza, error) {
        ctx.router.deliver_to_full(from, reply);
    }
}

/// Where a stanza is addressed, relative to this server.
enum Target {
    /// Another domain: no server-to-server yet.
    Remote,
    /// One of our domains itself.
    Server,
    /// An account here; the resource, if any, is `to.resource()`.
    Account(Jid),
}

fn target(ctx: &Context, to: &Jid) -> Target {
    if !ctx.proto.serves(to.domain()) {
        Target::Remote
    } else if to.local().is_none() {
        Target::Server
    } else {
        Target::Account(to.to_bare())
    }
}

/// RFC 6121 §8.5: messages, then their carbon copies (XEP-0280) to the resources
/// of sender and recipient that want them and did not get the original.
fn message(ctx: &Context, from: &Jid, to: Option<Jid>, stanza: Element) {
    // RFC 6120 §10.3.1: no `to` means the sender's own bare JID.
    let to = to.unwrap_or_else(|| from.to_bare());
    let stanza = carbons::strip_forged(stanza);
    let bare = match target(ctx, &to) {
        Target::Remote => {
            return reply_error(ctx, from, &stanza, StanzaError::RemoteServerNotFound);
        }
        Target::Server => return reply_error(ctx, from, &stanza, StanzaError::ServiceUnavailable),
        Target::Account(bare) => bare,
    };
    let delivered = deliver_message(ctx, from, &to, &bare, &stanza);
    let copies = carbons::copies(&stanza, from, &bare, &delivered, |account| {
        ctx.router.carbons_enabled(account)
    });
    for (resource, copy) in copies {
        ctx.router.deliver_to_full(&resource, copy);
    }
}

/// RFC 6121 §8.5 for a message to the account `bare`: returns the resources that
/// got it. No offline storage yet, so a message nobody can take is bounced with
/// `service-unavailable` rather than lost (§8.5.2.2.1).
fn deliver_message(
    ctx: &Context,
    from: &Jid,
    to: &Jid,
    bare: &Jid,
    stanza: &Element,
) -> Vec<String> {
    let kind = stanza.attr("type").unwrap_or("normal");
    if to.is_full() && ctx.router.deliver_to_full(to, stanza.clone()) {
        return vec![to.resource().unwrap_or_default().to_owned()];
    }
    // §8.5.3.2.1: a full JID that is not connected is treated like the bare JID,
    // except for groupchat; errors are never bounced.
    match kind {
        "error" => return Vec::new(),
        "groupchat" => {
            reply_error(ctx, from, stanza, StanzaError::ServiceUnavailable);
            return Vec::new();
        }
        _ => {}
    }
    // §8.5.2.1.1: to every available resource with non-negative priority.
    // Nobody to take it, or no such account: both bounce (§8.5.2.2.1, §8.5.1).
    let delivered = ctx.router.deliver_to_available(bare, stanza, 0);
    if delivered.is_empty() && kind != "headline" {
        reply_error(ctx, from, stanza, StanzaError::ServiceUnavailable);
    }
    delivered
}

/// RFC 6121 §4: presence. Broadcast (no `to`) goes to the user's own available
/// resources; subscriptions and roster broadcast come with the roster.
fn presence(ctx: &Context, from: &Jid, to: Option<Jid>, stanza: Element) {
    let kind = stanza.attr("type");
    let Some(to) = to else {
        match kind {
            None => broadcast_available(ctx, from, stanza),
            Some("unavailable") => {
                ctx.router.set_presence(from, None, 0);
                ctx.router
                    .deliver_to_available(&from.to_bare(), &stanza, i8::MIN);
                ctx.router.deliver_to_full(from, stanza);
            }
            // Subscription states and probes need a `to` (RFC 6121 §3); errors die here.
            Some("error") => {}
            Some(_) => reply_error(ctx, from, &stanza, StanzaError::BadRequest),
        }
        return;
    };
    // Directed presence (RFC 6121 §4.6).
    match target(ctx, &to) {
        Target::Remote => reply_error(ctx, from, &stanza, StanzaError::RemoteServerNotFound),
        Target::Server => {}
        Target::Account(bare) => {
            if to.is_full() {
                ctx.router.deliver_to_full(&to, stanza);
            } else {
                ctx.router.deliver_to_available(&bare, &stanza, i8::MIN);
            }
        }
    }
}

/// RFC 6121 §4.2.2: initial (or updated) available presence goes to all of the
/// user's available resources, the sender included, and the sender learns the
/// presence of its other resources.
fn broadcast_available(ctx: &Context, from: &Jid, stanza: Element) {
    let priority = stanza
        .get_child("priority", ns::CLIENT)
        .and_then(|p| p.text().trim().parse::<i8>().ok())
        .unwrap_or(0);
    let bare = from.to_bare();
    let first = !ctx.router.is_available(from);
    ctx.router
        .set_presence(from, Some(stanza.clone()), priority);
    ctx.router.deliver_to_available(&bare, &stanza, i8::MIN);
    if first {
        for other in ctx
            .router
            .presences_of_others(&bare, from.resource().unwrap_or_default())
        {
            let mut other = other;
            other.set_attr("to", from.to_string());
            ctx.router.deliver_to_full(from, other);
        }
    }
}

/// RFC 6120 §8.2.3 and RFC 6121 §8.5: iq. The server answers for itself and for
/// the bare JIDs of its accounts; full JIDs are routed.
fn iq(ctx: &Context, from: &Jid, to: Option<Jid>, stanza: Element) {
    let kind = stanza.attr("type").unwrap_or_default();
    let request = matches!(kind, "get" | "set");
    if stanza.attr("id").is_none()
        || !matches!(kind, "get" | "set" | "result" | "error")
        || (request && stanza.children().count() != 1)
    {
        return reply_error(ctx, from, &stanza, StanzaError::BadRequest);
    }
    let to = to.unwrap_or_else(|| from.to_bare());
    match target(ctx, &to) {
        Target::Remote => reply_error(ctx, from, &stanza, StanzaError::RemoteServerNotFound),
        Target::Server if request => server_iq(ctx, from, &stanza),
        Target::Account(_) if to.is_full() => {
            let delivered = ctx.router.deliver_to_full(&to, stanza.clone());
            if !delivered && request {
                reply_error(ctx, from, &stanza, StanzaError::ServiceUnavailable);
            }
        }
        Target::Account(bare) if request => account_iq(ctx, from, &bare, &stanza),
        // Results and errors addressed to us or to a bare JID end here.
        _ => {}
    }
}

/// The iq the server itself answers: ping (XEP-0199), disco (XEP-0030) and the
/// legacy session request (RFC 3921 §3, kept for old clients).
fn server_iq(ctx: &Context, from: &Jid, iq: &Element) {
    let Some(payload) = iq.children().next() else {
        return;
    };
    let get = iq.attr("type") == Some("get");
    let reply = match (payload.ns(), payload.name(), get) {
        (ns::PING, "ping", true) | (ns::SESSION, "session", false) => iq_result(iq),
        (ns::DISCO_INFO, "query", true) if payload.attr("node").is_none() => {
            let mut query = Element::new("query", ns::DISCO_INFO).with_child(
                Element::new("identity", ns::DISCO_INFO)
                    .with_attr("category", "server")
                    .with_attr("type", "im")
                    .with_attr("name", "Pipit"),
            );
            for feature in SERVER_FEATURES {
                query.append_child(
                    Element::new("feature", ns::DISCO_INFO).with_attr("var", *feature),
                );
            }
            iq_result(iq).with_child(query)
        }
        (DISCO_ITEMS, "query", true) if payload.attr("node").is_none() => {
            iq_result(iq).with_child(Element::new("query", DISCO_ITEMS))
        }
        _ => return reply_error(ctx, from, iq, StanzaError::ServiceUnavailable),
    };
    ctx.router.deliver_to_full(from, reply);
}

/// iq to an account's bare JID (or without `to`), answered by the server on its
/// behalf (RFC 6121 §8.5.2.1.3): the owner's ping, legacy session request and
/// Message Carbons switch (XEP-0280); the roster comes later.
fn account_iq(ctx: &Context, from: &Jid, bare: &Jid, iq: &Element) {
    let Some(payload) = iq.children().next() else {
        return;
    };
    let get = iq.attr("type") == Some("get");
    let owner = from.to_bare() == *bare;
    let reply = match (payload.ns(), payload.name(), get) {
        (ns::PING, "ping", true) | (ns::SESSION, "session", false) if owner => iq_result(iq),
        // XEP-0280 "Enabling Carbons", "Disabling Carbons": for the requesting
        // resource only; repeating either is no error ("Business Rules").
        (ns::CARBONS, switch @ ("enable" | "disable"), false) if owner => {
            ctx.router.set_carbons(from, switch == "enable");
            iq_result(iq)
        }
        // "Disabling Carbons": not-allowed for another account's resources.
        (ns::CARBONS, "enable" | "disable", false) => {
            return reply_error(ctx, from, iq, StanzaError::NotAllowed);
        }
        // The switch is a set; a get asks nothing the protocol defines.
        (ns::CARBONS, "enable" | "disable", true) => {
            return reply_error(ctx, from, iq, StanzaError::BadRequest);
        }
        _ => return reply_error(ctx, from, iq, StanzaError::ServiceUnavailable),
    };
    ctx.router.deliver_to_full(from, reply);
}
