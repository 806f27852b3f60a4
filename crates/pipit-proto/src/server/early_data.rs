//! TLS 1.3 early data (0-RTT) on the server: what of it may be acted on before the
//! handshake is complete (DESIGN.md rule 7, XEP-0484 §3.4).
//!
//! Early data rides in the client's first flight, ahead of its Finished, so anyone
//! who recorded that flight can send it again: to this server, or to another that
//! shares its tickets (RFC 8446 §8; rustls's single-use tickets stop a replay only
//! within one ticket store). While the handshake is under way the server therefore
//! acts on two things only:
//!
//! 1. the stream header: it opens the stream and writes our header and features,
//!    which changes nothing, and what is written goes, encrypted, to whoever holds
//!    the session's keys, never to a replayer;
//! 2. one SASL2 `<authenticate/>` with a FAST HT-* mechanism that carries
//!    `<fast count='N'/>`: the driver records N only if it is greater than every
//!    count seen for that token, atomically in the store ([`Event::FastCount`]), so
//!    a replay of the flight fails authentication and changes nothing: it binds no
//!    resource, issues and retires no token.
//!
//! Everything else that came as early data (an authenticate without a count or with
//! a password mechanism, any stanza, a second element, the stream's end) is parsed
//! and held, and acted on only once the handshake is complete. By then the client's
//! Finished has been verified, which a replayer cannot produce without the session's
//! keys, so it is the client's own connection and a replayed flight never gets that
//! far. A FAST authenticate without a count that came as early data is refused even
//! then: XEP-0484 §3.4 says servers MUST reject it.
//!
//! [`Event::FastCount`]: crate::server::Event::FastCount

use crate::sasl::HtMechanism;
use crate::server::fast::FastRequest;
use crate::server::sasl2::Authenticate;
use crate::xml::{Element, StreamEvent, StreamParser, XmlError, ns};

/// What the connection knows of the early data it read.
#[derive(Debug, Default)]
pub(crate) struct EarlyData {
    /// Parser offset where the plaintext that came as early data ends; `None` while
    /// none came.
    end: Option<u64>,
    /// The one FAST `<authenticate/>` early data may carry has been let through.
    auth_taken: bool,
    /// An event read from early data that waits for the handshake to complete.
    held: Option<StreamEvent>,
    /// The event last handed out started in early data.
    current: bool,
}

/// What the connection's state allows while the handshake is under way.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Stage {
    /// No stream is open: a stream header would open one.
    pub awaiting_header: bool,
    /// The stream is open and nobody has authenticated or is authenticating.
    pub ready_for_auth: bool,
}

impl EarlyData {
    /// Plaintext that came as early data was fed to the parser; it ends at parser
    /// offset `end`.
    pub fn received(&mut self, end: u64) {
        self.end = Some(end);
    }

    /// A stream restart replaced the parser; the new one starts at offset `offset`
    /// of the old one.
    pub fn restarted(&mut self, offset: u64) {
        self.end = self
            .end
            .map(|end| end.saturating_sub(offset))
            .filter(|end| *end > 0);
    }

    /// Whether the event last handed out by [`next`](Self::next) came as early data.
    pub fn came_early(&self) -> bool {
        self.current
    }

    /// The next event to act on. While `handshaking`, only what the module docs allow
    /// comes out; anything else is held (and nothing after it comes out) until the
    /// handshake is complete, when it comes out first.
    pub fn next(
        &mut self,
        parser: &mut StreamParser,
        handshaking: bool,
        stage: Stage,
    ) -> Result<Option<StreamEvent>, XmlError> {
        if self.held.is_some() {
            if handshaking {
                return Ok(None);
            }
            self.current = true;
            return Ok(self.held.take());
        }
        let start = parser.offset();
        let Some(event) = parser.next_event()? else {
            return Ok(None);
        };
        // Until the handshake is complete rustls yields no plaintext but early data.
        self.current = handshaking || self.end.is_some_and(|end| start < end);
        if handshaking && !self.admits(&event, stage) {
            self.held = Some(event);
            return Ok(None);
        }
        Ok(Some(event))
    }

    /// Whether `event`, read from early data before the handshake is complete, may be
    /// acted on at once.
    fn admits(&mut self, event: &StreamEvent, stage: Stage) -> bool {
        match event {
            StreamEvent::Open(header) => stage.awaiting_header && !header.nested,
            StreamEvent::Element(el)
                if !self.auth_taken && stage.ready_for_auth && is_counted_fast(el) =>
            {
                self.auth_taken = true;
                true
            }
            _ => false,
        }
    }
}

/// A SASL2 `<authenticate/>` with a FAST HT-* mechanism and `<fast count='N'/>`: the
/// one request whose replay the count makes harmless (XEP-0484 §3.4).
fn is_counted_fast(el: &Element) -> bool {
    el.ns() == ns::SASL2
        && el.name() == "authenticate"
        && el
            .attr("mechanism")
            .and_then(HtMechanism::from_name)
            .is_some()
        && FastRequest::parse(el).count.is_some()
}

