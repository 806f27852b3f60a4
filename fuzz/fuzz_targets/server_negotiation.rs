//! The server negotiation state machine ([`ServerConnection`]) driven by a scripted
//! client whose writes the fuzzer chooses, on both listeners, through real TLS.
//!
//! Input: `[mode] [chunk] op (0xFF op)*`. Mode bit 0: Direct TLS listener (else the
//! STARTTLS one); bit 1: TLS 1.2 (else 1.3); bits 2-3: the conflict policy. `chunk`
//! is the read size the server gets each flight in (0: whole). Each op is one client
//! flight, then the server's answer goes back to the client:
//! - `p<bytes>`: plaintext, through TLS once the client has started it;
//! - `t<bytes>`: the bytes in plaintext, then a ClientHello in the same flight (stunt
//!   buffering; the client reads plaintext until `<proceed/>`);
//! - `w<bytes>`: raw wire bytes, bypassing TLS (injection, garbage records);
//! - `s<v>`: a SCRAM-SHA-256 `<auth/>` (v even) or SASL2 `<authenticate/>` with Bind2
//!   (v odd) for alice, with the right password unless bit 1 of v is set;
//! - `f`: the SCRAM client-final for the last challenge the server sent;
//! - `h<v>`: a FAST (HT-SHA-256-NONE) `<authenticate/>` with the last token the server
//!   issued, count v;
//! - `e`: end of file; `o`: the login timeout; `x`: the driver closes the stream;
//!   `m`: a stanza routed to the session.
//!
//! The driver answers every event as the test harness does (accounts alice and bob,
//! password `pencil`; binds honour the resource; FAST tokens kept; no resumption).
//! Asserts: no panic; `Authenticated` only for a known account, and on the STARTTLS
//! listener only once TLS is up; no `BindRequest` before `Authenticated`; no `Stanza`
//! before a bind succeeded; nothing at all after `Closed`. The script is run twice,
//! with the reads split as `chunk` says and whole, and both runs must give the same
//! events and the same plaintext to the client (DESIGN.md rule 1). TLS randomness
//! comes from the OS, so a TLS-level crash may not reproduce every time.
#![no_main]

use std::io::{Read, Write};
use std::sync::{Arc, OnceLock};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use libfuzzer_sys::fuzz_target;
use pipit_proto::jid::Jid;
use pipit_proto::random::SeededRandom;
use pipit_proto::sasl::{
    HtMechanism, Mechanism, ScramClient, StoredCredentials, ht_initial_response,
};
use pipit_proto::server::{
    ConflictPolicy, EndPointHashes, Event, FastTokenRecord, Listener, ServerConfig,
    ServerConnection,
};
use pipit_proto::stanza::StanzaError;
use pipit_proto::xml::{Element, Limits, ns};

const DOMAIN: &str = pipit_testkit::DOMAIN;
const PROCEED: &[u8] = pipit_testkit::PROCEED.as_bytes();

fn configs() -> &'static [Arc<ServerConfig>; 3] {
    static CONFIGS: OnceLock<[Arc<ServerConfig>; 3]> = OnceLock::new();
    CONFIGS.get_or_init(|| {
        [
            ConflictPolicy::Replace,
            ConflictPolicy::Refuse,
            ConflictPolicy::Rename,
        ]
        .map(|policy| {
            Arc::new(ServerConfig {
                domains: vec![DOMAIN.into(), "example.org".into()],
                tls: pipit_testkit::server_tls(),
                end_point_hashes: EndPointHashes::single(Some(vec![7; 32])),
                conflict_policy: policy,
                limits: Limits::default(),
                scram_iterations: 16,
                decoy_secret: [9; 32],
                stream_management: Default::default(),
            })
        })
    })
}

fn credentials() -> &'static StoredCredentials {
    static CREDS: OnceLock<StoredCredentials> = OnceLock::new();
    CREDS.get_or_init(|| StoredCredentials::derive("pencil", b"fuzz-salt-123456", 16).unwrap())
}

