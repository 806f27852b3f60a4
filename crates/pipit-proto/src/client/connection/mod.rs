//! The client side of a c2s login, as a sans-IO state machine.

use std::collections::VecDeque;

use crate::client::config::{ClientConfig, KnownServer, Mode};
use crate::client::error::ClientError;
use crate::client::sm::{ClientSm, SmSession};
use crate::jid::Jid;
use crate::random::Random;
use crate::sasl::{HtMechanism, ScramClient};
use crate::stanza::is_stanza;
use crate::transport::{TlsInfo, Transport};
use crate::xml::{Element, StreamEvent, StreamParser, escape_attr_value, ns};

mod binding;
mod fast_login;
mod sasl;
mod upgrade;

/// What the client tells its driver.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum ClientEvent {
    /// The session is usable: this full JID is bound.
    Bound(Jid),
    /// A stanza from the server.
    Stanza(Element),
    /// The stream is over: flush the output, then close the socket.
    Closed {
        /// Why, when it ended badly.
        error: Option<ClientError>,
    },
}

/// Where the login stands. Server answers arrive in the order requests were sent,
/// however many were pipelined, so each state names the next answer expected.
enum State {
    /// Plaintext stream: header, features, `<proceed/>`.
    PreTls,
    /// TLS handshake under way.
    TlsHandshake,
    /// TLS up, the post-TLS header sent: waiting for the SASL features.
    Features,
    /// `<auth/>` (or a `<response/>`) sent.
    Sasl(Sasl),
    /// SASL2 succeeded into an XEP-0480 upgrade task for this hash.
    Upgrading(crate::sasl::ScramHash),
    /// SASL succeeded; waiting for the restarted stream's features.
    Restarted,
    /// Bind request sent.
    Binding,
    /// The session is bound.
    Bound,
    /// Finished.
    Closed,
}

enum Sasl {
    Plain,
    /// Client-first sent; the challenge is next.
    ScramFirst(ScramClient),
    /// Client-final sent; success with the server signature is next.
    ScramFinal(ScramClient),
    /// A FAST token was used; success carries the server's proof.
    Fast {
        mechanism: HtMechanism,
        token: String,
        cb_data: Vec<u8>,
    },
}

const BIND_ID: &str = "bind-1";

/// The client side of one c2s connection: bytes in, bytes and [`ClientEvent`]s out.
///
/// Call order for the driver: write [`take_output`](Self::take_output) to the socket
/// right after [`new`](Self::new) (the client speaks first); then for every read,
/// [`handle_input`](Self::handle_input), drain [`poll_event`](Self::poll_event) and
/// write the output. A driver that counts round trips counts one each time it has
/// written and must wait for the server before the session is bound.
pub struct ClientConnection {
    config: ClientConfig,
    random: Box<dyn Random>,
    transport: Transport,
    /// Stunt buffering: TLS started (its ClientHello already sent) before
    /// `<proceed/>` arrived; the server's bytes stay plaintext until then.
    early_tls: Option<Transport>,
    parser: StreamParser,
    state: State,
    /// Pipelined ahead of the answers that would normally trigger them.
    sent_restart: bool,
    sent_bind: bool,
    /// Stanzas the driver sent before the bind request went out.
    queued: Vec<Element>,
    /// A config-version mismatch has been retried once already.
    iap_retried: bool,
    /// Stanzas sent ahead of a login that has not succeeded yet.
    in_flight: Vec<Element>,
    learned: KnownServer,
    /// The SASL mechanism used, once `<auth/>` has gone out (FAST: its HT-* name).
    mechanism: Option<&'static str>,
    /// The FAST mechanism the last `<authenticate/>` asked a token for.
    token_requested: Option<&'static str>,
    /// A FAST login written as TLS 1.3 early data, until the handshake says whether
    /// the server took it.
    early: Option<Sasl>,
    /// The server took the login sent as early data.
    early_accepted: bool,
    /// XEP-0198, asked for inline with the login.
    sm: ClientSm,
    out: Vec<u8>,
    events: VecDeque<ClientEvent>,
}