/// XEP-0484 §3.4: a FAST authentication that came as early data without a count must
/// be refused, even once the handshake is complete.
pub(crate) fn needs_count(request: &Authenticate, came_early: bool) -> bool {
    came_early
        && HtMechanism::from_name(&request.mechanism).is_some()
        && request.fast.count.is_none()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xml::Limits;

    const HEADER: &str = "<stream:stream xmlns='jabber:client' \
        xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>";

    fn fast(count: Option<&str>, mechanism: &str) -> String {
        let count = count
            .map(|c| format!("<fast xmlns='urn:xmpp:fast:0' count='{c}'/>"))
            .unwrap_or_default();
        format!(
            "<authenticate xmlns='urn:xmpp:sasl:2' mechanism='{mechanism}'>\
             <initial-response>AA==</initial-response>{count}</authenticate>"
        )
    }

    const MESSAGE: &str = "<message to='alice@localhost'><body>hi</body></message>";

    /// The next event's name, as [`EarlyData::next`] hands it out.
    fn one(
        early: &mut EarlyData,
        parser: &mut StreamParser,
        handshaking: bool,
        stage: Stage,
    ) -> Option<String> {
        early
            .next(parser, handshaking, stage)
            .unwrap()
            .map(|event| match event {
                StreamEvent::Open(_) => "open".to_string(),
                StreamEvent::Close => "close".to_string(),
                StreamEvent::Element(el) => el.name().to_string(),
            })
    }

    /// Every event handed out while the stage stays the same.
    fn names(
        early: &mut EarlyData,
        parser: &mut StreamParser,
        handshaking: bool,
        stage: Stage,
    ) -> Vec<String> {
        std::iter::from_fn(|| one(early, parser, handshaking, stage)).collect()
    }

    const READY: Stage = Stage {
        awaiting_header: false,
        ready_for_auth: true,
    };

    #[test]
    fn header_and_one_counted_fast_authenticate_pass_the_rest_waits() {
        let flight = format!(
            "{HEADER}{}{}{MESSAGE}",
            fast(Some("3"), "HT-SHA-256-ENDP"),
            fast(Some("4"), "HT-SHA-256-ENDP")
        );
        let mut parser = StreamParser::new(Limits::default());
        parser.feed(flight.as_bytes());
        let mut early = EarlyData::default();
        early.received(flight.len() as u64);
        let header_stage = Stage {
            awaiting_header: true,
            ready_for_auth: false,
        };
        assert_eq!(
            one(&mut early, &mut parser, true, header_stage).as_deref(),
            Some("open")
        );
        assert!(early.came_early());
        // The header's stage has passed: the first authenticate is let through.
        assert_eq!(
            names(&mut early, &mut parser, true, READY),
            ["authenticate"]
        );
        // The second is held, and with it everything behind it.
        assert!(names(&mut early, &mut parser, true, READY).is_empty());
        assert!(names(&mut early, &mut parser, true, READY).is_empty());
        // The handshake is complete: the held one first, then the rest, in order.
        assert_eq!(
            names(&mut early, &mut parser, false, READY),
            ["authenticate", "message"]
        );
        assert!(early.came_early());
    }

    #[test]
    fn anything_but_a_counted_fast_authenticate_waits() {
        for first in [
            fast(None, "HT-SHA-256-NONE"),
            fast(Some("1"), "PLAIN"),
            MESSAGE.to_string(),
            "</stream:stream>".to_string(),
        ] {
            let flight = format!("{HEADER}{first}");
            let mut parser = StreamParser::new(Limits::default());
            parser.feed(flight.as_bytes());
            let mut early = EarlyData::default();
            early.received(flight.len() as u64);
            let stage = Stage {
                awaiting_header: true,
                ready_for_auth: true,
            };
            assert_eq!(
                one(&mut early, &mut parser, true, stage).as_deref(),
                Some("open")
            );
            assert!(
                names(&mut early, &mut parser, true, READY).is_empty(),
                "{first}"
            );
            assert_eq!(names(&mut early, &mut parser, false, READY).len(), 1);
        }
    }

    #[test]
    fn a_fast_authenticate_waits_while_the_stream_is_busy() {
        let flight = format!("{HEADER}{}", fast(Some("1"), "HT-SHA-256-NONE"));
        let mut parser = StreamParser::new(Limits::default());
        parser.feed(flight.as_bytes());
        let mut early = EarlyData::default();
        early.received(flight.len() as u64);
        let busy = Stage {
            awaiting_header: true,
            ready_for_auth: false,
        };
        assert_eq!(
            one(&mut early, &mut parser, true, busy).as_deref(),
            Some("open")
        );
        assert!(names(&mut early, &mut parser, true, busy).is_empty());
    }

    #[test]
    fn what_follows_early_data_is_not_early() {
        let early_part = format!("{HEADER}{MESSAGE}");
        let mut parser = StreamParser::new(Limits::default());
        parser.feed(early_part.as_bytes());
        let mut early = EarlyData::default();
        early.received(early_part.len() as u64);
        parser.feed(MESSAGE.as_bytes());
        for expected in [true, true, false] {
            let event = early.next(&mut parser, false, READY).unwrap();
            assert!(event.is_some());
            assert_eq!(early.came_early(), expected);
        }
        // After a restart at the end of the early part, nothing is early any more.
        early.restarted(parser.offset());
        assert_eq!(early.end, None);
    }

    #[test]
    fn only_an_early_fast_request_needs_a_count() {
        let request = |mechanism: &str, count: Option<u64>| Authenticate {
            mechanism: mechanism.into(),
            fast: FastRequest {
                count,
                ..Default::default()
            },
            ..Default::default()
        };
        assert!(needs_count(&request("HT-SHA-256-NONE", None), true));
        assert!(!needs_count(&request("HT-SHA-256-NONE", Some(1)), true));
        assert!(!needs_count(&request("HT-SHA-256-NONE", None), false));
        assert!(!needs_count(&request("PLAIN", None), true));
    }
}
