//! XEP-0198 Stream Management on the server, sans-IO: the counters, the queue of
//! stanzas the client has not acknowledged, and the `urn:xmpp:sm:3` elements.
//!
//! Two layers:
//! - [`StreamManagement`] is the state of one SM session: `h` for stanzas handled
//!   from the client, the sequence of stanzas sent to it, and the bounded queue of
//!   those not yet acknowledged. It outlives a connection: when the stream drops
//!   with resumption enabled, the driver takes it out of the connection
//!   ([`ServerConnection::take_stream_management`](crate::server::ServerConnection::take_stream_management)),
//!   keeps queueing stanzas into it while the session is detached
//!   ([`StreamManagement::queue`]), and hands it to the connection that resumes
//!   ([`ServerConnection::complete_resume`](crate::server::ServerConnection::complete_resume)).
//! - `Link` is the per-connection part the core keeps beside it: the answer to
//!   each SM element, a resumption waiting on the driver, and whether the way the
//!   stream ended still allows resumption.
//!
//! Nothing here draws randomness: the SM-ID comes from the connection's
//! [`Random`], which the driver supplied.
//!
//! ## Choices (documented, tested)
//! - **Ack requests**: the server writes `<r/>` after every
//!   [`SmConfig::request_every`]th stanza since the last request, and after the
//!   stanzas resent on resumption. Requesting on idle is the driver's call
//!   ([`ServerConnection::request_ack`](crate::server::ServerConnection::request_ack)).
//! - **Bounded queue**: at most [`SmConfig::max_unacked`] stanzas wait for an
//!   acknowledgement. On a live stream, one more ends the stream with
//!   `<resource-constraint/>` (the stanza is not written; the driver gets it back
//!   and the session ends for good, every queued stanza handled as undeliverable).
//!   While the session is detached, [`StreamManagement::queue`] hands the stanza
//!   back for the driver to treat as undeliverable at once.
//! - **`h` wraps** from 2^32-1 to 0 (XEP-0198 §4); an `<a/>` or `<resume/>` whose
//!   `h` acknowledges more than was sent (or goes backwards, which modulo 2^32 is
//!   the same thing) ends the stream with `<undefined-condition/>` and
//!   `<handled-count-too-high/>`.
//!
//! ## Inline with Bind2 (XEP-0386) and SASL2 (XEP-0388)
//! - An `<enable/>` inside the Bind2 request: once bound, `ServerConnection::enable_sm`
//!   (crate-private) returns the `<enabled/>` for `<bound/>` and queues the same
//!   [`Event::StreamManagementEnabled`] a top-level `<enable/>` does.
//! - A `<resume/>` inside `<authenticate/>`: after SASL success, `Link::check_resume`
//!   and `Link::start_resume` with a `Via` that says where the answer goes; the driver answers the
//!   [`Event::ResumeRequest`] with `complete_resume` as usual, whose `match` on
//!   `Via` then builds the `<success/>` holding `<resumed/>` (or `<failed/>`, and
//!   Bind2 goes ahead).

use std::collections::VecDeque;

use crate::error::StreamError;
use crate::jid::Jid;
use crate::random::Random;
use crate::server::Event;
use crate::server::sasl2::Authenticate;
use crate::stanza::is_stanza;
use crate::xml::{Element, ns};

/// Stream management settings shared by every connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SmConfig {
    /// Seconds a detached session waits to be resumed, announced as `max` in
    /// `<enabled/>` (XEP-0198 §3); 0 turns resumption off (SM acks still work).
    pub resume_timeout_secs: u32,
    /// The most stanzas kept waiting for an acknowledgement.
    pub max_unacked: usize,
    /// Write `<r/>` after this many stanzas since the last request (0: never).
    pub request_every: usize,
}

impl Default for SmConfig {
    fn default() -> Self {
        SmConfig {
            resume_timeout_secs: 300,
            max_unacked: 500,
            request_every: 5,
        }
    }
}

/// An `<a/>` or `<resume/>` acknowledged stanzas that were never sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HandledCountTooHigh {
    /// The `h` the client sent.
    pub h: u32,
    /// How many stanzas the server had sent (modulo 2^32).
    pub sent: u32,
}

impl From<HandledCountTooHigh> for StreamError {
    fn from(e: HandledCountTooHigh) -> Self {
        StreamError::HandledCountTooHigh {
            h: e.h,
            sent: e.sent,
        }
    }
}

