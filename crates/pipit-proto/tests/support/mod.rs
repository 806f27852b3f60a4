//! Test harness: the server core with a tiny in-memory driver, a scripted client
//! that drives rustls from buffers, and a Pair that moves bytes between them and
//! counts round trips (TCP connect counts as the first).

#![allow(dead_code, unused_imports)]

use std::sync::{Arc, OnceLock};

use pipit_proto::jid::Jid;
use pipit_proto::random::SeededRandom;
use pipit_proto::sasl::StoredCredentials;
use pipit_proto::server::{
    ConflictPolicy, EndPointHashes, Event, FastTokenRecord, Listener, ServerConfig,
    ServerConnection, StreamManagement,
};
use pipit_proto::stanza::StanzaError;
use pipit_proto::xml::{Element, Limits};
pub use pipit_testkit::{
    Client, DOMAIN, PRESENCE, STARTTLS, after_proceed, bind, client_tls, count, header, message_to,
    plain_auth, starttls_injection,
};
pub const PASSWORD: &str = "pencil";

/// How each flight is cut into reads on the server side.
#[derive(Clone, Copy, Debug)]
pub enum Feed {
    /// One read per flight.
    Whole,
    /// Two reads, split after this many bytes (whole when the flight is shorter).
    SplitAt(usize),
    /// One byte per read.
    ByteByByte,
}

impl Feed {
    pub fn chunks(self, data: &[u8]) -> Vec<&[u8]> {
        match self {
            Feed::Whole => vec![data],
            Feed::SplitAt(n) if n < data.len() => vec![&data[..n], &data[n..]],
            Feed::SplitAt(_) => vec![data],
            Feed::ByteByByte => data.chunks(1).collect(),
        }
    }

    /// Whole, byte by byte, and every split point up to `max_len`.
    pub fn all(max_len: usize) -> impl Iterator<Item = Feed> {
        [Feed::Whole, Feed::ByteByByte]
            .into_iter()
            .chain((1..max_len).map(Feed::SplitAt))
    }
}

/// The core's configuration for tests.
pub fn server_config(policy: ConflictPolicy) -> Arc<ServerConfig> {
    server_config_with(policy, pipit_testkit::server_tls())
}

/// The core's configuration for tests, with this rustls configuration.
pub fn server_config_with(
    policy: ConflictPolicy,
    tls: Arc<rustls::ServerConfig>,
) -> Arc<ServerConfig> {
    use sha2::Digest;
    Arc::new(ServerConfig {
        domains: vec![DOMAIN.into(), "example.org".into()],
        tls,
        end_point_hashes: EndPointHashes::single(Some(
            sha2::Sha256::digest(pipit_testkit::pki().leaf.as_ref()).to_vec(),
        )),
        conflict_policy: policy,
        limits: Limits::default(),
        scram_iterations: 4096,
        decoy_secret: [9; 32],
        stream_management: Default::default(),
    })
}

pub fn credentials() -> &'static StoredCredentials {
    static CREDS: OnceLock<StoredCredentials> = OnceLock::new();
    CREDS.get_or_init(|| StoredCredentials::derive(PASSWORD, b"test-salt-123456", 4096).unwrap())
}

/// What the in-test driver saw.
#[derive(Debug, Default)]
pub struct Log {
    pub credential_lookups: usize,
    pub authenticated: Vec<Jid>,
    pub bound: Vec<Jid>,
    /// Resources bound with carbons asked for inline (XEP-0386 §4).
    pub carbons: Vec<Jid>,
    pub stanzas: Vec<Element>,
    pub closed: Option<Option<String>>,
    /// FAST tokens issued: (key, mechanism, last count seen).
    pub fast_tokens: Vec<([u8; 32], String, u64)>,
    pub fast_replays_refused: usize,
    /// FAST token lookups: FAST authentications the core acted on.
    pub fast_lookups: usize,
    /// The session a dropped connection left for resumption (XEP-0198 §5).
    pub parked: Option<Parked>,
    /// Resumption requests, and whether each found its session.
    pub resumptions: Vec<bool>,
    /// XEP-0480 upgrades of the credentials.
    pub upgrades: usize,
}