fn client_configs() -> &'static [Arc<rustls::ClientConfig>; 2] {
    static CONFIGS: OnceLock<[Arc<rustls::ClientConfig>; 2]> = OnceLock::new();
    CONFIGS.get_or_init(|| {
        [&rustls::version::TLS13, &rustls::version::TLS12].map(|version| {
            // No resumption: each run must do the same handshake, or the split and
            // whole runs differ (an abbreviated TLS 1.2 handshake lets the client
            // send its data a flight earlier).
            let mut config = (*pipit_testkit::client_tls(version)).clone();
            config.resumption = rustls::client::Resumption::disabled();
            Arc::new(config)
        })
    })
}

/// A client that never panics: a TLS error from the server just stops its TLS.
struct Client {
    tls: Option<rustls::ClientConnection>,
    awaiting_proceed: bool,
    broken: bool,
    pending: Vec<u8>,
    /// All plaintext the server sent.
    text: Vec<u8>,
}

impl Client {
    fn start_tls(&mut self, config: &Arc<rustls::ClientConfig>, awaiting_proceed: bool) {
        if self.tls.is_none() {
            let name = DOMAIN.try_into().unwrap();
            self.tls = Some(rustls::ClientConnection::new(Arc::clone(config), name).unwrap());
            self.awaiting_proceed = awaiting_proceed;
        }
    }

    fn wire(&mut self, plaintext: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        match &mut self.tls {
            None => out.extend_from_slice(plaintext),
            Some(_) if self.broken => {}
            Some(conn) => {
                if !plaintext.is_empty() {
                    let _ = conn.writer().write_all(plaintext);
                }
                while conn.wants_write() {
                    if conn.write_tls(&mut out).is_err() {
                        break;
                    }
                }
            }
        }
        out
    }

    fn receive(&mut self, mut data: &[u8]) {
        if self.awaiting_proceed {
            self.pending.extend_from_slice(data);
            let Some(at) = find(&self.pending, PROCEED) else {
                return;
            };
            let rest = self.pending.split_off(at + PROCEED.len());
            self.text.append(&mut self.pending);
            self.awaiting_proceed = false;
            return self.receive(&rest);
        }
        let Some(conn) = &mut self.tls else {
            return self.text.extend_from_slice(data);
        };
        while !data.is_empty() && !self.broken {
            if conn.read_tls(&mut data).is_err() || conn.process_new_packets().is_err() {
                self.broken = true;
            }
            let _ = conn.reader().read_to_end(&mut self.text);
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The text between the last `open` and the next `close`.
fn last_between<'a>(text: &'a [u8], open: &str, close: &str) -> Option<&'a [u8]> {
    let start = text
        .windows(open.len())
        .rposition(|w| w == open.as_bytes())?
        + open.len();
    let end = find(&text[start..], close.as_bytes())? + start;
    Some(&text[start..end])
}

/// What one run produced: the events (as text) and the client's plaintext.
struct Run {
    events: Vec<String>,
    text: Vec<u8>,
}

struct Driver {
    conn: ServerConnection,
    listener: Listener,
    client: Client,
    chunk: usize,
    authenticated: bool,
    bound: bool,
    closed: bool,
    taken: Vec<String>,
    tokens: Vec<([u8; 32], String, u64)>,
    scram: Option<ScramClient>,
    sasl2: bool,
    events: Vec<String>,
}

impl Driver {
    /// Delivers one flight as `chunk` says and gives the answer to the client.
    fn flight(&mut self, wire: &[u8]) {
        let chunks: Vec<&[u8]> = if self.chunk == 0 || wire.is_empty() {
            vec![wire]
        } else {
            wire.chunks(self.chunk).collect()
        };
        for chunk in chunks {
            self.conn.handle_input(chunk);
            self.drive();
        }
    }

