//! One client-to-server connection, as a sans-IO state machine.

use std::collections::VecDeque;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;

use crate::error::StreamError;
use crate::jid::{Jid, prep_domain};
use crate::random::Random;
use crate::sasl::{HtServer, Mechanism, SaslError, ServerSession};
use crate::server::config::ServerConfig;
use crate::server::early_data::{self, EarlyData};
use crate::server::fast;
use crate::server::features::{self, Stage};
use crate::server::sasl2::Authenticate;
use crate::server::sm::{self, Link};
use crate::stanza::{StanzaError, error_reply, is_stanza};
use crate::transport::{TlsInfo, Transport};
use crate::xml::{Element, StreamEvent, StreamHeader, StreamParser, escape_attr_value, ns};

mod auth;
mod binding;
mod event;
mod fast_login;
mod stream_management;
mod upgrade;

pub use event::Event;

/// Which listener the connection came in on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Listener {
    /// Plaintext first; TLS through `<starttls/>` (RFC 6120 §5), required before auth.
    StartTls,
    /// TLS from the first byte (XEP-0368).
    DirectTls,
}

/// Where the stream negotiation stands.
enum State {
    /// Waiting for the client's stream header (initial or after a restart).
    AwaitHeader,
    /// Stream open and features sent.
    Open,
    /// A SASL exchange waits for the driver's credentials lookup.
    SaslCredentials(SaslExchange),
    /// A SASL exchange waits for the client's `<response/>`.
    SaslChallenge(SaslExchange),
    /// A bind request waits for the driver's decision.
    Binding {
        /// The id of the bind iq, for the answer.
        id: String,
    },
    /// SASL2 succeeded with an inline Bind2 request (XEP-0386); the `<success/>`
    /// goes out once the driver has bound the resource.
    Bind2 {
        /// The SASL additional data for `<success/>`.
        additional_data: Option<Vec<u8>>,
        /// More children for `<success/>` (a FAST token).
        extra: Vec<Element>,
        /// An inline `<enable/>` of stream management (XEP-0386 §4).
        sm_enable: Option<Element>,
    },
    /// A SASL2 password login runs XEP-0480 upgrade tasks before its `<success/>`.
    Sasl2Upgrade(Box<crate::server::scram_upgrade::Upgrade>),
    /// A FAST authentication waits for the driver's token lookup.
    FastTokens(FastExchange),
    /// A FAST authentication waits for the driver's replay check of its count.
    FastCount(FastExchange, [u8; 32]),
    /// Finished; input is ignored.
    Closed,
}

/// A FAST (XEP-0484) authentication in progress.
struct FastExchange {
    server: HtServer,
    username: String,
    request: Authenticate,
}

struct SaslExchange {
    session: ServerSession,
    mechanism: Mechanism,
    username: String,
    profile: Profile,
    /// The iteration count of the account's stored credentials, once looked up:
    /// below the configured one, an XEP-0480 upgrade may follow.
    stored_iterations: Option<u32>,
}

/// Which SASL profile the exchange speaks: RFC 6120's, or XEP-0388's (SASL2).
#[derive(Clone, Debug)]
enum Profile {
    Sasl1,
    Sasl2(Box<Authenticate>),
}

impl Profile {
    fn ns(&self) -> &'static str {
        match self {
            Profile::Sasl1 => ns::SASL,
            Profile::Sasl2(_) => ns::SASL2,
        }
    }
}

/// The server side of one c2s connection: bytes in, bytes and [`Event`]s out.
///
/// Call order for the driver:
/// 1. [`handle_input`](Self::handle_input) with every read from the socket;
/// 2. drain [`poll_event`](Self::poll_event), answering `NeedCredentials` and
///    `BindRequest` (which may produce more events), routing `Stanza`s;
/// 3. write [`take_output`](Self::take_output) to the socket in one write, so one
///    client flight gets one server flight (DESIGN.md §4);
/// 4. on `Closed`, write the output and close the socket.
///
/// Stanzas routed to this session go in with [`send_stanza`](Self::send_stanza).
pub struct ServerConnection {
    config: Arc<ServerConfig>,
    random: Box<dyn Random>,
    transport: Transport,
    parser: StreamParser,
    state: State,
    /// The domain of the first stream; restarts must keep it.
    domain: Option<String>,
    authenticated: Option<Jid>,
    bound: Option<Jid>,
    /// Our stream header has been sent for the current stream.
    header_sent: bool,
    /// The last SASL attempt failed and no stream has been opened since: a stream
    /// header arriving inside the stream is the client's pipelined restart (rule 5).
    restart_after_failure: bool,
    /// XEP-0198 stream management: counters, unacknowledged stanzas, resumption.
    sm: Link,
    /// XEP-0509: the config version advertised with this stream's SASL features.
    config_version: Option<String>,
    /// TLS 1.3 early data: what came as 0-RTT and what of it waits for the
    /// handshake (DESIGN.md rule 7).
    early: EarlyData,
    /// The driver's clock, unix seconds (FAST token expiry).
    now: u64,
    out: Vec<u8>,
    events: VecDeque<Event>,
}