/// The state of one stream management session (XEP-0198): counters and the
/// stanzas not yet acknowledged, in the order they were sent.
#[derive(Clone, Debug)]
pub struct StreamManagement {
    /// SM-ID and resumption time, when the session may be resumed (§5).
    resume: Option<(String, u32)>,
    /// Stanzas handled from the client: the `h` we report (§4).
    handled: u32,
    /// The client's last `h`: stanzas it has acknowledged.
    acked: u32,
    /// Sent or queued stanzas after `acked`, oldest first; the first has sequence
    /// number `acked + 1`.
    unacked: VecDeque<Element>,
    /// Stanzas sent since the last `<r/>`.
    unrequested: usize,
    max_unacked: usize,
    request_every: usize,
}

impl StreamManagement {
    /// A fresh session: both counters at zero (§4: from `<enabled/>` on), resumable
    /// under `resume` (SM-ID, seconds) if given. The core makes one on `<enable/>`;
    /// a driver needs this only to restore a session kept elsewhere, or in tests.
    pub fn new(config: &SmConfig, resume: Option<(String, u32)>) -> Self {
        StreamManagement {
            resume,
            handled: 0,
            acked: 0,
            unacked: VecDeque::new(),
            unrequested: 0,
            max_unacked: config.max_unacked,
            request_every: config.request_every,
        }
    }

    /// The SM-ID, when the session is resumable.
    pub fn resume_id(&self) -> Option<&str> {
        self.resume.as_ref().map(|(id, _)| id.as_str())
    }

    /// How long a detached session may wait, in seconds, when it is resumable: the
    /// server's setting, or the client's `max` if that was lower.
    pub fn resume_timeout_secs(&self) -> Option<u32> {
        self.resume.as_ref().map(|(_, max)| *max)
    }

    /// Stanzas handled from the client (the `h` we report), modulo 2^32.
    pub fn handled(&self) -> u32 {
        self.handled
    }

    /// Stanzas sent or queued for the client, modulo 2^32.
    pub fn sent(&self) -> u32 {
        // The queue never holds 2^32 stanzas (max_unacked is a usize well below).
        self.acked.wrapping_add(self.unacked.len() as u32)
    }

    /// The stanzas not acknowledged yet, oldest first.
    pub fn unacked(&self) -> impl Iterator<Item = &Element> {
        self.unacked.iter()
    }

    /// How many stanzas wait for an acknowledgement.
    pub fn unacked_len(&self) -> usize {
        self.unacked.len()
    }

    /// Whether the queue is full.
    pub fn is_full(&self) -> bool {
        self.unacked.len() >= self.max_unacked
    }

    /// Queues a stanza for the client while no connection is attached; it goes out
    /// after `<resumed/>`. Gives the stanza back when the queue is full.
    pub fn queue(&mut self, stanza: Element) -> Result<(), Element> {
        self.push(stanza).map(|_| ())
    }

    /// Takes every stanza not acknowledged, oldest first, and counts them as done:
    /// for the driver to handle as undeliverable when the session ends for good.
    pub fn take_unacked(&mut self) -> Vec<Element> {
        self.acked = self.sent();
        self.unrequested = 0;
        self.unacked.drain(..).collect()
    }

    /// Counts one stanza handled from the client (§4: wraps at 2^32).
    pub(crate) fn count_inbound(&mut self) {
        self.handled = self.handled.wrapping_add(1);
    }

    /// Records a stanza about to be written. `Ok(true)`: an `<r/>` is due after it.
    pub(crate) fn push(&mut self, stanza: Element) -> Result<bool, Element> {
        if self.is_full() {
            return Err(stanza);
        }
        self.unacked.push_back(stanza);
        self.unrequested += 1;
        if self.request_every > 0 && self.unrequested >= self.request_every {
            self.unrequested = 0;
            return Ok(true);
        }
        Ok(false)
    }

    /// Applies the client's `h` (from `<a/>` or `<resume/>`): drops the stanzas it
    /// covers. Returns how many were newly acknowledged.
    pub(crate) fn acknowledge(&mut self, h: u32) -> Result<usize, HandledCountTooHigh> {
        // Modulo 2^32 (§4), `h` is `acked + n` for some n no larger than the queue.
        let n = h.wrapping_sub(self.acked) as usize;
        if n > self.unacked.len() {
            return Err(HandledCountTooHigh {
                h,
                sent: self.sent(),
            });
        }
        self.unacked.drain(..n);
        self.acked = h;
        self.unrequested = self.unrequested.min(self.unacked.len());
        Ok(n)
    }

