//! XEP-0198 stream management: the connection's side. The logic is in
//! [`sm`](crate::server::sm).

use super::{ServerConnection, State};
use crate::error::StreamError;
use crate::jid::Jid;
use crate::server::sasl2;
use crate::server::sm::{self, Resumption, StreamManagement, Via};
use crate::xml::{Element, ns};

impl ServerConnection {
    /// Answers [`Event::ResumeRequest`](crate::server::Event::ResumeRequest) with the session's full JID and its SM state
    /// (taken from the old connection, or kept while the session was detached), or
    /// `None` when this account has no session under that SM-ID (unknown, expired,
    /// or another account's: the driver checks). On success the old binding carries
    /// on here: `<resumed/>`, then every stanza the client has not acknowledged, in
    /// order, then `<r/>`; stanzas the driver queued for the session follow through
    /// [`send_stanza`](Self::send_stanza). On failure the client may bind instead.
    pub fn complete_resume(&mut self, session: Option<(Jid, StreamManagement)>) {
        let Some(outcome) = self.sm.complete_resume(session) else {
            return;
        };
        match outcome {
            Resumption::Failed {
                via: Via::Stream,
                failed,
            } => self.write_element_in(&failed, ns::STREAM),
            Resumption::Failed {
                via:
                    Via::Sasl2 {
                        request,
                        additional_data,
                        mut extra,
                    },
                failed,
            } => {
                // The `<failed/>` goes inside `<success/>`, and Bind2 (if asked
                // for) binds a fresh session.
                extra.push(failed);
                if let Some(jid) = self.authenticated.clone() {
                    self.sasl2_bind(jid, *request, additional_data, extra);
                }
            }
            Resumption::Resumed {
                via,
                jid,
                resumed,
                resend,
            } => {
                let answer = match via {
                    Via::Stream => resumed,
                    // XEP-0198 §5 inline: `<resumed/>` inside `<success/>`, whose
                    // authorization identifier is the resumed full JID.
                    Via::Sasl2 {
                        additional_data,
                        mut extra,
                        ..
                    } => {
                        extra.push(resumed);
                        sasl2::success(additional_data.as_deref(), &jid, None, extra)
                    }
                };
                self.bound = Some(jid);
                self.write_element_in(&answer, ns::STREAM);
                // Already counted and queued: written again, not tracked again.
                for stanza in &resend {
                    self.write_element_in(stanza, ns::CLIENT);
                }
                if !resend.is_empty() {
                    self.write_element_in(&sm::request(), ns::STREAM);
                }
            }
            Resumption::TooHigh { jid, error } => {
                // The state is installed: the driver ends the session for good.
                self.bound = Some(jid);
                self.fail(error);
            }
        }
        self.process();
        self.transport.flush(&mut self.out);
    }

    /// XEP-0386 inline enable: for the `<enable xmlns='urn:xmpp:sm:3'/>` found in a
    /// Bind2 request, once the resource is bound. Returns the `<enabled/>` (or
    /// `<failed/>`) that goes inside `<bound/>`, and queues
    /// [`Event::StreamManagementEnabled`](crate::server::Event::StreamManagementEnabled) as a top-level `<enable/>` would.
    pub(crate) fn enable_sm(&mut self, request: &Element) -> Element {
        if self.sm.is_enabled() {
            return sm::failed(sm::Failure::UnexpectedRequest);
        }
        let (resume, max) = sm::parse_enable(request);
        let config = &self.config.stream_management;
        let (enabled, event) = self.sm.enable(resume, max, config, &mut *self.random);
        self.events.push_back(event);
        enabled
    }

    /// Writes `<r/>` if stanzas went out since the last one: for a driver that asks
    /// for an acknowledgement when the stream falls quiet.
    pub fn request_ack(&mut self) {
        if !matches!(self.state, State::Closed) && self.sm.take_request() {
            self.write_element_in(&sm::request(), ns::STREAM);
            self.transport.flush(&mut self.out);
        }
    }

    /// Whether stanzas went out since the last `<r/>` (see [`request_ack`](Self::request_ack)).
    pub fn wants_ack(&self) -> bool {
        self.sm
            .state()
            .is_some_and(StreamManagement::has_unrequested)
    }

    /// The SM state, once stream management is on.
    pub fn stream_management(&self) -> Option<&StreamManagement> {
        self.sm.state()
    }

    /// Takes the SM state once the stream is over: to keep while the session is
    /// detached (when [`can_resume`](Self::can_resume)), or to handle its
    /// unacknowledged stanzas as undeliverable when the session ends for good.
    pub fn take_stream_management(&mut self) -> Option<StreamManagement> {
        self.sm.take_state()
    }

    /// Whether the stream is over and its session may wait for resumption: it was
    /// resumable and it dropped (end of file, a TLS failure) rather than ended with
    /// `</stream:stream>` or a stream error (XEP-0198 §7).
    pub fn can_resume(&self) -> bool {
        matches!(self.state, State::Closed) && self.sm.can_resume()
    }

    /// A top-level `urn:xmpp:sm:3` element.
    pub(super) fn sm_element(&mut self, el: &Element) -> Result<(), StreamError> {
        let session = sm::Session {
            authenticated: self.authenticated.as_ref(),
            bound: self.bound.is_some(),
            config: &self.config.stream_management,
            random: &mut *self.random,
        };
        let reply = self.sm.handle(el, session)?;
        if let Some(answer) = reply.write {
            self.write_element_in(&answer, ns::STREAM);
        }
        if let Some(event) = reply.event {
            self.events.push_back(event);
        }
        Ok(())
    }
}
