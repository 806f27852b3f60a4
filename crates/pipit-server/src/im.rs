//! What happens to a stanza from a bound session: the delivery rules of RFC 6121
//! §8.5 (messages worth keeping are stored first: [`messages`]), with Message
//! Carbons (XEP-0280, rules in [`carbons`]) after delivery, and the iq the server
//! answers itself, the archive (XEP-0313, [`mam`]) among them. Presence goes to
//! [`presence`], the roster iq to [`roster`].

use pipit_proto::jid::Jid;
use pipit_proto::stanza::{StanzaError, error_reply, iq_result};
use pipit_proto::xml::{Element, ns};

use crate::messages::{self, Pending};
use crate::server::Context;
use crate::{carbons, mam, offline, presence, roster};

/// Features announced in the server's disco#info, each answered below.
const SERVER_FEATURES: &[&str] = &[ns::DISCO_INFO, DISCO_ITEMS, ns::PING, ns::CARBONS];
/// Features announced on an account's bare JID, to its owner (XEP-0313 §7: the
/// archive is discovered there; XEP-0359 §3: so are stanza IDs).
const ACCOUNT_FEATURES: &[&str] = &[ns::DISCO_INFO, ns::MAM, ns::SID];
const DISCO_ITEMS: &str = "http://jabber.org/protocol/disco#items";

/// Handles, in order, stanzas whose `from` the core has stamped with `from`.
/// Consecutive messages to be stored ([`messages::worth_keeping`]) are stored in
/// one write, so a client's burst costs one commit rather than one each; anything
/// else waits until they are stored and delivered, so nothing overtakes them
/// (RFC 6120 §10.1).
pub async fn handle_stanzas(ctx: &Context, from: &Jid, stanzas: Vec<Element>) {
    let mut batch = Vec::new();
    for stanza in stanzas {
        match to_store(ctx, from, stanza) {
            Ok(pending) => batch.push(pending),
            Err(stanza) => {
                messages::store_and_forward(ctx, from, std::mem::take(&mut batch)).await;
                handle_stanza(ctx, from, stanza).await;
            }
        }
    }
    messages::store_and_forward(ctx, from, batch).await;
}

/// A message to an account here that is to be stored, ready for
/// [`messages::store_and_forward`]; any other stanza comes back as it was.
fn to_store(ctx: &Context, from: &Jid, stanza: Element) -> Result<Pending, Element> {
    // What is to be stored does not depend on the wrappers stripped below, so
    // anything else leaves at once, untouched, for `handle_stanza`.
    if stanza.name() != "message" || !messages::worth_keeping(&stanza) {
        return Err(stanza);
    }
    // RFC 6120 §10.3.1: no `to` means the sender's own bare JID.
    let to = match stanza.attr("to").map(Jid::parse) {
        None => from.to_bare(),
        Some(Ok(to)) => to,
        Some(Err(_)) => return Err(stanza),
    };
    let Target::Account(bare) = target(ctx, &to) else {
        return Err(stanza);
    };
    let clean = messages::strip_forged_ids(
        carbons::strip_forged(stanza),
        &[bare.clone(), from.to_bare()],
    );
    Ok(Pending {
        to,
        bare,
        stanza: clean,
    })
}

/// Handles one stanza whose `from` the core has stamped with `from`.
async fn handle_stanza(ctx: &Context, from: &Jid, stanza: Element) {
    // The core has checked `to` parses (jid-malformed otherwise).
    let to = stanza.attr("to").and_then(|t| Jid::parse(t).ok());
    match stanza.name() {
        "message" => message(ctx, from, to, stanza).await,
        "presence" => presence::handle(ctx, from, to, stanza).await,
        _ => iq(ctx, from, to, stanza).await,
    }
}

/// Stanzas routed to `owner`'s session that ended for good before its client
/// confirmed them: sent but never acknowledged (XEP-0198 §4), or never written at
/// all. Each is handled as one sent to an unavailable resource (RFC 6121 §8.5.3.2),
/// never lost silently. A message from the archive addressed to this resource goes
/// to the account's other resources that take messages (§8.5.3.2.1: as if sent to
/// the bare JID); one to the bare JID reached those already. With no such
/// resource it goes back to the offline queue (XEP-0160). Anything else goes to
/// [`bounce`].
pub async fn undeliverable(ctx: &Context, owner: &Jid, stanzas: Vec<Element>) {
    let bare = owner.to_bare();
    let elsewhere = ctx.router.has_available_besides(owner, 0);
    let mut requeue = Vec::new();
    for stanza in stanzas {
        match offline::archive_id_for(&stanza, &bare) {
            Some(id) if stanza.name() == "message" => {
                let to_resource = stanza
                    .attr("to")
                    .and_then(|to| Jid::parse(to).ok())
                    .is_some_and(|to| to.is_full());
                let handed_on = elsewhere
                    && (!to_resource
                        || !ctx
                            .router
                            .deliver_to_available(&bare, &stanza, 0)
                            .is_empty());
                if !handed_on {
                    requeue.push(id);
                }
            }
            _ => bounce(ctx, stanza),
        }
    }
    if !requeue.is_empty() {
        offline::requeue(ctx, &bare, requeue).await;
    }
}