impl ServerConnection {
    /// A new connection accepted on `listener`.
    pub fn new(config: Arc<ServerConfig>, listener: Listener, random: Box<dyn Random>) -> Self {
        let parser = StreamParser::new(config.limits);
        let mut conn = ServerConnection {
            transport: Transport::Plain,
            config,
            random,
            parser,
            state: State::AwaitHeader,
            domain: None,
            authenticated: None,
            bound: None,
            header_sent: false,
            restart_after_failure: false,
            sm: Link::default(),
            config_version: None,
            early: EarlyData::default(),
            now: 0,
            out: Vec::new(),
            events: VecDeque::new(),
        };
        if listener == Listener::DirectTls {
            match Transport::server(&conn.config.tls) {
                Ok(tls) => conn.transport = tls,
                Err(e) => conn.fail(StreamError::Tls(e)),
            }
        }
        conn
    }

    /// Sets the time, unix seconds; the driver calls it before handing input in.
    /// The core has no clock of its own.
    pub fn set_time(&mut self, unix_secs: u64) {
        self.now = unix_secs;
    }

    /// Feeds bytes read from the socket and processes everything they complete.
    pub fn handle_input(&mut self, data: &[u8]) {
        if matches!(self.state, State::Closed) {
            return;
        }
        self.receive(data);
        self.process();
        self.transport.flush(&mut self.out);
    }

    /// The socket reached end of file.
    pub fn handle_eof(&mut self) {
        if !matches!(self.state, State::Closed) {
            self.state = State::Closed;
            self.events.push_back(Event::Closed { error: None });
        }
    }

    /// The driver's login deadline passed: a client that is not bound by now gets
    /// `<connection-timeout/>` (RFC 6120 §4.9.3.4). So does one whose TLS handshake
    /// is still not complete: a 0-RTT login can be bound before the client's
    /// Finished, and a replayed first flight (which never sends one) must not keep
    /// a session.
    pub fn handle_timeout(&mut self) {
        if (self.bound.is_none() || self.transport.handshaking())
            && !matches!(self.state, State::Closed)
        {
            self.fail(StreamError::ConnectionTimeout);
        }
    }

    /// Whether the login is not over: no resource bound yet, or (TLS 1.3 0-RTT)
    /// the TLS handshake still waits for the client's Finished. The driver's login
    /// deadline ([`handle_timeout`](Self::handle_timeout)) runs until it is.
    pub fn is_logging_in(&self) -> bool {
        !self.is_closed() && (self.bound.is_none() || self.transport.handshaking())
    }

    /// Whether the client's stream header is awaited and no TLS handshake is under
    /// way: after connect on the STARTTLS port, after TLS completes, after a SASL
    /// success (RFC 6120 §4.3.1, §5.4.3.3, §6.4.6). The driver's stream-open
    /// deadline runs while it is.
    pub fn awaits_stream_header(&self) -> bool {
        matches!(self.state, State::AwaitHeader) && !self.transport.handshaking()
    }

    /// Whether a TLS handshake is under way (Direct TLS from connect, STARTTLS
    /// after `<proceed/>`; with 0-RTT until the client's Finished). The driver's
    /// TLS-handshake deadline runs while it is.
    pub fn is_tls_handshaking(&self) -> bool {
        !self.is_closed() && self.transport.handshaking()
    }

    /// The next event for the driver.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// The next event if it is a stanza: lets the driver take a run of stanzas
    /// together (to store a burst of messages in one write) without reordering
    /// them against other events.
    pub fn poll_stanza(&mut self) -> Option<Element> {
        match self.events.front() {
            Some(Event::Stanza(_)) => match self.events.pop_front() {
                Some(Event::Stanza(stanza)) => Some(stanza),
                _ => None,
            },
            _ => None,
        }
    }