impl ClientConnection {
    /// Starts a login; the first flight is ready in [`take_output`](Self::take_output).
    pub fn new(config: ClientConfig, random: Box<dyn Random>) -> Result<Self, ClientError> {
        let mut conn = ClientConnection {
            transport: Transport::Plain,
            early_tls: None,
            parser: StreamParser::new(Default::default()),
            state: State::PreTls,
            sent_restart: false,
            sent_bind: false,
            queued: Vec::new(),
            iap_retried: false,
            in_flight: Vec::new(),
            learned: KnownServer::default(),
            mechanism: None,
            token_requested: None,
            early: None,
            early_accepted: false,
            sm: ClientSm::default(),
            out: Vec::new(),
            events: VecDeque::new(),
            config,
            random,
        };
        if conn.config.mode == Mode::SmResume && conn.resumable().is_none() {
            return Err(ClientError::NoSmSession);
        }
        match conn.config.mode {
            Mode::Direct | Mode::Sasl2 | Mode::Fast | Mode::Fast0Rtt | Mode::SmResume => {
                conn.transport = conn.new_tls()?;
                conn.state = State::TlsHandshake;
                if matches!(conn.config.mode, Mode::Fast0Rtt | Mode::SmResume) {
                    conn.send_early_login();
                }
            }
            Mode::Lockstep => conn.write_header(true),
            Mode::Pipelined | Mode::Stunt => {
                // RFC 6120 §5.4.2.1 lets the client send <starttls/> without waiting
                // for the features (DESIGN.md rule 1).
                conn.write_header(true);
                conn.write(starttls_element().to_bytes(ns::STREAM).as_slice());
                if conn.config.mode == Mode::Stunt {
                    // The ClientHello goes in the same packet (rule 2).
                    let mut tls = conn.new_tls()?;
                    tls.flush(&mut conn.out);
                    conn.early_tls = Some(tls);
                }
            }
        }
        conn.transport.flush(&mut conn.out);
        Ok(conn)
    }

    /// Feeds bytes read from the socket and acts on everything they complete.
    pub fn handle_input(&mut self, data: &[u8]) {
        if matches!(self.state, State::Closed) {
            return;
        }
        self.receive(data);
        self.process();
        self.transport.flush(&mut self.out);
    }

    /// Bytes that arrive after [`close`](Self::close): the stream is over, but TLS
    /// still reads them, so the session tickets a TLS 1.3 server sends after the
    /// handshake (RFC 8446 §4.6.1) are kept for the next login's resumption and
    /// 0-RTT. A client that closes right after a 0-RTT login would otherwise
    /// leave before they came, and its next login would take a round trip more.
    /// Whatever else arrives (the server's closing tag) is dropped.
    pub fn handle_input_after_close(&mut self, data: &[u8]) {
        if matches!(self.state, State::Closed) {
            let _ = self.transport.receive(data);
        }
    }

    /// The socket reached end of file.
    pub fn handle_eof(&mut self) {
        if !matches!(self.state, State::Closed) {
            let error =
                (!matches!(self.state, State::Bound)).then_some(ClientError::ConnectionClosed);
            self.finish(error);
        }
    }

    /// The next event for the driver.
    pub fn poll_event(&mut self) -> Option<ClientEvent> {
        self.events.pop_front()
    }