/// A detached session: its SM-ID, full JID and stream management state.
#[derive(Debug)]
pub struct Parked {
    pub id: String,
    pub jid: Jid,
    pub sm: StreamManagement,
}

/// The server core and a minimal driver: accounts `alice` and `bob`, binding that
/// honours the requested resource (or picks `generated`, or the policy's rename),
/// and stanzas addressed to the sender itself echoed back (a self-message is
/// delivered).
pub struct Harness {
    pub conn: ServerConnection,
    /// What the accounts' credentials are (an XEP-0480 upgrade replaces them).
    pub credentials: StoredCredentials,
    pub log: Log,
    pub taken_resources: Vec<String>,
    pub feed: Feed,
}

impl Harness {
    pub fn new(listener: Listener, policy: ConflictPolicy, feed: Feed) -> Self {
        Self::build(listener, server_config(policy), feed, 7)
    }

    /// A harness whose server uses this rustls configuration (its own ticket store,
    /// say), with the `replace` conflict policy, drawing randomness (FAST tokens,
    /// resources) from `seed`.
    pub fn with_tls(
        listener: Listener,
        tls: Arc<rustls::ServerConfig>,
        feed: Feed,
        seed: u64,
    ) -> Self {
        Self::build(
            listener,
            server_config_with(ConflictPolicy::Replace, tls),
            feed,
            seed,
        )
    }

    /// A harness whose server wants this many SCRAM iterations (XEP-0480 upgrades
    /// accounts below it) and holds these credentials.
    pub fn with_iterations(
        listener: Listener,
        feed: Feed,
        iterations: u32,
        credentials: StoredCredentials,
    ) -> Self {
        let mut config = (*server_config(ConflictPolicy::Replace)).clone();
        config.scram_iterations = iterations;
        let mut harness = Self::build(listener, Arc::new(config), feed, 7);
        harness.credentials = credentials;
        harness
    }

    fn build(listener: Listener, config: Arc<ServerConfig>, feed: Feed, seed: u64) -> Self {
        Harness {
            conn: ServerConnection::new(config, listener, Box::new(SeededRandom::new(seed))),
            credentials: credentials().clone(),
            log: Log::default(),
            taken_resources: Vec::new(),
            feed,
        }
    }

    /// The connection drops (no closing tag): a resumable session is parked.
    pub fn drop_connection(&mut self) {
        self.conn.handle_eof();
        self.drive();
        if self.conn.can_resume() {
            let jid = self.conn.jid().cloned().unwrap();
            let sm = self.conn.take_stream_management().unwrap();
            let id = sm.resume_id().unwrap().to_owned();
            self.log.parked = Some(Parked { id, jid, sm });
        }
    }

    /// Delivers a flight in reads as `feed` says, answering events after each read,
    /// and returns everything the server wrote.
    pub fn receive(&mut self, flight: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        for chunk in self.feed.chunks(flight) {
            self.conn.handle_input(chunk);
            self.drive();
            out.extend(self.conn.take_output());
        }
        out
    }