    /// Answers every event and hands the output to the client.
    fn drive(&mut self) {
        while let Some(event) = self.conn.poll_event() {
            assert!(!self.closed, "an event after Closed: {event:?}");
            self.events.push(format!("{event:?}"));
            match event {
                Event::NeedCredentials { username, domain } => {
                    let known = matches!(username.as_str(), "alice" | "bob") && domain == DOMAIN;
                    self.conn
                        .provide_credentials(known.then(|| credentials().clone()));
                }
                Event::Authenticated { jid, .. } => {
                    assert!(
                        matches!(jid.local(), Some("alice" | "bob")) && jid.domain() == DOMAIN,
                        "authenticated as {jid}"
                    );
                    if self.listener == Listener::StartTls {
                        assert!(self.conn.tls_info().is_some(), "authenticated without TLS");
                    }
                    self.authenticated = true;
                }
                Event::BindRequest { jid, resource, .. } => {
                    assert!(self.authenticated, "bind before authentication");
                    let result = match resource {
                        Some(r) if self.taken.contains(&r) => Err(StanzaError::Conflict),
                        Some(r) => jid.with_resource(&r).map_err(|_| StanzaError::BadRequest),
                        None => jid
                            .with_resource("generated")
                            .map_err(|_| StanzaError::BadRequest),
                    };
                    if let Ok(full) = &result {
                        self.taken.push(full.resource().unwrap().to_owned());
                        self.bound = true;
                    }
                    self.conn.complete_bind(result);
                }
                Event::Stanza(stanza) => {
                    assert!(self.authenticated && self.bound, "a stanza before binding");
                    let me = self.conn.jid().cloned().expect("a bound session has a JID");
                    let to_me = stanza.attr("to").is_none_or(|to| {
                        Jid::parse(to).is_ok_and(|to| to == me || to == me.to_bare())
                    });
                    if to_me {
                        self.conn.send_stanza(&stanza);
                    }
                }
                Event::NeedFastTokens { .. } => {
                    let tokens = self
                        .tokens
                        .iter()
                        .map(|(key, mechanism, _)| FastTokenRecord {
                            key: *key,
                            mechanism: mechanism.clone(),
                        })
                        .collect();
                    self.conn.provide_fast_tokens(tokens);
                }
                Event::FastCount { key, count, .. } => {
                    let fresh = match self.tokens.iter_mut().find(|t| t.0 == key) {
                        Some(token) if count > token.2 => {
                            token.2 = count;
                            true
                        }
                        _ => false,
                    };
                    self.conn.provide_fast_count(fresh);
                }
                Event::IssueFastToken { key, mechanism, .. } => {
                    self.tokens.push((key, mechanism, 0));
                }
                Event::RevokeFastToken { key, .. } => self.tokens.retain(|t| t.0 != key),
                Event::ResumeRequest { .. } => self.conn.complete_resume(None),
                Event::Closed { .. } => self.closed = true,
                _ => {}
            }
        }
        let out = self.conn.take_output();
        self.client.receive(&out);
        if self.closed {
            // After Closed the connection says nothing more, whatever comes in.
            self.conn.handle_input(b"<presence/>");
            self.conn.handle_timeout();
            self.conn.handle_eof();
            assert!(!self.conn.has_output(), "output after Closed");
            assert!(self.conn.poll_event().is_none(), "an event after Closed");
        }
    }