    /// Bytes to write to the socket.
    pub fn take_output(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.out)
    }

    /// Sends a stanza: at once when the bind request has gone out (it then rides in
    /// the same flight as a pipelined login), otherwise after it.
    pub fn send_stanza(&mut self, stanza: &Element) {
        if matches!(self.state, State::Closed) {
            return;
        }
        if self.is_bound() || (self.sent_bind && self.config.mode != Mode::Lockstep) {
            self.write(&stanza.to_bytes(ns::CLIENT));
            self.sm.sent(stanza);
            self.transport.flush(&mut self.out);
        } else {
            self.queued.push(stanza.clone());
        }
    }

    /// Closes the stream politely.
    pub fn close(&mut self) {
        if !matches!(self.state, State::Closed) {
            self.write(b"</stream:stream>");
            self.transport.close(&mut self.out);
            self.finish(None);
        }
    }

    /// Whether the session is bound.
    pub fn is_bound(&self) -> bool {
        matches!(self.state, State::Bound)
    }

    /// Whether the stream has ended.
    pub fn is_closed(&self) -> bool {
        matches!(self.state, State::Closed)
    }

    /// TLS facts, once the handshake is done.
    pub fn tls_info(&self) -> Option<TlsInfo> {
        self.transport.info()
    }

    /// The SASL mechanism this login used, once chosen (FAST: its HT-* name).
    pub fn mechanism(&self) -> Option<&'static str> {
        self.mechanism
    }

    /// Whether the login rode in TLS 1.3 early data (0-RTT) and the server took it.
    pub fn early_data_accepted(&self) -> bool {
        self.early_accepted
    }

    /// What this login learned about the server, to cache for the next one.
    pub fn learned(&self) -> &KnownServer {
        &self.learned
    }

    /// Writes `<r/>` when stream management is on (XEP-0198 §4): before leaving a
    /// session to resume later, so that nothing sent is left unconfirmed.
    pub fn request_ack(&mut self) {
        if let (Some(r), false) = (self.sm.request(), self.is_closed()) {
            self.write(&r.to_bytes(ns::STREAM));
            self.transport.flush(&mut self.out);
        }
    }

    /// Stanzas sent that the server has not acknowledged (XEP-0198 §4).
    pub fn unacked(&self) -> usize {
        self.sm.unacked()
    }

    /// The session as it stands, to resume later, when the server granted
    /// resumption (XEP-0198 §5).
    pub fn sm_session(&self) -> Option<SmSession> {
        self.sm.session()
    }

    /// Whether this login resumed an earlier session rather than binding anew.
    pub fn sm_resumed(&self) -> bool {
        self.sm.resumed()
    }

    /// The session an `sm-resume` login asks back: the one the cache holds.
    fn resumable(&self) -> Option<SmSession> {
        self.config.known.as_ref()?.sm_session.clone()
    }

    fn new_tls(&self) -> Result<Transport, ClientError> {
        Transport::client(&self.config.tls, self.config.server_name.clone())
            .map_err(ClientError::Tls)
    }

    fn receive(&mut self, data: &[u8]) {
        match self.transport.receive(data) {
            Ok(received) => {
                self.parser.feed(&received.plaintext);
                if matches!(self.state, State::TlsHandshake) && !self.transport.handshaking() {
                    self.tls_ready();
                }
                if received.peer_closed {
                    self.process();
                    self.handle_eof();
                }
            }
            Err(e) => self.fail(ClientError::Tls(e)),
        }
    }

    fn process(&mut self) {
        while !matches!(self.state, State::Closed) {
            let result = match self.parser.next_event() {
                Ok(None) => return,
                Ok(Some(event)) => self.handle_event(event),
                Err(e) => Err(e.into()),
            };
            if let Err(e) = result {
                self.fail(e);
            }
        }
    }

    fn handle_event(&mut self, event: StreamEvent) -> Result<(), ClientError> {
        let el = match event {
            // The server's header carries nothing a login needs.
            StreamEvent::Open(_) => return Ok(()),
            StreamEvent::Close => {
                self.handle_eof();
                return Ok(());
            }
            StreamEvent::Element(el) => el,
        };
        match (el.ns(), el.name()) {
            (ns::STREAM, "features") => self.features(&el),
            (ns::STREAM, "error") => Err(stream_error(&el)),
            (ns::TLS, "proceed") => self.proceed(),
            (ns::TLS, "failure") => Err(ClientError::Unexpected("STARTTLS failure".into())),
            (ns::SASL | ns::SASL2, "challenge") => self.challenge(&el),
            (ns::SASL, "success") => self.success(&el),
            (ns::SASL2, "success") => self.success2(&el),
            (ns::SASL2, "continue") => self.continue2(&el),
            (ns::SASL2, "task-data") => self.task_data(&el),
            (ns::SASL2, "failure")
                if el.get_child("config-version-mismatch", ns::IAP).is_some() =>
            {
                self.config_version_mismatch()
            }
            (ns::SASL | ns::SASL2, "failure") => Err(sasl::auth_failure(&el)),
            (ns::CLIENT, "iq")
                if matches!(self.state, State::Binding) && el.attr("id") == Some(BIND_ID) =>
            {
                self.bind_result(&el)
            }
            (ns::SM, _) => {
                if let Some(answer) = self.sm.handle(&el) {
                    self.write(&answer.to_bytes(ns::STREAM));
                }
                Ok(())
            }
            _ if matches!(self.state, State::Bound) => {
                if is_stanza(&el) {
                    self.sm.received();
                }
                self.events.push_back(ClientEvent::Stanza(el));
                Ok(())
            }
            // Before the session is bound: replies to pipelined stanzas and the
            // like; nothing the login depends on.
            _ => Ok(()),
        }
    }

    fn features(&mut self, features: &Element) -> Result<(), ClientError> {
        match self.state {
            State::PreTls => {
                if features.get_child("starttls", ns::TLS).is_none() {
                    return Err(ClientError::NoStartTls);
                }
                if self.config.mode == Mode::Lockstep {
                    self.write(&starttls_element().to_bytes(ns::STREAM));
                }
                Ok(())
            }
            State::Features => {
                self.learn(features);
                self.authenticate()
            }
            State::Sasl(_) => {
                // Pipelined auth: these are the features it did not wait for.
                self.learn(features);
                Ok(())
            }
            // XEP-0388 leaves the server free to announce features again after a
            // SASL2 success (Prosody does); nothing in them changes the login.
            State::Binding | State::Bound if self.config.mode.sasl2() => Ok(()),
            State::Restarted => {
                if !self.sent_bind {
                    self.send_bind();
                }
                self.state = State::Binding;
                Ok(())
            }
            _ => Err(ClientError::Unexpected("stream features".into())),
        }
    }

    fn learn(&mut self, features: &Element) {
        let sasl2 = features.get_child("authentication", ns::SASL2);
        let mechanisms = if self.config.mode.sasl2() {
            sasl2
        } else {
            features.get_child("mechanisms", ns::SASL)
        };
        if let Some(mechs) = mechanisms {
            self.learned.mechanisms = mechs
                .children()
                .filter(|m| m.name() == "mechanism")
                .map(|m| m.text())
                .collect();
        }
        self.learned.fast_mechanisms = sasl2
            .and_then(|a| a.get_child("inline", ns::SASL2))
            .and_then(|i| i.get_child("fast", ns::FAST))
            .map(|f| f.children().map(|m| m.text()).collect())
            .unwrap_or_default();
        self.learned.fast_zero_rtt = sasl2
            .and_then(|a| a.get_child("inline", ns::SASL2))
            .and_then(|i| i.get_child("fast", ns::FAST))
            .and_then(|f| f.attr("tls-0rtt"))
            .is_some_and(|v| v == "true" || v == "1");
        let sasl2_inline = sasl2.and_then(|a| a.get_child("inline", ns::SASL2));
        self.learned.sm_resume_inline =
            sasl2_inline.is_some_and(|i| i.get_child("sm", ns::SM).is_some());
        self.learned.sm_inline = sasl2_inline
            .and_then(|i| i.get_child("bind", ns::BIND2))
            .and_then(|b| b.get_child("inline", ns::BIND2))
            .is_some_and(|i| i.children().any(|f| f.attr("var") == Some(ns::SM)));
        self.learned.upgrade_tasks = sasl2
            .map(|a| {
                a.children()
                    .filter(|c| c.is("upgrade", ns::SASL_UPGRADE))
                    .map(|c| c.text().trim().to_owned())
                    .collect()
            })
            .unwrap_or_default();
        self.learned.config_version = features
            .get_child("config-version", ns::IAP)
            .and_then(|c| c.attr("value"))
            .map(str::to_owned);
        if let Some(cb) = features.get_child("sasl-channel-binding", ns::SASL_CB) {
            self.learned.channel_bindings = cb
                .children()
                .filter_map(|c| c.attr("type").map(str::to_owned))
                .collect();
        }
    }

    /// RFC 6120 §5.4.3.3: after `<proceed/>` the rest of the read is TLS.
    fn proceed(&mut self) -> Result<(), ClientError> {
        if !matches!(self.state, State::PreTls) {
            return Err(ClientError::Unexpected("<proceed/>".into()));
        }
        let rest = self.parser.take_unparsed();
        self.transport = match self.early_tls.take() {
            Some(tls) => tls,
            None => self.new_tls()?,
        };
        self.parser = StreamParser::new(Default::default());
        self.state = State::TlsHandshake;
        self.receive(&rest);
        Ok(())
    }

    /// The handshake is done: open the secured stream, and pipeline the
    /// authentication when an earlier login gives grounds (DESIGN.md rule 9).
    fn tls_ready(&mut self) {
        let end_point_hash = self.transport.peer_end_point_hash();
        // The count a refused 0-RTT login used; the retry counts on from it.
        let mut early_token = None;
        if let Some(sasl) = self.early.take() {
            if self.transport.early_data_accepted() {
                self.early_accepted = true;
                self.learned.end_point_hash = end_point_hash;
                self.state = State::Sasl(sasl);
                // Stanzas only now, after the client's Finished: never in early data.
                self.release_after_sasl2();
                return;
            }
            // RFC 8446 §4.2.10: the server skipped the early data unread. Send the
            // login again now; it costs the round trip 0-RTT would have saved. With
            // the next count, in case a replay of the early data used this one on a
            // server that did take it.
            early_token = self.learned.fast_token.take();
            self.learned = KnownServer::default();
        }
        self.learned.end_point_hash = end_point_hash.clone();
        self.write_header(true);
        self.state = State::Features;
        if !self.may_pipeline() {
            return;
        }
        let known = self.config.known.clone().unwrap_or_default();
        self.learned = KnownServer {
            credentials_ok: false,
            end_point_hash: end_point_hash.clone(),
            ..known
        };
        if early_token.is_some() {
            self.learned.fast_token = early_token;
        }
        // Never pipeline past what the cached features promise: without a usable
        // mechanism among them, wait for the real features.
        if self.choose_mechanism().is_err() {
            self.learned = KnownServer {
                end_point_hash,
                ..KnownServer::default()
            };
            return;
        }
        if let Err(e) = self.authenticate() {
            self.fail(e);
        }
    }

    fn fail(&mut self, error: ClientError) {
        if !matches!(self.state, State::Closed) {
            if !matches!(error, ClientError::Tls(_)) {
                self.write(b"</stream:stream>");
            }
            self.transport.close(&mut self.out);
            self.finish(Some(error));
        }
    }

    fn finish(&mut self, error: Option<ClientError>) {
        self.state = State::Closed;
        self.events.push_back(ClientEvent::Closed { error });
    }

    fn write_header(&mut self, declaration: bool) {
        // RFC 6120 §4.7.1: once TLS protects the stream the client names itself in
        // `from` (some servers offer FAST only then); never in plaintext.
        let from = self.transport.is_tls().then_some(&self.config.jid);
        let header = header(self.config.jid.domain(), from, declaration);
        self.write(header.as_bytes());
    }

    fn write(&mut self, bytes: &[u8]) {
        self.transport.send(bytes, &mut self.out);
    }
}

/// The client's stream header (RFC 6120 §4.7), with the XML declaration on a new
/// stream and without it on a restart, and `from` when given.
fn header(domain: &str, from: Option<&Jid>, declaration: bool) -> String {
    format!(
        "{}<stream:stream{} to='{}' xmlns='{}' xmlns:stream='{}' version='1.0'>",
        if declaration {
            "<?xml version='1.0'?>"
        } else {
            ""
        },
        from.map(|j| format!(" from='{}'", escape_attr_value(&j.to_string())))
            .unwrap_or_default(),
        escape_attr_value(domain),
        ns::CLIENT,
        ns::STREAM,
    )
}

fn starttls_element() -> Element {
    Element::new("starttls", ns::TLS)
}

/// The condition and text of a `<stream:error/>` (RFC 6120 §4.9).
fn stream_error(el: &Element) -> ClientError {
    let condition = el
        .children()
        .find(|c| c.ns() == ns::STREAM_ERRORS && c.name() != "text")
        .map(|c| c.name().to_owned())
        .unwrap_or_else(|| "unknown".into());
    let text = el.get_child("text", ns::STREAM_ERRORS).map(|t| t.text());
    ClientError::Stream { condition, text }
}
