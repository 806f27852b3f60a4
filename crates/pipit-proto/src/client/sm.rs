//! XEP-0198 stream management on the client: enabled inline with Bind2 (XEP-0386
//! §4) or resumed inline with SASL2, never with a round trip of its own.
//!
//! The client counts the stanzas it handles from the server (`h`, §4), answers
//! `<r/>` with `<a/>`, and keeps the stanzas it sent until the server's `h` covers
//! them. What a later connection needs to resume, the SM-ID and `h`, is
//! [`SmSession`], which the driver may keep between runs.

use std::collections::VecDeque;

use crate::stanza::is_stanza;
use crate::xml::{Element, ns};

/// A resumable session as the client left it: enough to ask for it back (§5).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SmSession {
    /// The SM-ID the server gave in `<enabled/>`.
    pub id: String,
    /// Stanzas handled from the server when the client left.
    pub h: u32,
}

/// What the client asked for in its `<authenticate/>`, until `<success/>` says
/// what it got: stanzas sent in the meantime count once SM turns out to be on.
#[derive(Debug, Default)]
pub(crate) struct Pending {
    /// Resumption was asked for from this session.
    resume: Option<SmSession>,
    /// Stanzas written after the request, oldest first.
    sent: VecDeque<Element>,
}

/// The stream management side of one client connection.
#[derive(Debug, Default)]
pub(crate) struct ClientSm {
    /// Asked for, not yet answered.
    pending: Option<Pending>,
    /// On: the SM-ID if resumable, the counters and the unacknowledged stanzas.
    on: Option<On>,
    /// The session was resumed rather than bound anew.
    resumed: bool,
}

#[derive(Debug)]
struct On {
    id: Option<String>,
    /// Stanzas handled from the server.
    inbound: u32,
    /// The server's `h` last seen: how many of ours it has handled.
    acked: u32,
    /// Ours it has not yet acknowledged, oldest first.
    unacked: VecDeque<Element>,
}

impl ClientSm {
    /// The `<authenticate/>` asks for SM (an inline enable, a resumption, or
    /// both): from now on sent stanzas are kept.
    pub fn requested(&mut self, resume: Option<SmSession>) {
        self.pending = Some(Pending {
            resume,
            sent: VecDeque::new(),
        });
    }

    /// The stanzas sent since the request were refused (an XEP-0480 task came
    /// before `<success/>`): they go again, and are counted, after it.
    pub fn refused(&mut self) {
        if let Some(pending) = &mut self.pending {
            pending.sent.clear();
        }
    }

    /// A stanza went out.
    pub fn sent(&mut self, el: &Element) {
        if !is_stanza(el) {
            return;
        }
        if let Some(on) = &mut self.on {
            on.unacked.push_back(el.clone());
        } else if let Some(pending) = &mut self.pending {
            pending.sent.push_back(el.clone());
        }
    }

    /// Reads SASL2 `<success/>`: `<resumed/>` in it, or `<enabled/>` inside its
    /// `<bound/>`, turns SM on; anything else leaves it off.
    pub fn success(&mut self, success: &Element) {
        let Some(pending) = self.pending.take() else {
            return;
        };
        let resumed = success.get_child("resumed", ns::SM);
        let enabled = success
            .get_child("bound", ns::BIND2)
            .and_then(|b| b.get_child("enabled", ns::SM));
        self.on = match (resumed, pending.resume, enabled) {
            // §5: the server's `h` says how many of the old stream's stanzas it
            // handled; ours count on from there, and the server's from ours.
            (Some(resumed), Some(old), _) => {
                self.resumed = true;
                Some(On {
                    id: resumed.attr("previd").map(str::to_owned).or(Some(old.id)),
                    inbound: old.h,
                    acked: parse_h(resumed).unwrap_or(0),
                    unacked: pending.sent,
                })
            }
            (_, _, Some(enabled)) => Some(On {
                id: enabled
                    .attr("resume")
                    .is_some_and(|r| r == "true" || r == "1")
                    .then(|| enabled.attr("id").map(str::to_owned))
                    .flatten(),
                inbound: 0,
                acked: 0,
                unacked: pending.sent,
            }),
            _ => None,
        };
    }

    /// A stanza arrived from the server (§4: counted once SM is on).
    pub fn received(&mut self) {
        if let Some(on) = &mut self.on {
            on.inbound = on.inbound.wrapping_add(1);
        }
    }