    fn op(&mut self, op: &[u8], config: &Arc<rustls::ClientConfig>) {
        let Some((&code, payload)) = op.split_first() else {
            return;
        };
        match code {
            b'p' => {
                let wire = self.client.wire(payload);
                self.flight(&wire);
            }
            b't' => {
                let mut wire = self.client.wire(payload);
                self.client.start_tls(config, true);
                wire.extend(self.client.wire(b""));
                self.flight(&wire);
            }
            b'w' => self.flight(payload),
            b's' => {
                let v = payload.first().copied().unwrap_or(0);
                let password = if v & 2 == 0 { "pencil" } else { "wrong" };
                let Ok(scram) = ScramClient::new(
                    Mechanism::ScramSha256,
                    "alice",
                    password,
                    None,
                    "cnonce",
                    None,
                    // -PLUS is advertised: the `n` flag, not a downgrade's `y`.
                    true,
                ) else {
                    return;
                };
                let first = BASE64.encode(scram.client_first());
                self.sasl2 = v & 1 != 0;
                let xml = if self.sasl2 {
                    format!(
                        "<authenticate xmlns='urn:xmpp:sasl:2' mechanism='SCRAM-SHA-256'>\
                         <initial-response>{first}</initial-response>\
                         <bind xmlns='urn:xmpp:bind:0'><tag>phone</tag></bind>\
                         <request-token xmlns='urn:xmpp:fast:0' mechanism='HT-SHA-256-NONE'/>\
                         </authenticate>"
                    )
                } else {
                    format!(
                        "<auth xmlns='{}' mechanism='SCRAM-SHA-256'>{first}</auth>",
                        ns::SASL
                    )
                };
                self.scram = Some(scram);
                let wire = self.client.wire(xml.as_bytes());
                self.flight(&wire);
            }
            b'f' => {
                let (open, profile) = if self.sasl2 {
                    ("<challenge xmlns='urn:xmpp:sasl:2'>", ns::SASL2)
                } else {
                    (
                        "<challenge xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>",
                        ns::SASL,
                    )
                };
                let challenge = last_between(&self.client.text, open, "</challenge>")
                    .and_then(|b64| BASE64.decode(b64).ok());
                let response = match (&mut self.scram, challenge) {
                    (Some(scram), Some(challenge)) => scram
                        .handle_server_first(&challenge)
                        .map(|r| BASE64.encode(r))
                        .unwrap_or_default(),
                    _ => String::new(),
                };
                let xml = format!("<response xmlns='{profile}'>{response}</response>");
                let wire = self.client.wire(xml.as_bytes());
                self.flight(&wire);
            }
            b'h' => {
                let count = payload.first().copied().unwrap_or(1);
                let token = last_between(&self.client.text, "token='", "'")
                    .map(|t| String::from_utf8_lossy(t).into_owned())
                    .unwrap_or_default();
                let initial = ht_initial_response(HtMechanism::Sha256None, "alice", &token, &[]);
                let xml = format!(
                    "<authenticate xmlns='urn:xmpp:sasl:2' mechanism='HT-SHA-256-NONE'>\
                     <initial-response>{}</initial-response>\
                     <bind xmlns='urn:xmpp:bind:0'><tag>fast</tag></bind>\
                     <fast xmlns='urn:xmpp:fast:0' count='{count}'/></authenticate>",
                    BASE64.encode(initial)
                );
                let wire = self.client.wire(xml.as_bytes());
                self.flight(&wire);
            }
            b'e' => {
                self.conn.handle_eof();
                self.drive();
            }
            b'o' => {
                self.conn.handle_timeout();
                self.drive();
            }
            b'x' => {
                self.conn.close(None);
                self.drive();
            }
            b'm' => {
                let message = Element::new("message", ns::CLIENT)
                    .with_attr("from", "bob@localhost/home")
                    .with_attr("type", "chat")
                    .with_child(Element::new("body", ns::CLIENT).with_text("hi <&>"));
                let sent = self.conn.send_stanza(&message);
                assert!(!(self.closed && sent), "a stanza written after Closed");
                self.drive();
            }
            _ => {}
        }
    }
}

fn run(mode: u8, chunk: usize, ops: &[&[u8]]) -> Run {
    let listener = if mode & 1 != 0 {
        Listener::DirectTls
    } else {
        Listener::StartTls
    };
    let config = &client_configs()[usize::from(mode >> 1 & 1)];
    let server = Arc::clone(&configs()[usize::from(mode >> 2 & 3) % 3]);
    let mut driver = Driver {
        conn: ServerConnection::new(server, listener, Box::new(SeededRandom::new(7))),
        listener,
        client: Client {
            tls: None,
            awaiting_proceed: false,
            broken: false,
            pending: Vec::new(),
            text: Vec::new(),
        },
        chunk,
        authenticated: false,
        bound: false,
        closed: false,
        taken: vec!["taken".into()],
        tokens: Vec::new(),
        scram: None,
        sasl2: false,
        events: Vec::new(),
    };
    driver.conn.set_time(1_800_000_000);
    if listener == Listener::DirectTls {
        driver.client.start_tls(config, false);
    }
    for op in ops {
        driver.op(op, config);
    }
    Run {
        events: driver.events,
        text: driver.client.text,
    }
}

fuzz_target!(|input: &[u8]| {
    let [mode, chunk, rest @ ..] = input else {
        return;
    };
    let ops: Vec<&[u8]> = rest.split(|&b| b == 0xFF).take(24).collect();
    let split = run(*mode, usize::from(*chunk), &ops);
    if *chunk != 0 {
        let whole = run(*mode, 0, &ops);
        assert_eq!(
            split.events, whole.events,
            "the read boundaries changed the events"
        );
        assert_eq!(
            String::from_utf8_lossy(&split.text),
            String::from_utf8_lossy(&whole.text),
            "the read boundaries changed what the server said"
        );
    }
});
