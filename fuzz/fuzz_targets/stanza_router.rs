//! The pure parts of stanza routing in pipit-server, and the stanza helpers they use.
//!
//! Input: `router-ops 0xFF stanzas`. The stanzas (XML, parsed inside a
//! `jabber:client` stream) each go through:
//! - `Jid::parse` of `to` and `from`: a parsed JID prints as a string that parses
//!   back to the same JID, and its bare form is not full;
//! - `stanza::error_reply` for every condition: none for an error, else an error of
//!   the same kind with `to`/`from` swapped, which is never answered itself;
//! - carbons (XEP-0280, `carbons.rs`, included by path since the module is private):
//!   `strip_forged` leaves no `<sent/>`/`<received/>` and changes nothing else;
//!   `copies` sends only wrapped copies from the account's bare JID, never to the
//!   sending resource or to a resource that got the original, at most one per
//!   resource, none for a message nothing got or that is not eligible.
//!
//! The router ops drive [`Router`] (bind under each conflict policy, unbind,
//! presence, carbons, delivery) against a model of who is bound, available and has
//! carbons on, checking every answer and what each session's queue receives.
//!
//! Not covered: `im.rs` itself (delivery rules, bounces, server iq), which needs the
//! async server `Context` with a store; the loopback tests cover it.
#![no_main]

#[allow(dead_code, rustdoc::broken_intra_doc_links)]
#[path = "../../crates/pipit-server/src/carbons.rs"]
mod carbons;

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use pipit_proto::jid::Jid;
use pipit_proto::server::ConflictPolicy;
use pipit_proto::stanza::{StanzaError, error_reply};
use pipit_proto::xml::{Element, Limits, StreamEvent, StreamParser, ns};
use pipit_server::router::{Delivery, Router};
use tokio::sync::mpsc;

const ACCOUNTS: [&str; 2] = ["alice@localhost", "bob@localhost"];
const RESOURCES: [&str; 4] = ["desk", "phone", "laptop", "desk.1"];
const CONDITIONS: [StanzaError; 4] = [
    StanzaError::ServiceUnavailable,
    StanzaError::RemoteServerNotFound,
    StanzaError::NotAuthorized,
    StanzaError::BadRequest,
];

fn jid(s: &str) -> Jid {
    Jid::parse(s).unwrap()
}

/// Alice's desk and phone, and bob's home, have carbons on.
fn enabled(bare: &Jid) -> Vec<Jid> {
    let resources: &[&str] = match bare.to_string().as_str() {
        "alice@localhost" => &["desk", "phone"],
        "bob@localhost" => &["home"],
        _ => &[],
    };
    resources
        .iter()
        .map(|r| bare.with_resource(r).unwrap())
        .collect()
}

fn check_jid(s: &str) {
    if let Ok(j) = Jid::parse(s) {
        let printed = j.to_string();
        assert_eq!(
            Jid::parse(&printed).as_ref(),
            Ok(&j),
            "{s:?} printed as {printed:?}"
        );
        assert!(!j.to_bare().is_full());
        assert_eq!(j.to_bare().domain(), j.domain());
    }
}

