//! The client side of a c2s login, as a sans-IO state machine.

use std::collections::VecDeque;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;

use crate::client::config::{ClientConfig, FastToken, KnownServer, Mode};
use crate::client::error::ClientError;
use crate::client::sm::{ClientSm, SmSession};
use crate::jid::Jid;
use crate::random::Random;
use crate::sasl::{
    ChannelBindingType, HtMechanism, Mechanism, ScramClient, ht_initial_response, ht_verify_server,
    plain_initial_response,
};
use crate::stanza::is_stanza;
use crate::transport::{TlsInfo, Transport};
use crate::xml::{Element, StreamEvent, StreamParser, escape_attr_value, ns};

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
            (ns::SASL2, "failure")
                if el.get_child("config-version-mismatch", ns::IAP).is_some() =>
            {
                self.config_version_mismatch()
            }
            (ns::SASL | ns::SASL2, "failure") => Err(auth_failure(&el)),
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

    /// XEP-0484 §3.4 in TLS 1.3 0-RTT: the stream header and the FAST
    /// `<authenticate/>` go out as early data, with the ClientHello, when an earlier
    /// login left grounds (DESIGN.md rule 9): a token, the config version, and the
    /// server's word that it takes FAST in 0-RTT; and when the session cache holds a
    /// ticket that allows early data (rustls knows). Stanzas never ride here: early
    /// data can be replayed, and the server would hold them until the handshake anyway.
    fn send_early_login(&mut self) {
        let Some(known) = self.config.known.clone() else {
            return;
        };
        if !self.may_pipeline() || !known.fast_zero_rtt {
            return;
        }
        self.learned = KnownServer {
            credentials_ok: false,
            ..known
        };
        let Ok((auth, sasl, token)) = self.fast_request() else {
            // No token, or one no 0-RTT login can use: the plain FAST login follows.
            self.learned = KnownServer::default();
            return;
        };
        let mut flight =
            header(self.config.jid.domain(), Some(&self.config.jid), true).into_bytes();
        flight.extend_from_slice(&auth.to_bytes(ns::STREAM));
        if self.transport.send_early(&flight) {
            self.learned.fast_token = Some(token);
            self.early = Some(sasl);
        } else {
            self.learned = KnownServer::default();
            self.token_requested = None;
            self.mechanism = None;
        }
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

    /// Rule 9: pipeline only on credentials that worked before; SASL2 also needs
    /// the config version to pipeline `<authenticate/>` safely (XEP-0509 §3.2).
    fn may_pipeline(&self) -> bool {
        self.config.mode != Mode::Lockstep
            && self.config.known.as_ref().is_some_and(|k| {
                k.credentials_ok && (!self.config.mode.sasl2() || k.config_version.is_some())
            })
    }

    /// Sends `<auth/>` with the chosen mechanism (RFC 6120 §6.4.2), and with PLAIN
    /// on known ground, the restart and bind behind it.
    fn authenticate(&mut self) -> Result<(), ClientError> {
        if self.config.mode.fast() || (self.config.mode == Mode::SmResume && self.has_token()) {
            return self.authenticate_fast();
        }
        let mechanism = self.choose_mechanism()?;
        self.mechanism = Some(mechanism.name());
        let local = self.config.jid.local().unwrap_or_default().to_owned();
        let (initial, sasl) = if mechanism == Mechanism::Plain {
            (
                plain_initial_response(None, &local, &self.config.password),
                Sasl::Plain,
            )
        } else {
            let cb = if mechanism.is_plus() {
                let data = self.transport.exporter().ok_or_else(|| {
                    ClientError::NoMechanism("channel binding needs TLS 1.3".into())
                })?;
                Some((ChannelBindingType::TlsExporter, data))
            } else {
                None
            };
            let server_plus = self.learned.mechanisms.iter().any(|m| m.ends_with("-PLUS"));
            let mut nonce = [0u8; 18];
            self.random.fill(&mut nonce);
            let scram = ScramClient::new(
                mechanism,
                &local,
                &self.config.password,
                None,
                &BASE64.encode(nonce),
                cb,
                server_plus,
            )?;
            (scram.client_first(), Sasl::ScramFirst(scram))
        };
        if self.config.mode.sasl2() {
            let auth = self.authenticate2(mechanism.name(), &initial, None);
            self.write(&auth.to_bytes(ns::STREAM));
            let last_message = matches!(sasl, Sasl::Plain);
            self.state = State::Sasl(sasl);
            if last_message {
                self.release_after_sasl2();
            }
            return Ok(());
        }
        let auth = Element::new("auth", ns::SASL)
            .with_attr("mechanism", mechanism.name())
            .with_text(BASE64.encode(initial));
        self.write(&auth.to_bytes(ns::STREAM));
        let plain = matches!(sasl, Sasl::Plain);
        self.state = State::Sasl(sasl);
        if plain {
            self.pipeline_restart();
        }
        Ok(())
    }

    /// XEP-0388 §2.3 `<authenticate/>` with inline Bind2 (XEP-0386 §3) and the
    /// config version it was built against (XEP-0509 §3.2).
    fn authenticate2(
        &mut self,
        mechanism: &str,
        initial: &[u8],
        fast_count: Option<u64>,
    ) -> Element {
        let mut auth = Element::new("authenticate", ns::SASL2)
            .with_attr("mechanism", mechanism)
            .with_child(
                Element::new("initial-response", ns::SASL2).with_text(BASE64.encode(initial)),
            );
        if let Some(id) = &self.config.user_agent {
            auth.append_child(
                Element::new("user-agent", ns::SASL2)
                    .with_attr("id", id.clone())
                    .with_child(Element::new("software", ns::SASL2).with_text("pipit")),
            );
        }
        // XEP-0198 §5 inline: resume the session an earlier login left, the Bind2
        // request below being the fallback should that fail.
        let resume = (self.config.mode == Mode::SmResume && self.learned.sm_resume_inline)
            .then(|| self.resumable())
            .flatten();
        if let Some(session) = &resume {
            auth.append_child(
                Element::new("resume", ns::SM)
                    .with_attr("previd", session.id.clone())
                    .with_attr("h", session.h.to_string()),
            );
        }
        let mut bind = Element::new("bind", ns::BIND2)
            .with_child(Element::new("tag", ns::BIND2).with_text(self.config.resource.clone()));
        // XEP-0386 §4: stream management with the bind, at no extra round trip.
        if self.learned.sm_inline {
            bind.append_child(Element::new("enable", ns::SM).with_attr("resume", "true"));
        }
        if resume.is_some() || self.learned.sm_inline {
            self.sm.requested(resume);
        }
        auth.append_child(bind);
        // XEP-0484 §3.2: ask for a token (or a fresh one, rotating it) whenever the
        // server offers FAST; a channel-bound mechanism where one can be used.
        self.token_requested = self.token_mechanism();
        if let Some(mech) = self.token_requested {
            auth.append_child(Element::new("request-token", ns::FAST).with_attr("mechanism", mech));
        }
        if let Some(count) = fast_count {
            auth.append_child(Element::new("fast", ns::FAST).with_attr("count", count.to_string()));
        }
        if let Some(version) = &self.learned.config_version {
            auth.append_child(
                Element::new("config-version", ns::IAP)
                    .with_attr("scheme", "opaque")
                    .with_attr("value", version.clone()),
            );
        }
        auth
    }

    /// The FAST mechanism to request a token for, if the server offers FAST. Channel
    /// binding first (XEP-0484 §6: clients MUST prefer it). `tls-exporter` binds to
    /// the very connection, but exists only once the handshake is done; where the
    /// server takes FAST in 0-RTT, `tls-server-end-point` comes first, since the
    /// token is then good for early data too (see [`KnownServer::end_point_hash`]).
    fn token_mechanism(&self) -> Option<&'static str> {
        use HtMechanism::{Sha256Endp, Sha256Expr, Sha256None};
        let offered = |m: HtMechanism| self.learned.fast_mechanisms.iter().any(|o| o == m.name());
        let order = if self.learned.fast_zero_rtt {
            [Sha256Endp, Sha256Expr, Sha256None]
        } else {
            [Sha256Expr, Sha256Endp, Sha256None]
        };
        order
            .into_iter()
            .filter(|m| match m {
                Sha256Expr => self.transport.exporter().is_some(),
                Sha256Endp => self.end_point_hash().is_some(),
                _ => true,
            })
            .find(|m| offered(*m))
            .map(HtMechanism::name)
    }

    /// RFC 5929 `tls-server-end-point` data: from this handshake once it is done,
    /// before that (0-RTT) as the last handshake left it.
    fn end_point_hash(&self) -> Option<Vec<u8>> {
        if self.transport.handshaking() {
            self.learned.end_point_hash.clone()
        } else {
            self.transport.peer_end_point_hash()
        }
    }

    /// Whether a FAST token is at hand: one this login got, or the cache's.
    fn has_token(&self) -> bool {
        self.learned.fast_token.is_some()
            || self
                .config
                .known
                .as_ref()
                .is_some_and(|k| k.fast_token.is_some())
    }

    /// XEP-0484 §3.4: authenticate with the cached token, one message, a count that
    /// only grows.
    fn authenticate_fast(&mut self) -> Result<(), ClientError> {
        let (auth, sasl, token) = self.fast_request()?;
        self.write(&auth.to_bytes(ns::STREAM));
        self.learned.fast_token = Some(token);
        self.state = State::Sasl(sasl);
        self.release_after_sasl2();
        Ok(())
    }

    /// The FAST `<authenticate/>` with the next count, what to verify the server's
    /// answer with, and the token as it stands after this use. During the handshake
    /// (0-RTT) only mechanisms whose channel binding is known by then will do.
    fn fast_request(&mut self) -> Result<(Element, Sasl, FastToken), ClientError> {
        let token = self
            .learned
            .fast_token
            .clone()
            .or_else(|| self.config.known.as_ref()?.fast_token.clone())
            .ok_or(ClientError::NoFastToken)?;
        let mechanism = HtMechanism::from_name(&token.mechanism)
            .ok_or_else(|| ClientError::NoMechanism(token.mechanism.clone()))?;
        let cb_data = match mechanism.channel_binding_type() {
            None => Vec::new(),
            Some(ChannelBindingType::TlsExporter) => {
                self.transport.exporter().ok_or_else(|| {
                    ClientError::NoMechanism(
                        "tls-exporter needs a finished TLS 1.3 handshake".into(),
                    )
                })?
            }
            Some(ChannelBindingType::TlsServerEndPoint) => self
                .end_point_hash()
                .ok_or_else(|| ClientError::NoMechanism("no tls-server-end-point data".into()))?,
        };
        let local = self.config.jid.local().unwrap_or_default().to_owned();
        let initial = ht_initial_response(mechanism, &local, &token.token, &cb_data);
        self.mechanism = Some(mechanism.name());
        let count = token.count + 1;
        let auth = self.authenticate2(mechanism.name(), &initial, Some(count));
        let sasl = Sasl::Fast {
            mechanism,
            token: token.token.clone(),
            cb_data,
        };
        Ok((auth, sasl, FastToken { count, ..token }))
    }

    /// XEP-0509 §3.2: the pipelined `<authenticate/>` met a new configuration. The
    /// features that came before this failure are the current ones: retry once.
    fn config_version_mismatch(&mut self) -> Result<(), ClientError> {
        if self.iap_retried {
            return Err(ClientError::Unexpected(
                "config version mismatch twice".into(),
            ));
        }
        self.iap_retried = true;
        self.queued = std::mem::take(&mut self.in_flight);
        self.authenticate()
    }

    /// The strongest mechanism offered that we can use, or the one configured.
    fn choose_mechanism(&self) -> Result<Mechanism, ClientError> {
        let offered = &self.learned.mechanisms;
        let is_offered = |m: Mechanism| offered.iter().any(|o| o == m.name());
        let usable = |m: Mechanism| {
            is_offered(m)
                && (!m.is_plus()
                    || (self.transport.exporter().is_some()
                        && self
                            .learned
                            .channel_bindings
                            .iter()
                            .any(|c| c == "tls-exporter")))
        };
        match self.config.mechanism {
            Some(m) if usable(m) => Ok(m),
            Some(_) => Err(ClientError::NoMechanism(offered.join(" "))),
            None => Mechanism::ALL
                .into_iter()
                .find(|m| usable(*m))
                .ok_or_else(|| ClientError::NoMechanism(offered.join(" "))),
        }
    }

    /// With grounds to expect success, the restart header and the bind request
    /// follow the last SASL message without waiting (rules 4 and 6).
    fn pipeline_restart(&mut self) {
        if self.may_pipeline() && !self.sent_restart {
            self.write_header(false);
            self.sent_restart = true;
            self.send_bind();
        }
    }

    fn challenge(&mut self, el: &Element) -> Result<(), ClientError> {
        let State::Sasl(Sasl::ScramFirst(mut scram)) =
            std::mem::replace(&mut self.state, State::Closed)
        else {
            return Err(ClientError::Unexpected("SASL challenge".into()));
        };
        let server_first = decode(el)?;
        // XEP-0474: the server-first hashes what the server advertised; by now this
        // stream's features have arrived (even when auth was pipelined), so compare
        // with what we saw here. Not required: servers without XEP-0474 still work.
        let mechanisms: Vec<&str> = self.learned.mechanisms.iter().map(String::as_str).collect();
        let bindings: Vec<&str> = self
            .learned
            .channel_bindings
            .iter()
            .map(String::as_str)
            .collect();
        scram.expect_downgrade_protection(&mechanisms, &bindings, false);
        let client_final = scram.handle_server_first(&server_first)?;
        let response = Element::new("response", el.ns()).with_text(BASE64.encode(client_final));
        self.write(&response.to_bytes(ns::STREAM));
        self.state = State::Sasl(Sasl::ScramFinal(scram));
        if el.ns() == ns::SASL {
            self.pipeline_restart();
        } else {
            self.release_after_sasl2();
        }
        Ok(())
    }

    /// Bind2 rode inside `<authenticate/>`: once the client's last SASL message is
    /// out, stanzas may follow at once (rule 6); the server takes them after the
    /// bind. Not before: during a challenge they would meet an unauthenticated stream.
    fn release_after_sasl2(&mut self) {
        self.sent_bind = true;
        self.flush_queued();
    }

    /// XEP-0388 §2.6.1: SASL2 success; no restart. With `<bound/>` the session is
    /// usable at once (XEP-0386 §3); otherwise bind the RFC 6120 way.
    fn success2(&mut self, el: &Element) -> Result<(), ClientError> {
        let additional = el
            .get_child("additional-data", ns::SASL2)
            .map(decode)
            .transpose()?
            .unwrap_or_default();
        match std::mem::replace(&mut self.state, State::Closed) {
            State::Sasl(Sasl::Plain) => {}
            State::Sasl(Sasl::ScramFinal(scram)) => scram.verify_server_final(&additional)?,
            // Mutual authentication: the server proves it knows the token too.
            State::Sasl(Sasl::Fast {
                mechanism,
                token,
                cb_data,
            }) => {
                if !ht_verify_server(mechanism, &token, &cb_data, &additional) {
                    return Err(ClientError::Unexpected(
                        "FAST server proof does not verify".into(),
                    ));
                }
            }
            _ => return Err(ClientError::Unexpected("SASL2 success".into())),
        }
        self.learned.credentials_ok = true;
        if let Some(issued) = el.get_child("token", ns::FAST) {
            let requested = self.token_requested.map(str::to_owned);
            if let (Some(token), Some(mechanism)) = (issued.attr("token"), requested) {
                self.learned.fast_token = Some(FastToken {
                    token: token.to_owned(),
                    mechanism,
                    expiry: issued.attr("expiry").unwrap_or_default().to_owned(),
                    count: 0,
                });
            }
        }
        let identity = el
            .get_child("authorization-identifier", ns::SASL2)
            .and_then(|i| Jid::parse(&i.text()).ok())
            .ok_or_else(|| ClientError::Unexpected("success without an identity".into()))?;
        self.sm.success(el);
        self.learned.sm_session = self.sm.session();
        if el.get_child("bound", ns::BIND2).is_some() || self.sm.resumed() {
            self.state = State::Bound;
            self.flush_queued();
            self.in_flight.clear();
            self.events.push_back(ClientEvent::Bound(identity));
        } else {
            self.sent_bind = false;
            self.send_bind();
            self.state = State::Binding;
        }
        Ok(())
    }

    /// RFC 6120 §6.4.6: success; the SCRAM server signature must verify before
    /// anything else is believed. Then the stream restarts.
    fn success(&mut self, el: &Element) -> Result<(), ClientError> {
        match std::mem::replace(&mut self.state, State::Closed) {
            State::Sasl(Sasl::Plain) => {}
            State::Sasl(Sasl::ScramFinal(scram)) => scram.verify_server_final(&decode(el)?)?,
            _ => return Err(ClientError::Unexpected("SASL success".into())),
        }
        self.learned.credentials_ok = true;
        let rest = self.parser.take_unparsed();
        self.parser = StreamParser::new(Default::default());
        self.parser.feed(&rest);
        if !self.sent_restart {
            self.write_header(false);
            self.sent_restart = true;
        }
        self.state = State::Restarted;
        Ok(())
    }

    fn send_bind(&mut self) {
        let bind = Element::new("iq", ns::CLIENT)
            .with_attr("type", "set")
            .with_attr("id", BIND_ID)
            .with_child(Element::new("bind", ns::BIND).with_child(
                Element::new("resource", ns::BIND).with_text(self.config.resource.clone()),
            ));
        self.write(&bind.to_bytes(ns::CLIENT));
        self.sent_bind = true;
        // Lockstep waits for the bind result before anything else.
        if self.config.mode != Mode::Lockstep {
            self.flush_queued();
        }
    }

    fn flush_queued(&mut self) {
        for stanza in std::mem::take(&mut self.queued) {
            self.write(&stanza.to_bytes(ns::CLIENT));
            self.sm.sent(&stanza);
            if !self.is_bound() {
                // Pipelined ahead of the login: kept until it is known to have
                // landed, since a refused login takes them down with it.
                self.in_flight.push(stanza);
            }
        }
    }

    fn bind_result(&mut self, iq: &Element) -> Result<(), ClientError> {
        if iq.attr("type") != Some("result") {
            let condition = iq
                .get_child("error", ns::CLIENT)
                .and_then(|e| e.children().next())
                .map(|c| c.name().to_owned())
                .unwrap_or_else(|| "unknown".into());
            return Err(ClientError::Bind(condition));
        }
        let jid = iq
            .get_child("bind", ns::BIND)
            .and_then(|b| b.get_child("jid", ns::BIND))
            .and_then(|j| Jid::parse(&j.text()).ok())
            .ok_or_else(|| ClientError::Unexpected("bind result without a JID".into()))?;
        self.state = State::Bound;
        self.flush_queued();
        self.in_flight.clear();
        self.events.push_back(ClientEvent::Bound(jid));
        Ok(())
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

fn decode(el: &Element) -> Result<Vec<u8>, ClientError> {
    let text = el.text();
    match text.trim() {
        "" | "=" => Ok(Vec::new()),
        b64 => BASE64
            .decode(b64)
            .map_err(|_| ClientError::Unexpected(format!("bad base64 in <{}/>", el.name()))),
    }
}

/// The condition and text of a SASL `<failure/>` (RFC 6120 §6.5).
fn auth_failure(el: &Element) -> ClientError {
    let condition = el
        .children()
        .find(|c| c.name() != "text")
        .map(|c| c.name().to_owned())
        .unwrap_or_else(|| "unknown".into());
    let text = el.get_child("text", ns::SASL).map(|t| t.text());
    ClientError::AuthFailed { condition, text }
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