    /// Whether stanzas went out since the last `<r/>`; if so, counts them as
    /// requested now (the caller writes the `<r/>`).
    pub(crate) fn take_request(&mut self) -> bool {
        std::mem::take(&mut self.unrequested) > 0
    }

    /// Whether stanzas went out since the last `<r/>`.
    pub(crate) fn has_unrequested(&self) -> bool {
        self.unrequested > 0
    }

    /// After resumption every queued stanza is (re)sent, then one `<r/>` covers them.
    fn resent(&mut self) -> Vec<Element> {
        self.unrequested = 0;
        self.unacked.iter().cloned().collect()
    }
}

/// The stanza error conditions `<failed/>` carries here (XEP-0198 §6: RFC 6120
/// stanza conditions).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// `<enable/>` or `<resume/>` at the wrong time (§3, §5).
    UnexpectedRequest,
    /// No such session to resume: unknown, expired, or another account's (§5).
    ItemNotFound,
    /// Resumption is switched off here (§5).
    FeatureNotImplemented,
    /// `<resume/>` without a usable `previd` or `h`.
    BadRequest,
}

impl Failure {
    /// The condition element's name.
    pub fn condition(self) -> &'static str {
        match self {
            Failure::UnexpectedRequest => "unexpected-request",
            Failure::ItemNotFound => "item-not-found",
            Failure::FeatureNotImplemented => "feature-not-implemented",
            Failure::BadRequest => "bad-request",
        }
    }
}

/// `<sm xmlns='urn:xmpp:sm:3'/>`, the stream feature (§2); also what SASL2 lists
/// inline (XEP-0388) for a `<resume/>` inside `<authenticate/>`.
pub fn feature() -> Element {
    Element::new("sm", ns::SM)
}

/// `<enabled/>` (§3), with `id`, `resume='true'` and `max` when resumable.
pub fn enabled(resume: Option<(&str, u32)>) -> Element {
    let mut el = Element::new("enabled", ns::SM);
    if let Some((id, max)) = resume {
        el.set_attr("id", id);
        el.set_attr("resume", "true");
        el.set_attr("max", max.to_string());
    }
    el
}

/// `<a h=…/>` (§4).
pub fn ack(h: u32) -> Element {
    Element::new("a", ns::SM).with_attr("h", h.to_string())
}

/// `<r/>` (§4).
pub fn request() -> Element {
    Element::new("r", ns::SM)
}

/// `<resumed previd=… h=…/>` (§5).
pub fn resumed(previd: &str, h: u32) -> Element {
    Element::new("resumed", ns::SM)
        .with_attr("previd", previd)
        .with_attr("h", h.to_string())
}

/// `<failed>` with a stanza error condition (§6).
pub fn failed(failure: Failure) -> Element {
    Element::new("failed", ns::SM).with_child(Element::new(failure.condition(), ns::STANZA_ERRORS))
}

/// `<handled-count-too-high h=… send-count=…/>`, the application-specific
/// condition of the `<undefined-condition/>` stream error (XEP-0198 §4, 1.6).
pub fn handled_count_too_high(h: u32, sent: u32) -> Element {
    Element::new("handled-count-too-high", ns::SM)
        .with_attr("h", h.to_string())
        .with_attr("send-count", sent.to_string())
}

/// What `<enable/>` asks for: resumption (xs:boolean, §3) and the client's
/// preferred `max` in seconds (a positive integer; anything else is ignored).
pub fn parse_enable(el: &Element) -> (bool, Option<u32>) {
    let resume = matches!(el.attr("resume").map(str::trim), Some("true" | "1"));
    let max = el
        .attr("max")
        .and_then(|m| m.trim().parse::<u32>().ok())
        .filter(|m| *m > 0);
    (resume, max)
}

/// What `<resume/>` names: `previd` and `h` (§5), both required. Also for a
/// `<resume/>` carried inside SASL2's `<authenticate/>`.
pub fn parse_resume(el: &Element) -> Option<(String, u32)> {
    let previd = el.attr("previd").filter(|p| !p.is_empty())?;
    let h = el.attr("h")?.trim().parse::<u32>().ok()?;
    Some((previd.to_owned(), h))
}