    fn drive(&mut self) {
        while let Some(event) = self.conn.poll_event() {
            match event {
                Event::NeedCredentials { username, domain } => {
                    self.log.credential_lookups += 1;
                    let known = matches!(username.as_str(), "alice" | "bob") && domain == DOMAIN;
                    self.conn
                        .provide_credentials(known.then(|| self.credentials.clone()));
                }
                Event::Authenticated { jid, .. } => self.log.authenticated.push(jid),
                Event::BindRequest {
                    jid,
                    resource,
                    carbons,
                } => {
                    let result = match resource {
                        Some(r) if self.taken_resources.contains(&r) => Err(StanzaError::Conflict),
                        Some(r) => jid.with_resource(&r).map_err(|_| StanzaError::BadRequest),
                        None => jid
                            .with_resource("generated")
                            .map_err(|_| StanzaError::BadRequest),
                    };
                    if let Ok(full) = &result {
                        self.log.bound.push(full.clone());
                        if carbons {
                            self.log.carbons.push(full.clone());
                        }
                    }
                    self.conn.complete_bind(result);
                }
                Event::Stanza(stanza) => {
                    let me = self.conn.jid().cloned().unwrap();
                    let to_me = match stanza.attr("to") {
                        None => true,
                        Some(to) => {
                            let to = Jid::parse(to).unwrap();
                            to == me || to == me.to_bare()
                        }
                    };
                    if to_me {
                        self.conn.send_stanza(&stanza);
                    }
                    self.log.stanzas.push(stanza);
                }
                Event::NeedFastTokens { .. } => {
                    self.log.fast_lookups += 1;
                    let tokens = self
                        .log
                        .fast_tokens
                        .iter()
                        .map(|(key, mechanism, _)| FastTokenRecord {
                            key: *key,
                            mechanism: mechanism.clone(),
                        })
                        .collect();
                    self.conn.provide_fast_tokens(tokens);
                }
                Event::FastCount { key, count, .. } => {
                    let fresh = match self.log.fast_tokens.iter_mut().find(|t| t.0 == key) {
                        Some(token) if count > token.2 => {
                            token.2 = count;
                            true
                        }
                        _ => false,
                    };
                    if !fresh {
                        self.log.fast_replays_refused += 1;
                    }
                    self.conn.provide_fast_count(fresh);
                }
                Event::IssueFastToken { key, mechanism, .. } => {
                    self.log.fast_tokens.push((key, mechanism, 0));
                }
                Event::RevokeFastToken { key, .. } => {
                    self.log.fast_tokens.retain(|t| t.0 != key);
                }
                Event::CredentialsUpgraded { credentials, .. } => {
                    self.log.upgrades += 1;
                    self.credentials = credentials;
                }
                Event::ResumeRequest { jid, previd } => {
                    // The registry's rule: the same SM-ID, and the same account.
                    let found = self
                        .log
                        .parked
                        .take_if(|p| p.id == previd && p.jid.to_bare() == jid)
                        .map(|p| (p.jid, p.sm));
                    self.log.resumptions.push(found.is_some());
                    self.conn.complete_resume(found);
                }
                Event::Closed { error } => {
                    self.log.closed = Some(error.map(|e| e.to_string()));
                }
                _ => {}
            }
        }
    }
}

/// A client and a server joined by an in-memory network that counts round trips:
/// each flight the client sends and then waits on is one; TCP connect is the first.
pub struct Pair {
    pub server: Harness,
    pub client: Client,
    pub round_trips: usize,
}

impl Pair {
    pub fn new(listener: Listener, feed: Feed) -> Self {
        Pair {
            server: Harness::new(listener, ConflictPolicy::Replace, feed),
            client: Client::new(),
            round_trips: 1,
        }
    }

    /// Sends `plaintext` (through TLS if active), delivers the server's answer.
    pub fn flight(&mut self, plaintext: &[u8]) {
        let wire = self.client.wire(plaintext);
        self.flight_raw(&wire);
    }

    /// Sends raw bytes as one flight.
    pub fn flight_raw(&mut self, wire: &[u8]) {
        self.round_trips += 1;
        let answer = self.server.receive(wire);
        self.client.receive(&answer);
    }
}

/// Rule 4's pipelined login as alice, ending with a message to herself.
pub fn pipelined_login(restart_declaration: bool) -> String {
    pipit_testkit::pipelined_login(
        "alice",
        PASSWORD,
        restart_declaration,
        "alice@localhost",
        "hello me",
    )
}