fn check_stanza(stanza: &Element, selector: u8) {
    for attr in ["to", "from"] {
        if let Some(value) = stanza.attr(attr) {
            check_jid(value);
        }
    }
    for condition in CONDITIONS {
        match error_reply(stanza, condition) {
            None => assert_eq!(stanza.attr("type"), Some("error")),
            Some(reply) => {
                assert_ne!(stanza.attr("type"), Some("error"));
                assert_eq!(reply.attr("type"), Some("error"));
                assert_eq!(reply.name(), stanza.name());
                assert_eq!(reply.attr("to"), stanza.attr("from"));
                assert_eq!(reply.attr("from"), stanza.attr("to"));
                assert!(error_reply(&reply, condition).is_none());
            }
        }
    }
    if stanza.name() != "message" {
        return;
    }
    let clean = carbons::strip_forged(stanza.clone());
    assert!(!carbons::is_carbon(&clean));
    if !carbons::is_carbon(stanza) {
        assert_eq!(&clean, stanza);
    }
    assert_eq!(
        clean.attrs().collect::<Vec<_>>(),
        stanza.attrs().collect::<Vec<_>>()
    );
    let from = stanza
        .attr("from")
        .and_then(|f| Jid::parse(f).ok())
        .filter(Jid::is_full)
        .unwrap_or_else(|| jid("alice@localhost/desk"));
    let to = stanza
        .attr("to")
        .and_then(|t| Jid::parse(t).ok())
        .unwrap_or_else(|| jid(ACCOUNTS[usize::from(selector & 1)]))
        .to_bare();
    let delivered: Vec<String> = ["desk", "phone", "home", "laptop"]
        .iter()
        .enumerate()
        .filter(|(i, _)| selector >> (i + 1) & 1 != 0)
        .map(|(_, r)| r.to_string())
        .collect();
    let copies = carbons::copies(&clean, &from, &to, &delivered, enabled);
    if delivered.is_empty() || !carbons::eligible(&clean) {
        assert!(copies.is_empty());
    }
    let mut seen = Vec::new();
    for (target, copy) in &copies {
        assert!(carbons::is_carbon(copy));
        assert_ne!(target, &from, "a copy to the sending resource");
        assert!(!seen.contains(target), "two copies to {target}");
        seen.push(target.clone());
        assert_eq!(copy.attr("to"), Some(target.to_string().as_str()));
        let account = target.to_bare();
        assert_eq!(copy.attr("from"), Some(account.to_string().as_str()));
        if account == to {
            assert!(
                !delivered
                    .iter()
                    .any(|r| Some(r.as_str()) == target.resource())
            );
        }
    }
}

/// One bound session in the model.
struct Session {
    id: u64,
    available: bool,
    priority: i8,
    carbons: bool,
    queue: mpsc::UnboundedReceiver<Delivery>,
}