/// Where a resumption request came from, so its answer goes back the same way.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub(crate) enum Via {
    /// A top-level `<resume/>` (§5): answered with `<resumed/>` or `<failed/>`.
    Stream,
    /// A `<resume/>` inside SASL2's `<authenticate/>`: the `<success/>` waits for
    /// the answer, so what it will carry waits here. On failure the request's
    /// Bind2 goes ahead; on success it is ignored (a resumed session is bound).
    Sasl2 {
        request: Box<Authenticate>,
        additional_data: Option<Vec<u8>>,
        extra: Vec<Element>,
    },
}

/// A `<resume/>` waiting for the driver's registry lookup.
#[derive(Clone, Debug)]
pub(crate) struct PendingResume {
    pub previd: String,
    pub h: u32,
    pub via: Via,
}

/// The outcome of [`Link::complete_resume`], for the connection to write.
#[derive(Debug)]
pub(crate) enum Resumption {
    /// `<failed/>`: the client may bind instead.
    Failed { via: Via, failed: Element },
    /// The old session carries on: `<resumed/>`, then these stanzas, then `<r/>`
    /// if there were any.
    Resumed {
        via: Via,
        jid: Jid,
        resumed: Element,
        resend: Vec<Element>,
    },
    /// The client's `h` acknowledged stanzas never sent: a stream error, after
    /// which the session (installed on the connection) ends for good.
    TooHigh { jid: Jid, error: StreamError },
}

/// What the connection knows when an SM element arrives.
pub(crate) struct Session<'a> {
    pub authenticated: Option<&'a Jid>,
    pub bound: bool,
    pub config: &'a SmConfig,
    pub random: &'a mut dyn Random,
}

/// What to do about an SM element.
#[derive(Debug, Default)]
pub(crate) struct Reply {
    /// A nonza to write at stream level.
    pub write: Option<Element>,
    /// An event for the driver.
    pub event: Option<Event>,
}

impl Reply {
    fn write(el: Element) -> Self {
        Reply {
            write: Some(el),
            event: None,
        }
    }
}

/// The stream management side of one connection.
#[derive(Debug, Default)]
pub(crate) struct Link {
    state: Option<StreamManagement>,
    pending: Option<PendingResume>,
    /// The stream ended in a way that ends the session for good: the client's
    /// `</stream:stream>` (§7) or a stream error other than a TLS failure.
    ended_for_good: bool,
}

impl Link {
    /// Whether SM is enabled (or resumed) on this connection.
    pub fn is_enabled(&self) -> bool {
        self.state.is_some()
    }

    /// Whether a resumption waits on the driver; input is held until it answers.
    pub fn is_waiting(&self) -> bool {
        self.pending.is_some()
    }

    /// The state, once enabled.
    pub fn state(&self) -> Option<&StreamManagement> {
        self.state.as_ref()
    }

    /// Hands the state to the driver when the connection is over.
    pub fn take_state(&mut self) -> Option<StreamManagement> {
        self.state.take()
    }

    /// Whether a detached session may wait for resumption: resumable, and the
    /// stream dropped rather than ended (§7).
    pub fn can_resume(&self) -> bool {
        !self.ended_for_good && self.state.as_ref().is_some_and(|s| s.resume.is_some())
    }

    /// The stream ended: `None` for the client's (or our) clean close, else the
    /// error. Only a TLS failure, like end of file, leaves resumption possible.
    pub fn ended(&mut self, error: Option<&StreamError>) {
        if !matches!(error, Some(StreamError::Tls(_))) {
            self.ended_for_good = true;
        }
    }

    /// Counts a stanza from the client (§4), once SM is on.
    pub fn count_inbound(&mut self) {
        if let Some(state) = &mut self.state {
            state.count_inbound();
        }
    }

    /// Records a stanza about to be written to the client (§4). `Ok(true)`: write
    /// `<r/>` after it. An error ends the stream: the queue is full.
    pub fn track(&mut self, el: &Element) -> Result<bool, StreamError> {
        match &mut self.state {
            Some(state) if is_stanza(el) => state.push(el.clone()).map_err(|_| {
                StreamError::ResourceConstraint("too many unacknowledged stanzas".into())
            }),
            _ => Ok(false),
        }
    }

    /// Whether stanzas went out since the last `<r/>`; marks them requested.
    pub fn take_request(&mut self) -> bool {
        self.state.as_mut().is_some_and(|s| s.take_request())
    }