/// An undeliverable stanza that was not stored: a message bounces to its sender
/// with `service-unavailable` (errors and headlines excepted, §8.5.2.2.1), an iq
/// request gets that error, presence and iq results are dropped. A carbon copy is
/// dropped too: its sender is the account itself, which has the original.
pub fn bounce(ctx: &Context, stanza: Element) {
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

/// Answers `stanza` from `from` with an error, if it is not an error itself.
pub fn reply_error(ctx: &Context, from: &Jid, stanza: &Element, error: StanzaError) {
    if let Some(reply) = error_reply(stanza, error) {
        ctx.router.deliver_to_full(from, reply);
    }
}

/// Where a stanza is addressed, relative to this server.
pub(crate) enum Target {
    /// Another domain: no server-to-server yet.
    Remote,
    /// One of our domains itself.
    Server,
    /// An account here; the resource, if any, is `to.resource()`.
    Account(Jid),
}

/// Where `to` is, relative to this server.
pub(crate) fn target(ctx: &Context, to: &Jid) -> Target {
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
async fn message(ctx: &Context, from: &Jid, to: Option<Jid>, stanza: Element) {
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
    let stanza = messages::strip_forged_ids(stanza, &[bare.clone(), from.to_bare()]);
    let delivered = deliver_message(ctx, from, &to, &bare, &stanza);
    copy_carbons(ctx, from, &bare, &stanza, &delivered);
}

/// XEP-0280: the copies of a message `from` sent to the account `bare`, whose
/// resources `delivered` got it.
pub fn copy_carbons(ctx: &Context, from: &Jid, bare: &Jid, stanza: &Element, delivered: &[String]) {
    let copies = carbons::copies(stanza, from, bare, delivered, |account| {
        ctx.router.carbons_enabled(account)
    });
    for (resource, copy) in copies {
        ctx.router.deliver_to_full(&resource, copy);
    }
}

/// RFC 6121 §8.5 for a message to the account `bare` that is not stored
/// ([`messages::worth_keeping`]): returns the resources that got it. One nobody
/// can take is bounced with `service-unavailable` (§8.5.2.2.1).
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

/// RFC 6120 §8.2.3 and RFC 6121 §8.5: iq. The server answers for itself and for
/// the bare JIDs of its accounts; full JIDs are routed.
async fn iq(ctx: &Context, from: &Jid, to: Option<Jid>, stanza: Element) {
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
        Target::Account(bare) if request && roster::is_roster_request(&stanza) => {
            roster::handle(ctx, from, &bare, &stanza).await;
        }
        Target::Account(bare) if request => account_iq(ctx, from, &bare, &stanza).await,
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
            disco_info(iq, "server", "im", SERVER_FEATURES)
        }
        (DISCO_ITEMS, "query", true) if payload.attr("node").is_none() => {
            iq_result(iq).with_child(Element::new("query", DISCO_ITEMS))
        }
        _ => return reply_error(ctx, from, iq, StanzaError::ServiceUnavailable),
    };
    ctx.router.deliver_to_full(from, reply);
}

/// iq to an account's bare JID (or without `to`), answered by the server on its
/// behalf (RFC 6121 §8.5.2.1.3): the owner's ping, legacy session request, disco,
/// Message Carbons switch (XEP-0280) and archive (XEP-0313); the roster is
/// [`roster`]'s.
async fn account_iq(ctx: &Context, from: &Jid, bare: &Jid, iq: &Element) {
    let Some(payload) = iq.children().next() else {
        return;
    };
    let get = iq.attr("type") == Some("get");
    let owner = from.to_bare() == *bare;
    let reply = match (payload.ns(), payload.name(), get) {
        (ns::PING, "ping", true) | (ns::SESSION, "session", false) if owner => iq_result(iq),
        (ns::DISCO_INFO, "query", true) if owner && payload.attr("node").is_none() => {
            disco_info(iq, "account", "registered", ACCOUNT_FEATURES)
        }
        // XEP-0313 §4: a user queries its own archive; §4.1.5: the form.
        (ns::MAM, "query", false) if owner => return mam::query(ctx, from, iq, payload).await,
        (ns::MAM, "query", true) if owner => mam::form(iq),
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

/// A disco#info result (XEP-0030 §3.1) with one identity and `features`.
fn disco_info(iq: &Element, category: &str, kind: &str, features: &[&str]) -> Element {
    let mut identity = Element::new("identity", ns::DISCO_INFO)
        .with_attr("category", category)
        .with_attr("type", kind);
    if category == "server" {
        identity.set_attr("name", "Pipit");
    }
    let mut query = Element::new("query", ns::DISCO_INFO).with_child(identity);
    for feature in features {
        query.append_child(Element::new("feature", ns::DISCO_INFO).with_attr("var", *feature));
    }
    iq_result(iq).with_child(query)
}