fn router_ops(ops: &[u8]) {
    let router = Router::default();
    let mut model: BTreeMap<(usize, String), Session> = BTreeMap::new();
    let mut replaced: Vec<mpsc::UnboundedReceiver<Delivery>> = Vec::new();
    let mut next_id = 0u64;
    let mut fresh = 0u32;
    for &op in ops.iter().take(64) {
        let account = usize::from(op >> 7);
        let bare = jid(ACCOUNTS[account]);
        let resource = RESOURCES[usize::from(op >> 3 & 3)].to_owned();
        let full = bare.with_resource(&resource).unwrap();
        let key = (account, resource.clone());
        match op & 7 {
            0..=2 => {
                let policy = [
                    ConflictPolicy::Replace,
                    ConflictPolicy::Refuse,
                    ConflictPolicy::Rename,
                ][usize::from(op & 7)];
                let (tx, rx) = mpsc::unbounded_channel();
                next_id += 1;
                let taken = model.contains_key(&key);
                let result =
                    router.bind(&bare, Some(resource.clone()), policy, next_id, tx, || {
                        fresh += 1;
                        fresh.to_string()
                    });
                let bound = match (policy, taken) {
                    (ConflictPolicy::Refuse, true) => {
                        assert_eq!(result, Err(StanzaError::Conflict));
                        continue;
                    }
                    (ConflictPolicy::Replace, true) => {
                        let mut old = model.remove(&key).unwrap();
                        assert!(matches!(old.queue.try_recv(), Ok(Delivery::Close(_))));
                        replaced.push(old.queue);
                        result.expect("replace binds")
                    }
                    (ConflictPolicy::Rename, true) => {
                        let full = result.expect("rename binds");
                        let name = full.resource().unwrap().to_owned();
                        assert!(
                            !model.contains_key(&(account, name)),
                            "renamed onto a bound resource"
                        );
                        full
                    }
                    (_, false) => result.expect("a free resource binds"),
                };
                assert_eq!(bound.to_bare(), bare);
                let name = bound.resource().unwrap().to_owned();
                model.insert(
                    (account, name),
                    Session {
                        id: next_id,
                        available: false,
                        priority: 0,
                        carbons: false,
                        queue: rx,
                    },
                );
            }
            3 => {
                // Unbind with the current session id (or a stale one when bit 2 of the
                // resource index says so).
                let id = model.get(&key).map_or(0, |s| s.id);
                let stale = op & 0x40 != 0;
                let was = router
                    .unbind(&full, if stale { id + 1000 } else { id })
                    .is_some();
                let expected = !stale && model.get(&key).is_some_and(|s| s.available);
                assert_eq!(was, expected);
                if !stale {
                    model.remove(&key);
                }
            }
            4 => {
                let available = op & 0x40 == 0;
                let priority = if op & 0x20 != 0 { -1 } else { 1 };
                let presence = available.then(|| Element::new("presence", ns::CLIENT));
                router.set_presence(&full, presence, priority);
                if let Some(s) = model.get_mut(&key) {
                    s.available = available;
                    s.priority = priority;
                }
                assert_eq!(
                    router.available_priority(&full).is_some(),
                    model.get(&key).is_some_and(|s| s.available)
                );
            }
            5 => {
                let on = op & 0x40 == 0;
                router.set_carbons(&full, on);
                if let Some(s) = model.get_mut(&key) {
                    s.carbons = on;
                }
                let mut got: Vec<String> = router
                    .carbons_enabled(&bare)
                    .iter()
                    .map(|j| j.resource().unwrap().to_owned())
                    .collect();
                got.sort();
                let want: Vec<String> = model
                    .iter()
                    .filter(|((a, _), s)| *a == account && s.carbons && s.available)
                    .map(|((_, r), _)| r.clone())
                    .collect();
                assert_eq!(got, want);
            }
            6 => {
                let message = Element::new("message", ns::CLIENT).with_attr("id", op.to_string());
                let delivered = router.deliver_to_full(&full, message.clone());
                assert_eq!(delivered, model.contains_key(&key));
                if let Some(s) = model.get_mut(&key) {
                    assert!(matches!(s.queue.try_recv(), Ok(Delivery::Stanza(m)) if m == message));
                }
            }
            _ => {
                let min = if op & 0x40 != 0 { 0 } else { -1 };
                let message = Element::new("message", ns::CLIENT).with_attr("id", op.to_string());
                let mut got = router.deliver_to_available(&bare, &message, min);
                got.sort();
                let want: Vec<String> = model
                    .iter()
                    .filter(|((a, _), s)| *a == account && s.available && s.priority >= min)
                    .map(|((_, r), _)| r.clone())
                    .collect();
                assert_eq!(got, want);
                for ((a, r), s) in model.iter_mut() {
                    if *a == account && want.contains(r) {
                        assert!(
                            matches!(s.queue.try_recv(), Ok(Delivery::Stanza(m)) if m == message)
                        );
                    }
                }
            }
        }
        // No session ever holds an unexpected delivery.
        for s in model.values_mut() {
            assert!(s.queue.try_recv().is_err(), "an unexpected delivery");
        }
    }
}

fuzz_target!(|input: &[u8]| {
    let (ops, xml) = match input.iter().position(|&b| b == 0xFF) {
        Some(at) => (&input[..at], &input[at + 1..]),
        None => (&[][..], input),
    };
    router_ops(ops);
    let selector = ops.first().copied().unwrap_or(0);
    let mut parser = StreamParser::new(Limits::default());
    parser.feed(
        b"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>",
    );
    parser.feed(xml);
    while let Ok(Some(event)) = parser.next_event() {
        if let StreamEvent::Element(stanza) = event {
            check_stanza(&stanza, selector);
        }
    }
});