    /// Enables SM (§3) and returns `<enabled/>`, with the event that tells the
    /// driver (to register the SM-ID). Resumption is granted when asked for and
    /// configured; its time is the lower of ours and the client's `max`.
    pub fn enable(
        &mut self,
        resume: bool,
        max: Option<u32>,
        config: &SmConfig,
        random: &mut dyn Random,
    ) -> (Element, Event) {
        let grant = (resume && config.resume_timeout_secs > 0).then(|| {
            let max = max.map_or(config.resume_timeout_secs, |m| {
                m.min(config.resume_timeout_secs)
            });
            // §5: an SM-ID never reused while we run: 128 random bits.
            (random.hex(16), max)
        });
        let el = enabled(grant.as_ref().map(|(id, max)| (id.as_str(), *max)));
        let event = Event::StreamManagementEnabled {
            resume_id: grant.as_ref().map(|(id, _)| id.clone()),
        };
        self.state = Some(StreamManagement::new(config, grant));
        (el, event)
    }

    /// Answers one top-level `urn:xmpp:sm:3` element.
    pub fn handle(&mut self, el: &Element, session: Session<'_>) -> Result<Reply, StreamError> {
        match el.name() {
            "enable" => {
                if self.state.is_some() {
                    // §3: at most one attempt; a second one earns a stream error.
                    return Err(StreamError::PolicyViolation(
                        "stream management is already enabled".into(),
                    ));
                }
                if !session.bound {
                    // §3: the server enforces enable-after-bind with <failed/>.
                    return Ok(Reply::write(failed(Failure::UnexpectedRequest)));
                }
                let (resume, max) = parse_enable(el);
                let (enabled, event) = self.enable(resume, max, session.config, session.random);
                Ok(Reply {
                    write: Some(enabled),
                    event: Some(event),
                })
            }
            "resume" => {
                // §9: never before authentication; §5: instead of binding.
                let jid = match session.authenticated {
                    Some(jid) if !session.bound => jid,
                    _ => return Ok(Reply::write(failed(Failure::UnexpectedRequest))),
                };
                Ok(match self.check_resume(el, session.config) {
                    Ok((previd, h)) => Reply {
                        write: None,
                        event: Some(self.start_resume(jid.to_bare(), previd, h, Via::Stream)),
                    },
                    Err(failed) => Reply::write(failed),
                })
            }
            "r" => match &self.state {
                // §4: answered at once with the count handled so far.
                Some(state) => Ok(Reply::write(ack(state.handled()))),
                None => Err(StreamError::PolicyViolation(
                    "stream management is not enabled".into(),
                )),
            },
            "a" => {
                let Some(state) = &mut self.state else {
                    return Err(StreamError::PolicyViolation(
                        "stream management is not enabled".into(),
                    ));
                };
                let Some(h) = el.attr("h").and_then(|h| h.trim().parse::<u32>().ok()) else {
                    return Err(StreamError::PolicyViolation(
                        "<a/> without a valid 'h'".into(),
                    ));
                };
                state.acknowledge(h)?;
                Ok(Reply::default())
            }
            name => Err(StreamError::UnsupportedStanzaType(format!(
                "{{{}}}{name}",
                ns::SM
            ))),
        }
    }

    /// Checks a `<resume/>` (top-level, or inline in SASL2's `<authenticate/>`)
    /// from an authenticated, unbound client: `Ok` is its `previd` and `h`, to
    /// [`start_resume`](Self::start_resume) with; `Err` the `<failed/>` to send.
    /// Resumption happens once, without SM already on (§5); it is off when the
    /// timeout is 0 (`feature-not-implemented`); `previd` and `h` are required.
    pub fn check_resume(&self, el: &Element, config: &SmConfig) -> Result<(String, u32), Element> {
        if self.state.is_some() || self.pending.is_some() {
            return Err(failed(Failure::UnexpectedRequest));
        }
        if config.resume_timeout_secs == 0 {
            return Err(failed(Failure::FeatureNotImplemented));
        }
        parse_resume(el).ok_or(failed(Failure::BadRequest))
    }

    /// Starts a resumption: the returned event asks the driver for the session
    /// `previd` of `jid` (bare); input is held until
    /// [`complete_resume`](Self::complete_resume).
    pub fn start_resume(&mut self, jid: Jid, previd: String, h: u32, via: Via) -> Event {
        self.pending = Some(PendingResume {
            previd: previd.clone(),
            h,
            via,
        });
        Event::ResumeRequest { jid, previd }
    }

