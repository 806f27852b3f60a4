//! One client-to-server connection, as a sans-IO state machine.

use std::collections::VecDeque;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;

use crate::error::StreamError;
use crate::jid::{Jid, prep_domain, prep_local, prep_resource};
use crate::random::Random;
use crate::sasl::{
    ChannelBindingInfo, ChannelBindingType, HtMechanism, HtServer, HtTokenKey, Mechanism,
    SaslError, ServerSession, Step, StoredCredentials, ht_token_string,
};
use crate::server::config::ServerConfig;
use crate::server::early_data::{self, EarlyData};
use crate::server::fast::{self, FastTokenRecord};
use crate::server::features::{self, Stage};
use crate::server::sasl2::{self, Authenticate};
use crate::server::sm::{self, Link, Resumption, StreamManagement, Via};
use crate::stanza::{StanzaError, error_reply, is_stanza};
use crate::transport::{TlsInfo, Transport};
use crate::xml::{Element, StreamEvent, StreamHeader, StreamParser, escape_attr_value, ns};

/// Which listener the connection came in on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Listener {
    /// Plaintext first; TLS through `<starttls/>` (RFC 6120 §5), required before auth.
    StartTls,
    /// TLS from the first byte (XEP-0368).
    DirectTls,
}

/// What the core asks of, or tells, its driver.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Event {
    /// Look up the credentials of `username@domain` and answer with
    /// [`ServerConnection::provide_credentials`]. Input is held until then.
    NeedCredentials {
        /// The prepared localpart.
        username: String,
        /// The stream's domain.
        domain: String,
    },
    /// SASL succeeded for `jid` (bare).
    Authenticated {
        /// The account.
        jid: Jid,
        /// The mechanism used (a FAST login names its HT-* mechanism).
        mechanism: &'static str,
        /// The SASL2 user-agent id (XEP-0388 §2.3), if the client sent one.
        user_agent: Option<String>,
    },
    /// The client asks to bind a resource (`None`: the server picks). Answer with
    /// [`ServerConnection::complete_bind`]; input is held until then.
    BindRequest {
        /// The authenticated account.
        jid: Jid,
        /// The prepared resource the client asked for.
        resource: Option<String>,
        /// Bind2 asked for message carbons inline (XEP-0386 §4, XEP-0280 §4): once
        /// bound, the driver turns them on for the resource. Nothing goes back in
        /// `<bound/>`; the success of the bind is the answer.
        carbons: bool,
    },
    /// A stanza from the bound session, `from` stamped with its full JID, for routing.
    Stanza(Element),
    /// Look up the unexpired FAST tokens of `username@domain` and answer with
    /// [`ServerConnection::provide_fast_tokens`] (XEP-0484 §3.4).
    NeedFastTokens {
        /// The prepared localpart.
        username: String,
        /// The stream's domain.
        domain: String,
    },
    /// Record `count` for the token with this key if it is greater than every count
    /// seen before, atomically, and answer [`ServerConnection::provide_fast_count`]
    /// with whether it was: the replay check of XEP-0484 §3.4.
    FastCount {
        /// The prepared localpart.
        username: String,
        /// The stream's domain.
        domain: String,
        /// The token's key (SHA-256 of the token).
        key: [u8; 32],
        /// The count the client sent.
        count: u64,
    },
    /// Store a newly issued FAST token's key (XEP-0484 §3.3) before the output that
    /// carries the token is written.
    IssueFastToken {
        /// The account.
        jid: Jid,
        /// SHA-256 of the token.
        key: [u8; 32],
        /// The HT mechanism it is for.
        mechanism: String,
        /// Expiry, unix seconds.
        expires_at: u64,
        /// The SASL2 user-agent id it was issued to.
        user_agent: Option<String>,
    },
    /// A FAST login used this token: the installation's older tokens can go
    /// (XEP-0484 §3.5), since it has shown it holds this one.
    FastTokenUsed {
        /// The account.
        jid: Jid,
        /// SHA-256 of the token.
        key: [u8; 32],
        /// The SASL2 user-agent id of the login.
        user_agent: Option<String>,
    },
    /// Delete this token: the client invalidated it (XEP-0484 §3.6).
    RevokeFastToken {
        /// The account.
        jid: Jid,
        /// SHA-256 of the token.
        key: [u8; 32],
    },
    /// XEP-0198 stream management is on; with a `resume_id` the session may be
    /// resumed under that SM-ID: register it so a later `ResumeRequest` finds it.
    StreamManagementEnabled {
        /// The SM-ID, when resumption was granted.
        resume_id: Option<String>,
    },
    /// The authenticated client asks to resume session `previd` (XEP-0198 §5).
    /// Answer with [`ServerConnection::complete_resume`]; input is held until then.
    ResumeRequest {
        /// The authenticated account (bare): only its own sessions may be resumed.
        jid: Jid,
        /// The SM-ID the client names.
        previd: String,
    },
    /// The stream is over: flush the output, then close the socket.
    Closed {
        /// Why, when it ended with an error.
        error: Option<StreamError>,
    },
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

    /// The next event for the driver.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Bytes to write to the socket.
    pub fn take_output(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.out)
    }

    /// Whether output is waiting.
    pub fn has_output(&self) -> bool {
        !self.out.is_empty()
    }

    /// Answers [`Event::NeedCredentials`]: `None` for no such account.
    pub fn provide_credentials(&mut self, credentials: Option<StoredCredentials>) {
        let State::SaslCredentials(mut exchange) = std::mem::replace(&mut self.state, State::Open)
        else {
            return;
        };
        let nonce = self.nonce();
        let step = exchange.session.credentials(credentials.as_ref(), &nonce);
        self.sasl_continue(exchange, step);
        self.process();
        self.transport.flush(&mut self.out);
    }

    /// Answers [`Event::BindRequest`] with the full JID bound, or the stanza error
    /// (`conflict` under the refuse policy).
    pub fn complete_bind(&mut self, result: Result<Jid, StanzaError>) {
        let id = match std::mem::replace(&mut self.state, State::Open) {
            State::Binding { id } => id,
            State::Bind2 {
                additional_data,
                extra,
                sm_enable,
            } => {
                // XEP-0386 §3: on success the full JID is the authorization identifier;
                // if binding failed the session is still authenticated and the
                // client may bind the RFC 6120 way.
                let identity = result
                    .as_ref()
                    .ok()
                    .or(self.authenticated.as_ref())
                    .cloned();
                let bound = result.is_ok();
                self.bound = result.ok();
                // Inline requests run once the resource is bound; their results go
                // inside <bound/>.
                let inline = bound.then(|| {
                    sm_enable
                        .as_ref()
                        .map(|enable| self.enable_sm(enable))
                        .into_iter()
                        .collect::<Vec<_>>()
                });
                if let Some(identity) = identity {
                    let success =
                        sasl2::success(additional_data.as_deref(), &identity, inline, extra);
                    self.write_element_in(&success, ns::STREAM);
                }
                self.process();
                self.transport.flush(&mut self.out);
                return;
            }
            other => {
                self.state = other;
                return;
            }
        };
        let request = Element::new("iq", ns::CLIENT)
            .with_attr("type", "set")
            .with_attr("id", id.clone());
        match result {
            Ok(jid) => {
                let bind = Element::new("bind", ns::BIND)
                    .with_child(Element::new("jid", ns::BIND).with_text(jid.to_string()));
                let reply = Element::new("iq", ns::CLIENT)
                    .with_attr("type", "result")
                    .with_attr("id", id)
                    .with_child(bind);
                self.bound = Some(jid);
                self.write_element(&reply);
            }
            Err(error) => {
                if let Some(reply) = error_reply(&request, error) {
                    self.write_element(&reply);
                }
            }
        }
        self.process();
        self.transport.flush(&mut self.out);
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

    /// RFC 6120 §6.4.2: the client picks a mechanism.
    fn auth(&mut self, el: &Element) -> Result<(), StreamError> {
        if self.early.came_early() {
            // DESIGN.md rule 7: never a password in early data, which is neither
            // forward-secret nor safe from replay.
            let error = SaslError::MalformedRequest("no password in TLS early data".into());
            self.sasl_failure(&Profile::Sasl1, error);
            return Ok(());
        }
        let initial = decode_sasl_payload(&el.text());
        self.start_sasl(el.attr("mechanism"), initial, Profile::Sasl1)
    }

    /// XEP-0388 §2.3: SASL2 `<authenticate/>`, with its inline requests.
    fn authenticate2(&mut self, el: &Element) -> Result<(), StreamError> {
        let Some(request) = Authenticate::parse(el) else {
            let error = SaslError::MalformedRequest("no mechanism".into());
            self.write_element_in(&sasl2::failure(&error, None), ns::STREAM);
            return Ok(());
        };
        if self.early.came_early() && HtMechanism::from_name(&request.mechanism).is_none() {
            // DESIGN.md rule 7: never a password in early data, which is neither
            // forward-secret nor safe from replay; only a FAST token with a count.
            let error = SaslError::MalformedRequest("no password in TLS early data".into());
            self.write_element_in(&sasl2::failure(&error, None), ns::STREAM);
            return Ok(());
        }
        if early_data::needs_count(&request, self.early.came_early()) {
            // XEP-0484 §3.4: without a count nothing tells a replay of the early
            // data from the client's own request.
            let error = SaslError::MalformedRequest(
                "a FAST authentication in TLS early data needs a count".into(),
            );
            self.write_element_in(&sasl2::failure(&error, None), ns::STREAM);
            return Ok(());
        }
        // XEP-0509 §3.2: a request pipelined against another configuration is
        // refused without prejudice: no failed login is counted, and the client,
        // which has the new features by now, retries.
        if request
            .config_version
            .as_ref()
            .is_some_and(|v| Some(v) != self.config_version.as_ref())
        {
            let mismatch = Element::new("config-version-mismatch", ns::IAP);
            let failure = sasl2::failure(&SaslError::Aborted, Some(mismatch));
            self.write_element_in(&failure, ns::STREAM);
            return Ok(());
        }
        let initial = match &request.initial_response {
            Some(text) => decode_sasl_payload(text).map(|d| Some(d.unwrap_or_default())),
            None => Ok(None),
        };
        let mechanism = request.mechanism.clone();
        self.start_sasl(Some(&mechanism), initial, Profile::Sasl2(Box::new(request)))
    }

    /// Starts an exchange in either profile.
    fn start_sasl(
        &mut self,
        mechanism: Option<&str>,
        initial: Result<Option<Vec<u8>>, SaslError>,
        profile: Profile,
    ) -> Result<(), StreamError> {
        if self.authenticated.is_some() {
            return Err(StreamError::PolicyViolation("already authenticated".into()));
        }
        if !matches!(self.state, State::Open) {
            self.state = State::Open;
            let error = SaslError::MalformedRequest("exchange in progress".into());
            self.sasl_failure(&profile, error);
            return Ok(());
        }
        if !self.transport.is_tls() {
            // RFC 6120 §6.5.3: no authentication before TLS, on either port.
            let failure = Element::new("failure", profile.ns())
                .with_child(Element::new("encryption-required", ns::SASL));
            self.write_element_in(&failure, ns::STREAM);
            return Ok(());
        }
        let bindings = self
            .transport
            .channel_bindings(self.config.end_point_hash.as_deref());
        let offered: Vec<_> = bindings.iter().map(|(t, _)| *t).collect();
        if let Profile::Sasl2(request) = &profile
            && let Some(ht) = mechanism
                .and_then(HtMechanism::from_name)
                .filter(|m| fast::offered(&offered).contains(m))
        {
            match initial {
                Ok(initial) => self.start_fast(ht, initial, (**request).clone()),
                Err(e) => self.sasl_failure(&profile, e),
            }
            return Ok(());
        }
        let Some(mechanism) = mechanism
            .and_then(Mechanism::from_name)
            .filter(|m| features::offered_mechanisms(&offered).contains(m))
        else {
            self.sasl_failure(&profile, SaslError::InvalidMechanism);
            return Ok(());
        };
        let initial = match initial {
            Ok(initial) => initial,
            Err(e) => {
                self.sasl_failure(&profile, e);
                return Ok(());
            }
        };
        let cb = ChannelBindingInfo {
            plus_advertised: !offered.is_empty(),
            data: bindings,
        };
        match ServerSession::start(mechanism, initial.as_deref(), &cb) {
            Ok((mut session, step)) => {
                session.set_decoy_secret(&self.config.decoy_secret, self.config.scram_iterations);
                // XEP-0474: the SCRAM server-first carries a hash of what this profile
                // advertised, which is the same list for SASL1 and SASL2 here and
                // never includes FAST's HT-* mechanisms (advertised apart, inside
                // <fast/>), so clients that hash what they saw agree with us.
                let names: Vec<&str> = features::offered_mechanisms(&offered)
                    .into_iter()
                    .map(Mechanism::name)
                    .collect();
                let cb_names: Vec<&str> = offered.iter().map(|t| t.name()).collect();
                session.set_downgrade_protection(&names, &cb_names);
                let exchange = SaslExchange {
                    session,
                    mechanism,
                    username: String::new(),
                    profile,
                };
                self.sasl_continue(exchange, Ok(step));
            }
            Err(e) => self.sasl_failure(&profile, e),
        }
        Ok(())
    }

    fn sasl_response(&mut self, el: &Element) -> Result<(), StreamError> {
        let State::SaslChallenge(mut exchange) = std::mem::replace(&mut self.state, State::Open)
        else {
            let profile = if el.ns() == ns::SASL2 {
                Profile::Sasl2(Box::default())
            } else {
                Profile::Sasl1
            };
            let error = SaslError::MalformedRequest("no exchange in progress".into());
            self.sasl_failure(&profile, error);
            return Ok(());
        };
        let step = match decode_sasl_payload(&el.text()) {
            Ok(data) => exchange.session.respond(&data.unwrap_or_default()),
            Err(e) => Err(e),
        };
        self.sasl_continue(exchange, step);
        Ok(())
    }

    /// Acts on one SASL step: a challenge to send, credentials to fetch, or the end.
    fn sasl_continue(&mut self, mut exchange: SaslExchange, step: Result<Step, SaslError>) {
        let domain = self.domain.clone().unwrap_or_else(|| self.default_domain());
        match step {
            Ok(Step::Challenge(data)) => {
                let challenge = Element::new("challenge", exchange.profile.ns())
                    .with_text(encode_sasl_payload(&data));
                self.write_element_in(&challenge, ns::STREAM);
                self.state = State::SaslChallenge(exchange);
            }
            Ok(Step::NeedCredentials { username, authzid }) => {
                let Ok(username) = prep_local(&username) else {
                    // No account can have this name; fail as for a wrong password.
                    let nonce = self.nonce();
                    let step = exchange.session.credentials(None, &nonce);
                    return self.sasl_continue(exchange, step);
                };
                // RFC 6120 §6.4.6: an authzid must be the account's own bare JID.
                let own = Jid::bare(&username, &domain).ok();
                if authzid.is_some_and(|a| Jid::parse(&a).ok() != own) {
                    self.state = State::Open;
                    return self.sasl_failure(&exchange.profile, SaslError::InvalidAuthzid);
                }
                exchange.username = username.clone();
                self.events
                    .push_back(Event::NeedCredentials { username, domain });
                self.state = State::SaslCredentials(exchange);
            }
            Ok(Step::Success { additional_data }) => {
                let Ok(jid) = Jid::bare(&exchange.username, &domain) else {
                    self.state = State::Open;
                    return self.sasl_failure(&exchange.profile, SaslError::NotAuthorized);
                };
                let user_agent = match &exchange.profile {
                    Profile::Sasl2(request) => request.user_agent.clone(),
                    Profile::Sasl1 => None,
                };
                self.events.push_back(Event::Authenticated {
                    jid: jid.clone(),
                    mechanism: exchange.mechanism.name(),
                    user_agent,
                });
                self.authenticated = Some(jid.clone());
                match exchange.profile {
                    Profile::Sasl1 => {
                        let text = additional_data
                            .as_deref()
                            .map(encode_sasl_payload)
                            .unwrap_or_default();
                        self.write_element_in(
                            &Element::new("success", ns::SASL).with_text(text),
                            ns::STREAM,
                        );
                        self.restart();
                    }
                    Profile::Sasl2(request) => self.sasl2_success(jid, *request, additional_data),
                }
            }
            Err(e) => {
                self.state = State::Open;
                self.sasl_failure(&exchange.profile, e);
            }
        }
    }

    /// XEP-0388 §2.6.1: SASL2 success, with no stream restart: a FAST token if one
    /// was asked for, then inline Bind2 if asked for, then `<success/>`.
    fn sasl2_success(&mut self, jid: Jid, request: Authenticate, additional_data: Option<Vec<u8>>) {
        let mut extra: Vec<Element> = self.issue_fast_token(&jid, &request).into_iter().collect();
        // XEP-0198 §5 inline in SASL2: a resumption is tried before anything else;
        // the `<success/>` waits for the driver's answer (`complete_resume`).
        if let Some(resume) = &request.sm_resume {
            match self.sm.check_resume(resume, &self.config.stream_management) {
                Ok((previd, h)) => {
                    let via = Via::Sasl2 {
                        request: Box::new(request),
                        additional_data,
                        extra,
                    };
                    let event = self.sm.start_resume(jid.to_bare(), previd, h, via);
                    self.events.push_back(event);
                    self.state = State::Open;
                    return;
                }
                Err(failed) => extra.push(failed),
            }
        }
        self.sasl2_bind(jid, request, additional_data, extra);
    }

    /// The rest of a SASL2 success: inline Bind2 if asked for, else `<success/>`.
    fn sasl2_bind(
        &mut self,
        jid: Jid,
        request: Authenticate,
        additional_data: Option<Vec<u8>>,
        extra: Vec<Element>,
    ) {
        match request.bind {
            Some(tag) => {
                let sm_enable = request.bind_sm_enable.clone();
                let carbons = request.bind_carbons;
                self.bind2(
                    jid,
                    tag.as_deref(),
                    additional_data,
                    extra,
                    sm_enable,
                    carbons,
                )
            }
            None => {
                let success = sasl2::success(additional_data.as_deref(), &jid, None, extra);
                self.write_element_in(&success, ns::STREAM);
                self.state = State::Open;
            }
        }
    }

    /// XEP-0484 §3.3: a fresh token for a mechanism we offer, when requested. The
    /// driver stores its hash (and the client's user-agent id, so that §3.5
    /// rotation can retire the older tokens of the same installation).
    fn issue_fast_token(&mut self, jid: &Jid, request: &Authenticate) -> Option<Element> {
        let requested = request.fast.request_token.as_deref()?;
        let offered = fast::offered(&self.channel_binding_types());
        let mechanism = offered.into_iter().find(|m| m.name() == requested)?;
        let mut random = [0u8; 32];
        self.random.fill(&mut random);
        let token = ht_token_string(&random).ok()?;
        let key = HtTokenKey::from_token(&token)?;
        let expires_at = self.now + fast::TOKEN_LIFETIME_SECS;
        self.events.push_back(Event::IssueFastToken {
            jid: jid.clone(),
            key: *key.as_bytes(),
            mechanism: mechanism.name().to_owned(),
            expires_at,
            user_agent: request.user_agent.clone(),
        });
        Some(fast::token_element(&token, expires_at))
    }

    /// The channel-binding types this stream offers: in 0-RTT, those the finished
    /// handshake will have, so that the features (and their config version) are the
    /// same as on any other login.
    fn channel_binding_types(&self) -> Vec<ChannelBindingType> {
        self.transport
            .offered_channel_bindings(self.config.end_point_hash.as_deref())
    }

    /// XEP-0484 §3.4: authentication with a FAST token. The driver looks up the
    /// account's tokens; the core checks the HMAC.
    fn start_fast(
        &mut self,
        mechanism: HtMechanism,
        initial: Option<Vec<u8>>,
        request: Authenticate,
    ) {
        let profile = Profile::Sasl2(Box::new(request.clone()));
        let cb = ChannelBindingInfo {
            plus_advertised: true,
            data: self
                .transport
                .channel_bindings(self.config.end_point_hash.as_deref()),
        };
        let (server, username) = match HtServer::start(mechanism, &initial.unwrap_or_default(), &cb)
        {
            Ok(started) => started,
            Err(e) => return self.sasl_failure(&profile, e),
        };
        let Ok(username) = prep_local(&username) else {
            return self.sasl_failure(&profile, SaslError::NotAuthorized);
        };
        let domain = self.domain.clone().unwrap_or_else(|| self.default_domain());
        self.events.push_back(Event::NeedFastTokens {
            username: username.clone(),
            domain,
        });
        self.state = State::FastTokens(FastExchange {
            server,
            username,
            request,
        });
    }

    /// Answers [`Event::NeedFastTokens`] with the account's unexpired tokens.
    pub fn provide_fast_tokens(&mut self, tokens: Vec<FastTokenRecord>) {
        let State::FastTokens(exchange) = std::mem::replace(&mut self.state, State::Open) else {
            return;
        };
        let mechanism = exchange.server.mechanism().name();
        let found = tokens
            .iter()
            .filter(|t| t.mechanism == mechanism)
            .find(|t| HtTokenKey::from_stored(&t.key).is_some_and(|k| exchange.server.verify(&k)))
            .map(|t| t.key);
        match (found, exchange.request.fast.count) {
            (None, _) => {
                let profile = Profile::Sasl2(Box::new(exchange.request));
                self.sasl_failure(&profile, SaslError::NotAuthorized);
            }
            // §3.4: a count must be new; the store checks and records it atomically.
            (Some(key), Some(count)) => {
                let domain = self.domain.clone().unwrap_or_else(|| self.default_domain());
                self.events.push_back(Event::FastCount {
                    username: exchange.username.clone(),
                    domain,
                    key,
                    count,
                });
                self.state = State::FastCount(exchange, key);
            }
            (Some(key), None) => self.fast_success(exchange, key),
        }
        self.process();
        self.transport.flush(&mut self.out);
    }

    /// Answers [`Event::FastCount`]: whether the count was greater than any seen.
    pub fn provide_fast_count(&mut self, fresh: bool) {
        let State::FastCount(exchange, key) = std::mem::replace(&mut self.state, State::Open)
        else {
            return;
        };
        if fresh {
            self.fast_success(exchange, key);
        } else {
            let profile = Profile::Sasl2(Box::new(exchange.request));
            self.sasl_failure(&profile, SaslError::NotAuthorized);
        }
        self.process();
        self.transport.flush(&mut self.out);
    }

    fn fast_success(&mut self, exchange: FastExchange, key: [u8; 32]) {
        let domain = self.domain.clone().unwrap_or_else(|| self.default_domain());
        let (Ok(jid), Some(token_key)) = (
            Jid::bare(&exchange.username, &domain),
            HtTokenKey::from_stored(&key),
        ) else {
            let profile = Profile::Sasl2(Box::new(exchange.request));
            return self.sasl_failure(&profile, SaslError::NotAuthorized);
        };
        let additional = exchange.server.success_data(&token_key);
        self.events.push_back(Event::Authenticated {
            jid: jid.clone(),
            mechanism: exchange.server.mechanism().name(),
            user_agent: exchange.request.user_agent.clone(),
        });
        self.events.push_back(if exchange.request.fast.invalidate {
            Event::RevokeFastToken {
                jid: jid.clone(),
                key,
            }
        } else {
            Event::FastTokenUsed {
                jid: jid.clone(),
                key,
                user_agent: exchange.request.user_agent.clone(),
            }
        });
        self.authenticated = Some(jid.clone());
        self.sasl2_success(jid, exchange.request, Some(additional));
    }

    /// XEP-0386 §3: inline Bind2. The resource is the client's tag and a random part;
    /// the driver binds it (under the conflict policy, which a random part makes moot)
    /// and the SASL2 `<success/>` reports the full JID.
    fn bind2(
        &mut self,
        jid: Jid,
        tag: Option<&str>,
        additional_data: Option<Vec<u8>>,
        extra: Vec<Element>,
        sm_enable: Option<Element>,
        carbons: bool,
    ) {
        let random_part = self.random.hex(4);
        let resource =
            prep_resource(&sasl2::bind2_resource(tag, &random_part)).unwrap_or(random_part);
        self.events.push_back(Event::BindRequest {
            jid,
            resource: Some(resource),
            carbons,
        });
        self.state = State::Bind2 {
            additional_data,
            extra,
            sm_enable,
        };
    }

    /// RFC 6120 §6.4.5 / XEP-0388 §2.6.2: `<failure/>`. The client may retry on this
    /// stream; if it had pipelined a SASL1 restart, that header is taken as a restart
    /// of the unauthenticated stream (DESIGN.md rule 5).
    fn sasl_failure(&mut self, profile: &Profile, error: SaslError) {
        let failure = match profile {
            Profile::Sasl2(_) => sasl2::failure(&error, None),
            Profile::Sasl1 => {
                let mut failure = sasl_failure_element(error.condition());
                // A malformed request says what was wrong (RFC 6120 §6.4.5 allows
                // <text/>); other failures say nothing an attacker could learn from.
                if let SaslError::MalformedRequest(why) = &error {
                    failure.append_child(
                        Element::new("text", ns::SASL)
                            .with_attr("xml:lang", "en")
                            .with_text(why.clone()),
                    );
                }
                failure
            }
        };
        self.write_element_in(&failure, ns::STREAM);
        self.restart_after_failure = true;
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
            if self.authenticated.is_some() && is_bind_request(&el) {
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

    /// RFC 6120 §7.6: a bind request; the driver decides on the resource.
    fn bind(&mut self, iq: &Element) {
        let id = iq.attr("id").unwrap_or_default().to_string();
        let requested = iq
            .get_child("bind", ns::BIND)
            .and_then(|b| b.get_child("resource", ns::BIND))
            .map(|r| r.text())
            .filter(|r| !r.is_empty());
        let resource = match requested.map(|r| prep_resource(&r)).transpose() {
            Ok(resource) => resource,
            Err(_) => {
                if let Some(reply) = error_reply(iq, StanzaError::BadRequest) {
                    self.write_element(&reply);
                }
                return;
            }
        };
        let Some(jid) = self.authenticated.clone() else {
            return;
        };
        self.events.push_back(Event::BindRequest {
            jid,
            resource,
            carbons: false,
        });
        self.state = State::Binding { id };
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

    fn write(&mut self, bytes: &[u8]) {
        self.transport.send(bytes, &mut self.out);
    }
}

/// XEP-0198 stream management: the connection's side. The logic is in [`sm`].
impl ServerConnection {
    /// Answers [`Event::ResumeRequest`] with the session's full JID and its SM state
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
    /// [`Event::StreamManagementEnabled`] as a top-level `<enable/>` would.
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
    fn sm_element(&mut self, el: &Element) -> Result<(), StreamError> {
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

fn is_bind_request(el: &Element) -> bool {
    el.name() == "iq" && el.attr("type") == Some("set") && el.get_child("bind", ns::BIND).is_some()
}

fn sasl_failure_element(condition: &str) -> Element {
    Element::new("failure", ns::SASL).with_child(Element::new(condition, ns::SASL))
}

/// RFC 6120 §6.4.2: no text is "no initial response", `=` is an empty one.
fn decode_sasl_payload(text: &str) -> Result<Option<Vec<u8>>, SaslError> {
    match text.trim() {
        "" => Ok(None),
        "=" => Ok(Some(Vec::new())),
        b64 => BASE64
            .decode(b64)
            .map(Some)
            .map_err(|_| SaslError::IncorrectEncoding),
    }
}

fn encode_sasl_payload(data: &[u8]) -> String {
    if data.is_empty() {
        "=".into()
    } else {
        BASE64.encode(data)
    }
}