    /// Bytes to write to the socket.
    pub fn take_output(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.out)
    }

    /// Whether output is waiting.
    pub fn has_output(&self) -> bool {
        !self.out.is_empty()
    }

    /// Sends a stanza routed to this session. Returns false if it was not written:
    /// the stream is closed, or (XEP-0198) the unacknowledged queue was full and
    /// the stream has just ended with `<resource-constraint/>`.
    pub fn send_stanza(&mut self, stanza: &Element) -> bool {
        if matches!(self.state, State::Closed) {
            return false;
        }
        self.write_element(stanza);
        self.transport.flush(&mut self.out);
        !matches!(self.state, State::Closed)
    }

    /// Closes the stream, with a stream error if given (`conflict`, `system-shutdown`).
    pub fn close(&mut self, error: Option<StreamError>) {
        if matches!(self.state, State::Closed) {
            return;
        }
        match error {
            Some(error) => self.fail(error),
            None => {
                // XEP-0198 §7: a clean close ends the session for good.
                self.sm.ended(None);
                self.write(b"</stream:stream>");
                self.transport.close(&mut self.out);
                self.state = State::Closed;
                self.events.push_back(Event::Closed { error: None });
            }
        }
    }

    /// The full JID, once bound.
    pub fn jid(&self) -> Option<&Jid> {
        self.bound.as_ref()
    }

    /// Whether the stream has ended.
    pub fn is_closed(&self) -> bool {
        matches!(self.state, State::Closed)
    }

    /// TLS facts, once the handshake is done.
    pub fn tls_info(&self) -> Option<TlsInfo> {
        self.transport.info()
    }

    fn receive(&mut self, data: &[u8]) {
        match self.transport.receive(data) {
            Ok(received) => {
                if received.early > 0 {
                    // Parser offsets are absolute: the early data ends this far in.
                    let fed = self.parser.offset() + self.parser.buffered() as u64;
                    self.early.received(fed + received.early as u64);
                }
                self.parser.feed(&received.plaintext);
                if received.peer_closed {
                    self.process();
                    self.handle_eof();
                }
            }
            Err(e) => self.fail(StreamError::Tls(e)),
        }
    }

    /// Parses and acts on every complete event, until input runs out or the driver
    /// must answer first.
    fn process(&mut self) {
        loop {
            if matches!(
                self.state,
                State::SaslCredentials(_)
                    | State::FastTokens(_)
                    | State::FastCount(..)
                    | State::Binding { .. }
                    | State::Bind2 { .. }
                    | State::Closed
            ) {
                return;
            }
            if self.sm.is_waiting() {
                // XEP-0198 §5: a resumption waits on the driver's registry.
                return;
            }
            let result = match self.next_event() {
                Ok(None) => return,
                Ok(Some(event)) => self.handle_event(event),
                Err(e) => Err(e.into()),
            };
            if let Err(e) = result {
                self.fail(e);
                return;
            }
        }
    }

    /// The next event to act on: while the TLS handshake is under way (TLS 1.3 early
    /// data), only what cannot be replayed into harm; the rest waits for the
    /// handshake (see [`early_data`]).
    fn next_event(&mut self) -> Result<Option<StreamEvent>, crate::xml::XmlError> {
        let stage = early_data::Stage {
            awaiting_header: matches!(self.state, State::AwaitHeader),
            ready_for_auth: matches!(self.state, State::Open) && self.authenticated.is_none(),
        };
        self.early
            .next(&mut self.parser, self.transport.handshaking(), stage)
    }

    fn handle_event(&mut self, event: StreamEvent) -> Result<(), StreamError> {
        match event {
            StreamEvent::Open(header) => {
                let restart = header.nested
                    && self.restart_after_failure
                    && matches!(self.state, State::Open);
                if !header.nested && matches!(self.state, State::AwaitHeader) || restart {
                    self.open_stream(&header)
                } else {
                    Err(StreamError::PolicyViolation(
                        "stream header inside an open stream".into(),
                    ))
                }
            }
            StreamEvent::Close => {
                self.close(None);
                Ok(())
            }
            StreamEvent::Element(el) => match self.state {
                State::AwaitHeader => Err(StreamError::PolicyViolation(
                    "expected a stream header".into(),
                )),
                _ => self.handle_element(el),
            },
        }
    }

    /// RFC 6120 §4.7: checks the client's stream header and answers with ours and
    /// the features of this stage.
    fn open_stream(&mut self, header: &StreamHeader) -> Result<(), StreamError> {
        if header.ns != ns::STREAM {
            return Err(StreamError::InvalidNamespace(header.ns.clone()));
        }
        if header.default_ns.as_deref() != Some(ns::CLIENT) {
            return Err(StreamError::InvalidNamespace(
                header.default_ns.clone().unwrap_or_default(),
            ));
        }
        // RFC 6120 §4.7.5: we speak 1.x only; no version means a pre-1.0 client.
        let major = header.attr("version").and_then(|v| v.split('.').next());
        if major.map(str::trim) != Some("1") {
            return Err(StreamError::UnsupportedVersion);
        }
        let domain = match header.attr("to") {
            Some(to) => prep_domain(to).map_err(|_| StreamError::HostUnknown(to.into()))?,
            None => self.default_domain(),
        };
        if !self.config.serves(&domain) || self.domain.as_ref().is_some_and(|d| *d != domain) {
            return Err(StreamError::HostUnknown(domain));
        }
        self.domain = Some(domain);
        let peer = header.attr("from").and_then(|f| Jid::parse(f).ok());
        self.write_header(peer.as_ref());
        self.restart_after_failure = false;
        self.state = State::Open;
        let channel_bindings = self.channel_binding_types();
        let stage = if !self.transport.is_tls() {
            Stage::PreTls
        } else if self.authenticated.is_none() {
            Stage::Auth {
                channel_bindings: &channel_bindings,
                zero_rtt: fast::zero_rtt(&self.config.tls),
            }
        } else {
            Stage::Bind {
                policy: self.config.conflict_policy,
            }
        };
        let auth_stage = matches!(stage, Stage::Auth { .. });
        let mut features = features::features(stage);
        if auth_stage {
            let version = features::config_version(&features);
            features.append_child(
                Element::new("config-version", ns::IAP)
                    .with_attr("scheme", "opaque")
                    .with_attr("value", version.clone()),
            );
            self.config_version = Some(version);
        }
        self.write_stream_level(&features);
        Ok(())
    }

    fn handle_element(&mut self, el: Element) -> Result<(), StreamError> {
        match (el.ns(), el.name()) {
            (ns::TLS, "starttls") => self.starttls(),
            (ns::SASL, "auth") => self.auth(&el),
            (ns::SASL2, "authenticate") => self.authenticate2(&el),
            (ns::SASL | ns::SASL2, "response") => self.sasl_response(&el),
            (ns::SASL2, "next") => self.upgrade_next(&el),
            (ns::SASL2, "task-data") => self.upgrade_task_data(&el),
            (ns::SASL | ns::SASL2, "abort") => {
                let profile = match std::mem::replace(&mut self.state, State::Open) {
                    State::SaslChallenge(exchange) => exchange.profile,
                    _ if el.ns() == ns::SASL2 => Profile::Sasl2(Box::default()),
                    _ => Profile::Sasl1,
                };
                self.sasl_failure(&profile, SaslError::Aborted);
                Ok(())
            }
            (ns::SM, _) => self.sm_element(&el),
            _ if is_stanza(&el) => self.stanza(el),
            (ns, name) => Err(StreamError::UnsupportedStanzaType(format!(
                "{{{ns}}}{name}"
            ))),
        }
    }

    /// RFC 6120 §5.4.2.3: `<proceed/>`, then TLS. The bytes after `<starttls/>` are
    /// the start of the ClientHello (stunt buffering, DESIGN.md rule 3): they go to
    /// rustls and never to an XML parser.
    fn starttls(&mut self) -> Result<(), StreamError> {
        if self.transport.is_tls() {
            return Err(StreamError::PolicyViolation("TLS is already active".into()));
        }
        self.write_element_in(&Element::new("proceed", ns::TLS), ns::STREAM);
        let early = self.parser.take_unparsed();
        self.transport = Transport::server(&self.config.tls).map_err(StreamError::Tls)?;
        self.parser = StreamParser::new(self.config.limits);
        self.state = State::AwaitHeader;
        self.header_sent = false;
        self.receive(&early);
        Ok(())
    }

    /// A stream restart: the bytes after the element that caused it go to a fresh
    /// parser, where the client's new stream header may already be waiting (rule 4).
    fn restart(&mut self) {
        let rest = self.parser.take_unparsed();
        self.early.restarted(self.parser.offset());
        self.parser = StreamParser::new(self.config.limits);
        self.parser.feed(&rest);
        self.state = State::AwaitHeader;
        self.header_sent = false;
    }

    fn stanza(&mut self, mut el: Element) -> Result<(), StreamError> {
        // XEP-0198 §4: every stanza taken from the client counts towards `h`, also
        // one answered with an error below: the server took responsibility for it.
        self.sm.count_inbound();
        let Some(bound) = self.bound.clone() else {
            if self.authenticated.is_some() && binding::is_bind_request(&el) {
                self.bind(&el);
                return Ok(());
            }
            // Not executed: before authentication (or binding) a stanza only earns a
            // `not-authorized` error (RFC 6120 §8.3.3.12; DESIGN.md rule 5).
            if let Some(reply) = error_reply(&el, StanzaError::NotAuthorized) {
                self.write_element(&reply);
            }
            return Ok(());
        };
        // RFC 6120 §8.1.2.1: the server stamps `from`; a client may only name itself.
        if let Some(from) = el.attr("from") {
            match Jid::parse(from) {
                Ok(jid) if jid == bound || jid == bound.to_bare() => {}
                _ => return Err(StreamError::InvalidFrom),
            }
        }
        el.set_attr("from", bound.to_string());
        if el.attr("to").is_some_and(|to| Jid::parse(to).is_err()) {
            if let Some(reply) = error_reply(&el, StanzaError::JidMalformed) {
                self.write_element(&reply);
            }
            return Ok(());
        }
        self.events.push_back(Event::Stanza(el));
        Ok(())
    }

    /// Ends the stream with an error: our header first if the client never got one
    /// (RFC 6120 §4.9.1.1), then the error, then the close.
    fn fail(&mut self, error: StreamError) {
        if matches!(self.state, State::Closed) {
            return;
        }
        if let Some(condition) = error.condition() {
            if !self.header_sent {
                self.write_header(None);
            }
            let mut err = Element::new("error", ns::STREAM)
                .with_child(Element::new(condition, ns::STREAM_ERRORS));
            let text = error.to_string();
            err.append_child(
                Element::new("text", ns::STREAM_ERRORS)
                    .with_attr("xml:lang", "en")
                    .with_text(text),
            );
            if let Some(application) = error.application_condition() {
                err.append_child(application);
            }
            self.write_stream_level(&err);
            self.write(b"</stream:stream>");
            self.transport.close(&mut self.out);
        } else {
            // A TLS failure: rustls has queued its alert; no XMPP can follow.
            self.transport.flush(&mut self.out);
        }
        self.state = State::Closed;
        self.sm.ended(Some(&error));
        self.events.push_back(Event::Closed { error: Some(error) });
    }

    fn write_header(&mut self, peer: Option<&Jid>) {
        let domain = self.domain.clone().unwrap_or_else(|| self.default_domain());
        let id = self.random.hex(16);
        let mut header = format!(
            "<?xml version='1.0'?><stream:stream xmlns='{}' xmlns:stream='{}' id='{id}' from='{}'",
            ns::CLIENT,
            ns::STREAM,
            escape_attr_value(&domain),
        );
        if let Some(peer) = peer {
            header.push_str(&format!(" to='{}'", escape_attr_value(&peer.to_string())));
        }
        header.push_str(" version='1.0' xml:lang='en'>");
        self.write(header.as_bytes());
        self.header_sent = true;
    }

    fn default_domain(&self) -> String {
        self.config.domains.first().cloned().unwrap_or_default()
    }

    fn nonce(&mut self) -> String {
        let mut bytes = [0u8; 18];
        self.random.fill(&mut bytes);
        BASE64.encode(bytes)
    }

    /// Writes an element of the streams namespace (`<stream:features/>`,
    /// `<stream:error/>`) with the `stream:` prefix our header declares.
    fn write_stream_level(&mut self, el: &Element) {
        let mut bytes = format!("<stream:{}>", el.name()).into_bytes();
        for child in el.children() {
            child.write_to(&mut bytes, ns::STREAM);
        }
        bytes.extend_from_slice(format!("</stream:{}>", el.name()).as_bytes());
        self.write(&bytes);
    }

    fn write_element(&mut self, el: &Element) {
        // XEP-0198 §4: a stanza to the client is counted and kept until acknowledged.
        match self.sm.track(el) {
            Ok(request) => {
                self.write_element_in(el, ns::CLIENT);
                if request {
                    self.write_element_in(&sm::request(), ns::STREAM);
                }
            }
            Err(e) => self.fail(e),
        }
    }

    fn write_element_in(&mut self, el: &Element, parent_ns: &str) {
        let bytes = el.to_bytes(parent_ns);
        self.write(&bytes);
    }

    /// RFC 5929 `tls-server-end-point` data of the certificate this connection was
    /// served (chosen by its SNI).
    fn end_point_hash(&self) -> Option<&[u8]> {
        self.config
            .end_point_hashes
            .for_server_name(self.transport.server_name())
    }

    fn write(&mut self, bytes: &[u8]) {
        self.transport.send(bytes, &mut self.out);
    }
}