    /// The driver's answer: the session's full JID and SM state, or `None` when
    /// there is no such session for this account. `None` when nothing was pending.
    pub fn complete_resume(
        &mut self,
        session: Option<(Jid, StreamManagement)>,
    ) -> Option<Resumption> {
        let pending = self.pending.take()?;
        let Some((jid, mut state)) = session else {
            return Some(Resumption::Failed {
                via: pending.via,
                failed: failed(Failure::ItemNotFound),
            });
        };
        // §5: the client's h acknowledges as an <a/> would, then the rest goes
        // out again; the counters carry on from the old stream.
        let outcome = match state.acknowledge(pending.h) {
            Ok(_) => Resumption::Resumed {
                via: pending.via,
                resumed: resumed(&pending.previd, state.handled()),
                resend: state.resent(),
                jid,
            },
            Err(e) => Resumption::TooHigh {
                jid,
                error: e.into(),
            },
        };
        self.state = Some(state);
        Some(outcome)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::random::SeededRandom;

    fn msg(n: u32) -> Element {
        Element::new("message", ns::CLIENT).with_attr("id", n.to_string())
    }

    fn config(max_unacked: usize, request_every: usize) -> SmConfig {
        SmConfig {
            resume_timeout_secs: 300,
            max_unacked,
            request_every,
        }
    }

    fn ids(sm: &StreamManagement) -> Vec<String> {
        sm.unacked()
            .map(|m| m.attr("id").unwrap_or_default().to_owned())
            .collect()
    }

    #[test]
    fn acks_drop_what_they_cover_and_no_more() {
        let mut sm = StreamManagement::new(&config(10, 0), None);
        for n in 1..=4 {
            assert_eq!(sm.push(msg(n)), Ok(false));
        }
        assert_eq!(sm.sent(), 4);
        assert_eq!(sm.acknowledge(0), Ok(0));
        assert_eq!(sm.acknowledge(2), Ok(2));
        assert_eq!(ids(&sm), ["3", "4"]);
        // The same h again is harmless.
        assert_eq!(sm.acknowledge(2), Ok(0));
        assert_eq!(
            sm.acknowledge(5),
            Err(HandledCountTooHigh { h: 5, sent: 4 })
        );
        // Backwards is the same as far too high, modulo 2^32.
        assert_eq!(
            sm.acknowledge(1),
            Err(HandledCountTooHigh { h: 1, sent: 4 })
        );
        assert_eq!(ids(&sm), ["3", "4"], "a bad h changes nothing");
        assert_eq!(sm.acknowledge(4), Ok(2));
        assert_eq!(sm.unacked_len(), 0);
    }

    #[test]
    fn counters_wrap_at_two_to_the_32() {
        let mut sm = StreamManagement::new(&config(10, 0), None);
        sm.handled = u32::MAX;
        sm.count_inbound();
        assert_eq!(sm.handled(), 0);
        sm.count_inbound();
        assert_eq!(sm.handled(), 1);

        sm.acked = u32::MAX - 1;
        for n in 1..=3 {
            sm.push(msg(n)).unwrap();
        }
        // Sequence numbers 2^32-1, 0, 1.
        assert_eq!(sm.sent(), 1);
        assert_eq!(sm.acknowledge(u32::MAX), Ok(1));
        assert_eq!(sm.acknowledge(0), Ok(1));
        assert_eq!(ids(&sm), ["3"]);
        assert_eq!(
            sm.acknowledge(2),
            Err(HandledCountTooHigh { h: 2, sent: 1 })
        );
        assert_eq!(sm.acknowledge(1), Ok(1));
        assert_eq!(sm.sent(), 1);
    }

    #[test]
    fn the_queue_is_bounded() {
        let mut sm = StreamManagement::new(&config(3, 0), None);
        for n in 1..=3 {
            sm.push(msg(n)).unwrap();
        }
        assert!(sm.is_full());
        assert_eq!(sm.push(msg(4)), Err(msg(4)));
        assert_eq!(sm.queue(msg(4)), Err(msg(4)));
        assert_eq!(sm.sent(), 3, "a refused stanza is not counted");
        sm.acknowledge(1).unwrap();
        assert_eq!(sm.queue(msg(4)), Ok(()));
        assert_eq!(ids(&sm), ["2", "3", "4"]);
        let taken = sm.take_unacked();
        assert_eq!(taken.len(), 3);
        assert_eq!(sm.sent(), 4);
        assert_eq!(sm.acknowledge(4), Ok(0), "taken stanzas count as done");
    }

    #[test]
    fn requests_every_n_stanzas_and_on_demand() {
        let mut sm = StreamManagement::new(&config(100, 3), None);
        let due: Vec<bool> = (1..=7).map(|n| sm.push(msg(n)).unwrap()).collect();
        assert_eq!(due, [false, false, true, false, false, true, false]);
        assert!(sm.take_request(), "one stanza since the last <r/>");
        assert!(!sm.take_request());
        sm.push(msg(8)).unwrap();
        sm.acknowledge(8).unwrap();
        assert!(
            !sm.take_request(),
            "everything acknowledged: nothing to ask"
        );
    }

    #[test]
    fn enable_grants_resumption_only_when_asked_and_configured() {
        let mut random = SeededRandom::new(1);
        let mut link = Link::default();
        let (el, event) = link.enable(true, Some(60), &SmConfig::default(), &mut random);
        let id = el.attr("id").unwrap().to_owned();
        assert_eq!(id.len(), 32);
        assert_eq!(el.attr("resume"), Some("true"));
        assert_eq!(el.attr("max"), Some("60"), "the client's lower max wins");
        assert_eq!(
            event,
            Event::StreamManagementEnabled {
                resume_id: Some(id)
            }
        );
        assert!(link.can_resume());
        link.ended(Some(&StreamError::Tls("reset".into())));
        assert!(link.can_resume(), "a TLS failure is a dropped connection");
        link.ended(None);
        assert!(!link.can_resume(), "</stream:stream> ends the session");

        let mut link = Link::default();
        let (el, _) = link.enable(false, None, &SmConfig::default(), &mut random);
        assert_eq!(el, enabled(None));
        assert!(!link.can_resume());

        let off = SmConfig {
            resume_timeout_secs: 0,
            ..SmConfig::default()
        };
        let mut link = Link::default();
        let (el, event) = link.enable(true, None, &off, &mut random);
        assert_eq!(el, enabled(None));
        assert_eq!(event, Event::StreamManagementEnabled { resume_id: None });
    }

    #[test]
    fn resumption_acknowledges_then_resends_the_rest() {
        let mut random = SeededRandom::new(2);
        let mut old = Link::default();
        old.enable(true, None, &SmConfig::default(), &mut random);
        let mut state = old.take_state().unwrap();
        for n in 1..=3 {
            state.push(msg(n)).unwrap();
        }
        state.count_inbound();
        let id = state.resume_id().unwrap().to_owned();
        let jid = Jid::parse("a@x/r").unwrap();

        let mut new = Link::default();
        let event = new.start_resume(jid.to_bare(), id.clone(), 1, Via::Stream);
        assert!(matches!(event, Event::ResumeRequest { .. }));
        assert!(new.is_waiting());
        let Some(Resumption::Resumed {
            resumed: el,
            resend,
            ..
        }) = new.complete_resume(Some((jid.clone(), state.clone())))
        else {
            panic!("resumed")
        };
        assert!(!new.is_waiting());
        assert_eq!(el, resumed(&id, 1));
        assert_eq!(resend, [msg(2), msg(3)]);
        assert!(new.complete_resume(None).is_none(), "nothing pending");

        let mut other = Link::default();
        other.start_resume(jid.to_bare(), id.clone(), 9, Via::Stream);
        assert!(matches!(
            other.complete_resume(Some((jid, state))),
            Some(Resumption::TooHigh { .. })
        ));
        assert!(other.is_enabled(), "the state stays for the driver to end");
    }

    #[test]
    fn parsing() {
        let enable = Element::new("enable", ns::SM)
            .with_attr("resume", "1")
            .with_attr("max", "0");
        assert_eq!(parse_enable(&enable), (true, None));
        let resume = Element::new("resume", ns::SM)
            .with_attr("previd", "abc")
            .with_attr("h", "4294967295");
        assert_eq!(parse_resume(&resume), Some(("abc".into(), u32::MAX)));
        let overflow = resume.clone().with_attr("h", "4294967296");
        assert_eq!(parse_resume(&overflow), None);
        assert_eq!(
            failed(Failure::ItemNotFound).to_string(),
            "<failed xmlns='urn:xmpp:sm:3'><item-not-found \
             xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></failed>"
        );
    }
}