    /// A top-level `urn:xmpp:sm:3` element from the server; returns the answer to
    /// write, if any.
    pub fn handle(&mut self, el: &Element) -> Option<Element> {
        let on = self.on.as_mut()?;
        match el.name() {
            "r" => Some(Element::new("a", ns::SM).with_attr("h", on.inbound.to_string())),
            "a" => {
                if let Some(h) = parse_h(el) {
                    // §4: h counts modulo 2^32; what it covers beyond the last is
                    // handled. A server that acknowledges more than was sent is
                    // believed no further than the queue goes.
                    let newly = h.wrapping_sub(on.acked) as usize;
                    let dropped = newly.min(on.unacked.len());
                    on.unacked.drain(..dropped);
                    on.acked = h;
                }
                None
            }
            _ => None,
        }
    }

    /// `<r/>`, when SM is on: the driver asks before it leaves a session to resume.
    pub fn request(&self) -> Option<Element> {
        self.on.as_ref().map(|_| Element::new("r", ns::SM))
    }

    /// Stanzas sent that the server has not acknowledged.
    pub fn unacked(&self) -> usize {
        self.on.as_ref().map_or(0, |on| on.unacked.len())
    }

    /// The session to resume later, when the server granted resumption.
    pub fn session(&self) -> Option<SmSession> {
        let on = self.on.as_ref()?;
        Some(SmSession {
            id: on.id.clone()?,
            h: on.inbound,
        })
    }

    /// Whether this login resumed an earlier session.
    pub fn resumed(&self) -> bool {
        self.resumed
    }
}

fn parse_h(el: &Element) -> Option<u32> {
    el.attr("h")?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(n: u32) -> Element {
        Element::new("message", ns::CLIENT).with_attr("id", n.to_string())
    }

    fn success_with(child: Element) -> Element {
        Element::new("success", ns::SASL2).with_child(child)
    }

    fn enabled(resume: bool) -> Element {
        let mut enabled = Element::new("enabled", ns::SM).with_attr("id", "sm-1");
        if resume {
            enabled.set_attr("resume", "true");
        }
        success_with(Element::new("bound", ns::BIND2).with_child(enabled))
    }

    #[test]
    fn inline_enable_counts_both_ways() {
        let mut sm = ClientSm::default();
        sm.sent(&msg(0));
        sm.requested(None);
        sm.sent(&msg(1));
        sm.sent(&Element::new("r", ns::SM));
        sm.success(&enabled(true));
        sm.sent(&msg(2));
        assert_eq!(sm.unacked(), 2, "sent since the request, stanzas only");
        sm.received();
        sm.received();
        let answer = sm.handle(&Element::new("r", ns::SM)).unwrap();
        assert_eq!(answer.attr("h"), Some("2"));
        sm.handle(&Element::new("a", ns::SM).with_attr("h", "1"));
        assert_eq!(sm.unacked(), 1);
        sm.handle(&Element::new("a", ns::SM).with_attr("h", "9"));
        assert_eq!(sm.unacked(), 0, "no further than the queue");
        assert_eq!(
            sm.session(),
            Some(SmSession {
                id: "sm-1".into(),
                h: 2
            })
        );
        assert!(!sm.resumed());
    }

    #[test]
    fn without_resume_granted_there_is_nothing_to_keep() {
        let mut sm = ClientSm::default();
        sm.requested(None);
        sm.success(&enabled(false));
        assert_eq!(sm.session(), None);
        assert!(sm.request().is_some(), "acks still work");
        let mut off = ClientSm::default();
        off.requested(None);
        off.success(&Element::new("success", ns::SASL2));
        assert_eq!(off.request(), None);
        assert_eq!(off.handle(&Element::new("r", ns::SM)), None);
    }

    #[test]
    fn resumption_carries_the_counters_on() {
        let mut sm = ClientSm::default();
        sm.requested(Some(SmSession {
            id: "old".into(),
            h: 7,
        }));
        sm.sent(&msg(1));
        sm.success(&success_with(
            Element::new("resumed", ns::SM)
                .with_attr("previd", "old")
                .with_attr("h", "4"),
        ));
        assert!(sm.resumed());
        sm.received();
        assert_eq!(
            sm.session(),
            Some(SmSession {
                id: "old".into(),
                h: 8
            })
        );
        // The server's count goes on from 4: h=5 covers the one sent since.
        sm.handle(&Element::new("a", ns::SM).with_attr("h", "5"));
        assert_eq!(sm.unacked(), 0);
    }

    #[test]
    fn a_failed_resumption_with_a_fresh_bind_starts_over() {
        let mut sm = ClientSm::default();
        sm.requested(Some(SmSession {
            id: "old".into(),
            h: 7,
        }));
        let mut success = enabled(true);
        success.append_child(Element::new("failed", ns::SM));
        sm.success(&success);
        assert!(!sm.resumed());
        assert_eq!(
            sm.session(),
            Some(SmSession {
                id: "sm-1".into(),
                h: 0
            })
        );
    }
}
