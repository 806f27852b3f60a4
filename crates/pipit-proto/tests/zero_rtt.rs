//! FAST in TLS 1.3 early data (0-RTT, XEP-0484 §3.4; DESIGN.md rule 7): a returning
//! client bound in two round trips, three when the server refuses the early data,
//! a replayed first flight that changes nothing, and a client that closes as soon
//! as it is bound still keeping the tickets sent after the handshake. Every flight
//! fed whole, byte by byte and split at every point.

mod support;

use std::sync::{Arc, Mutex};

use pipit_proto::client::{ClientConfig, ClientConnection, ClientError, ClientEvent, KnownServer};
use pipit_proto::client::{FastToken, Mode};
use pipit_proto::jid::Jid;
use pipit_proto::random::SeededRandom;
use pipit_proto::sasl::{HtMechanism, HtTokenKey, Mechanism, ht_initial_response};
use pipit_proto::server::Listener;
use pipit_proto::xml::{Element, ns};
use rustls::server::StoresServerSessions;
use support::*;

const TLS13: &rustls::SupportedProtocolVersion = &rustls::version::TLS13;

/// A resumed ClientHello alone is some 400 bytes; with the header and the FAST
/// authenticate as early data the first flight is longer than this.
const EARLY_FLIGHT: usize = 800;

/// The server's FAST token store: (key, mechanism, last count seen).
type Tokens = Vec<([u8; 32], String, u64)>;

struct Run {
    /// Round trips to the bound session, TCP connect included.
    to_bound: usize,
    /// Round trips until the message to oneself came back.
    to_stanza: usize,
    learned: KnownServer,
    mechanism: Option<&'static str>,
    resumed: bool,
    early_data: bool,
    /// The client's first flight: the ClientHello and whatever early data rode with it.
    first_flight: Vec<u8>,
}

fn config(mode: Mode, known: Option<KnownServer>, tls: &Arc<rustls::ClientConfig>) -> ClientConfig {
    ClientConfig {
        jid: Jid::parse("alice@localhost").unwrap(),
        // FAST logins get no password: only the token can do it.
        password: if mode.fast() { "" } else { PASSWORD }.into(),
        resource: "pair".into(),
        mechanism: (!mode.fast()).then_some(Mechanism::Plain),
        mode,
        tls: Arc::clone(tls),
        server_name: "localhost".try_into().unwrap(),
        known,
        user_agent: Some("8c5a7f2e-0rtt".into()),
    }
}

/// Moves flights between the client and a server on `server_tls` until the message
/// to oneself is back, counting a round trip for each flight the client sends and
/// then waits on (as `client_pair.rs` does).
fn run(
    config: ClientConfig,
    feed: Feed,
    server_tls: &Arc<rustls::ServerConfig>,
    tokens: &mut Tokens,
) -> Result<Run, ClientError> {
    let listener = if config.mode.direct_tls() {
        Listener::DirectTls
    } else {
        Listener::StartTls
    };
    let mut server = Harness::with_tls(listener, Arc::clone(server_tls), feed, next_seed());
    server.log.fast_tokens = std::mem::take(tokens);
    let mut client = ClientConnection::new(config, Box::new(SeededRandom::new(3)))?;
    client.send_stanza(&message_to_self());
    let mut round_trips = 1;
    let mut to_bound = None;
    let mut first_flight = None;
    let result = loop {
        let flight = client.take_output();
        assert!(!flight.is_empty(), "the client waits with nothing sent");
        first_flight.get_or_insert_with(|| flight.clone());
        round_trips += 1;
        let answer = server.receive(&flight);
        for chunk in feed.chunks(&answer) {
            client.handle_input(chunk);
        }
        let mut done = None;
        while let Some(event) = client.poll_event() {
            match event {
                ClientEvent::Bound(jid) => {
                    assert!(jid.to_string().starts_with("alice@localhost/pair"), "{jid}");
                    // Stanzas never ride in early data: in 0-RTT none has been
                    // executed yet when the session is bound.
                    if client.early_data_accepted() {
                        assert!(server.log.stanzas.is_empty(), "{:?}", server.log);
                    }
                    to_bound = Some(round_trips);
                }
                ClientEvent::Stanza(s) if s.get_child("body", ns::CLIENT).is_some() => {
                    done = Some(Ok(round_trips));
                }
                ClientEvent::Closed { error } => {
                    done = Some(Err(error.expect("closed with a reason")));
                }
                _ => {}
            }
        }
        if let Some(done) = done {
            break done;
        }
    };
    *tokens = std::mem::take(&mut server.log.fast_tokens);
    let to_stanza = result?;
    let info = client.tls_info().expect("TLS is up");
    Ok(Run {
        to_bound: to_bound.expect("bound before stanzas"),
        to_stanza,
        learned: client.learned().clone(),
        mechanism: client.mechanism(),
        resumed: info.resumed,
        early_data: client.early_data_accepted(),
        first_flight: first_flight.unwrap_or_default(),
    })
}

/// A new seed for each server connection, so that each issues its own FAST token.
fn next_seed() -> u64 {
    static SEED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(100);
    SEED.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

fn message_to_self() -> Element {
    Element::new("message", ns::CLIENT)
        .with_attr("to", "alice@localhost")
        .with_child(Element::new("body", ns::CLIENT).with_text("to me"))
}

/// A client that logged in with its password against `server_tls` (lockstep, then
/// SASL2, which leaves a FAST token): its TLS configuration, whose session cache
/// holds the tickets, what it learned, and the server's token store.
fn returning_client(
    server_tls: &Arc<rustls::ServerConfig>,
) -> (Arc<rustls::ClientConfig>, KnownServer, Tokens) {
    // One configuration for the whole sequence: its session cache is what resumes.
    let client_tls = client_tls(TLS13);
    let mut tokens = Tokens::new();
    let first = run(
        config(Mode::Lockstep, None, &client_tls),
        Feed::Whole,
        server_tls,
        &mut tokens,
    )
    .unwrap();
    assert!(first.learned.fast_zero_rtt, "the server says tls-0rtt");
    let got = run(
        config(Mode::Sasl2, Some(first.learned), &client_tls),
        Feed::Whole,
        server_tls,
        &mut tokens,
    )
    .unwrap();
    let token = got.learned.fast_token.as_ref().expect("a token was issued");
    // tls-exporter cannot be computed before the handshake ends; the end-point
    // hash can, from the certificate of the session resumed.
    assert_eq!(token.mechanism, "HT-SHA-256-ENDP");
    assert!(got.learned.end_point_hash.is_some());
    (client_tls, got.learned, tokens)
}

#[test]
fn a_returning_client_is_bound_in_two_round_trips() {
    let server_tls = Arc::new(pipit_testkit::new_server_tls());
    let (client_tls, mut learned, mut tokens) = returning_client(&server_tls);
    let mut flight_len = 0;
    for feed in every_feed() {
        let got = run(
            config(Mode::Fast0Rtt, Some(learned.clone()), &client_tls),
            feed,
            &server_tls,
            &mut tokens,
        )
        .unwrap();
        // TCP connect, then ClientHello + header + authenticate: the server's first
        // flight carries the SASL2 success with Bind2. The message goes with the
        // Finished (never in early data) and comes back one round trip later.
        assert_eq!((got.to_bound, got.to_stanza), (2, 3), "{feed:?}");
        assert!(got.resumed && got.early_data, "{feed:?}");
        assert_eq!(got.mechanism, Some("HT-SHA-256-ENDP"));
        let used = learned.fast_token.as_ref().unwrap();
        let rotated = got.learned.fast_token.clone().expect("a fresh token");
        assert_ne!(rotated.token, used.token, "rotated at each login");
        learned = got.learned;
        flight_len = flight_len.max(got.first_flight.len());
        if past(feed, flight_len) {
            break;
        }
    }
    assert!(
        flight_len > EARLY_FLIGHT,
        "the login rode in the first flight"
    );
}

/// A 0-RTT login that closes the stream the moment it is bound, as a short-lived
/// client does: its Finished goes out with the closing tag, and what the server
/// sends back (the session tickets of RFC 8446 §4.6.1, then its own close) is fed
/// to the closed client as `feed` says. Returns whether the login rode in early
/// data, what it learned, and the length of what came after the close.
fn close_when_bound(
    config: ClientConfig,
    feed: Feed,
    server_tls: &Arc<rustls::ServerConfig>,
    tokens: &mut Tokens,
) -> (bool, KnownServer, usize) {
    let mut server = Harness::with_tls(
        Listener::DirectTls,
        Arc::clone(server_tls),
        Feed::Whole,
        next_seed(),
    );
    server.log.fast_tokens = std::mem::take(tokens);
    let mut client = ClientConnection::new(config, Box::new(SeededRandom::new(3))).unwrap();
    while !client.is_bound() {
        let flight = client.take_output();
        assert!(
            !flight.is_empty() && !client.is_closed(),
            "the login stalled"
        );
        client.handle_input(&server.receive(&flight));
    }
    client.close();
    let after = server.receive(&client.take_output());
    for chunk in feed.chunks(&after) {
        client.handle_input_after_close(chunk);
    }
    *tokens = std::mem::take(&mut server.log.fast_tokens);
    (
        client.early_data_accepted(),
        client.learned().clone(),
        after.len(),
    )
}

#[test]
fn a_client_that_closes_when_bound_keeps_the_tickets_for_the_next_0rtt_login() {
    let server_tls = Arc::new(pipit_testkit::new_server_tls());
    let (client_tls, mut learned, mut tokens) = returning_client(&server_tls);
    let mut after_len = 0;
    let mut logins = 0;
    // A chain of logins, each resuming with a ticket the previous one kept: the
    // spare tickets of the first logins run out long before the splits do.
    for feed in every_feed() {
        let (early, got, len) = close_when_bound(
            config(Mode::Fast0Rtt, Some(learned.clone()), &client_tls),
            feed,
            &server_tls,
            &mut tokens,
        );
        assert!(early, "login {logins} ({feed:?}) rode in early data");
        learned = got;
        logins += 1;
        after_len = after_len.max(len);
        if past(feed, after_len) {
            break;
        }
    }
    assert!(logins > 8, "more logins than spare tickets: {logins}");
}

/// Whole, byte by byte, then every split point: stop once [`past`] says so.
fn every_feed() -> impl Iterator<Item = Feed> {
    Feed::all(usize::MAX)
}

/// Whether `feed` splits at or beyond the end of a flight of `len` bytes: every
/// split point has been tried.
fn past(feed: Feed, len: usize) -> bool {
    matches!(feed, Feed::SplitAt(n) if n >= len)
}

/// The same client configuration offering ALPN `xmpp-client`, sharing the session
/// cache (as Pipit's client has one for STARTTLS and one for Direct TLS).
fn with_alpn(client_tls: &Arc<rustls::ClientConfig>) -> Arc<rustls::ClientConfig> {
    let mut alpn = (**client_tls).clone();
    alpn.alpn_protocols = vec![b"xmpp-client".to_vec()];
    Arc::new(alpn)
}

#[test]
fn refused_early_data_is_sent_again_with_a_fresh_count() {
    let mut server = pipit_testkit::new_server_tls();
    server.alpn_protocols = vec![b"xmpp-client".to_vec()];
    let server_tls = Arc::new(server);
    let (client_tls, mut learned, mut tokens) = returning_client(&server_tls);
    let alpn = with_alpn(&client_tls);
    for feed in every_feed() {
        // A login without ALPN leaves the newest ticket...
        learned = run(
            config(Mode::Fast, Some(learned), &client_tls),
            Feed::Whole,
            &server_tls,
            &mut tokens,
        )
        .unwrap()
        .learned;
        let used = learned.fast_token.clone().unwrap();
        // ...which resumes, but the ALPN differs: RFC 8446 §4.2.10 has the server
        // refuse the early data, skipped unread. The login goes again after the
        // handshake: one round trip more, and the features are the same, so the
        // cached config version still holds.
        let got = run(
            config(Mode::Fast0Rtt, Some(learned.clone()), &alpn),
            feed,
            &server_tls,
            &mut tokens,
        )
        .unwrap();
        assert_eq!((got.to_bound, got.to_stanza), (3, 3), "{feed:?}");
        assert!(got.resumed && !got.early_data, "{feed:?}");
        assert!(got.first_flight.len() > EARLY_FLIGHT, "it was sent");
        // The retry counted on from the refused attempt: count + 2.
        assert_eq!(
            recorded_count(&tokens, &used),
            Some(used.count + 2),
            "{feed:?}"
        );
        learned = got.learned;
        if past(feed, got.first_flight.len()) {
            break;
        }
    }
}

#[test]
fn a_server_that_stopped_taking_early_data_costs_a_retry() {
    let server_tls = Arc::new(pipit_testkit::new_server_tls());
    let (client_tls, learned, mut tokens) = returning_client(&server_tls);
    // Reconfigured: the same ticket store, no early data.
    let mut refusing = (*server_tls).clone();
    refusing.max_early_data_size = 0;
    let got = run(
        config(Mode::Fast0Rtt, Some(learned), &client_tls),
        Feed::Whole,
        &Arc::new(refusing),
        &mut tokens,
    )
    .unwrap();
    // Resumed, early data refused; the login sent again met features without
    // `tls-0rtt`, so a new config version (XEP-0509): refused without prejudice,
    // retried once. What it learned stops the next login trying 0-RTT.
    assert_eq!((got.to_bound, got.to_stanza), (4, 4));
    assert!(got.resumed && !got.early_data);
    assert!(!got.learned.fast_zero_rtt);
}

#[test]
fn an_unknown_ticket_means_a_full_handshake_and_three_round_trips() {
    let server_tls = Arc::new(pipit_testkit::new_server_tls());
    let (client_tls, mut learned, mut tokens) = returning_client(&server_tls);
    for feed in every_feed() {
        // Another server each time (a restart, another node): the same certificate
        // and features, a ticket store that never saw the client's ticket.
        let stranger = Arc::new(pipit_testkit::new_server_tls());
        let got = run(
            config(Mode::Fast0Rtt, Some(learned.clone()), &client_tls),
            feed,
            &stranger,
            &mut tokens,
        )
        .unwrap();
        assert_eq!((got.to_bound, got.to_stanza), (3, 3), "{feed:?}");
        assert!(!got.resumed && !got.early_data, "{feed:?}");
        assert!(got.first_flight.len() > EARLY_FLIGHT, "it was sent");
        learned = got.learned;
        if past(feed, got.first_flight.len()) {
            break;
        }
    }
}

#[test]
fn without_a_ticket_fast_0rtt_is_fast() {
    let server_tls = Arc::new(pipit_testkit::new_server_tls());
    let (_, learned, mut tokens) = returning_client(&server_tls);
    // A new process: the token is known, the TLS session is not.
    let got = run(
        config(Mode::Fast0Rtt, Some(learned), &client_tls(TLS13)),
        Feed::Whole,
        &server_tls,
        &mut tokens,
    )
    .unwrap();
    assert_eq!(got.to_bound, 3);
    assert!(!got.early_data);
}

/// The count the server's store holds for `token`.
fn recorded_count(tokens: &Tokens, token: &FastToken) -> Option<u64> {
    let key = HtTokenKey::from_token(&token.token).unwrap();
    tokens
        .iter()
        .find(|(k, _, _)| k == key.as_bytes())
        .map(|(_, _, count)| *count)
}

/// A ticket store that lets a ticket be used more than once: what a cluster has
/// whose nodes share tickets without taking them atomically, or a server whose
/// store was restored from a copy. rustls's own store is single-use, so this is
/// how a replay reaches the FAST count check at all.
#[derive(Debug, Default)]
struct ReusableTickets(Mutex<Vec<(Vec<u8>, Vec<u8>)>>);

impl StoresServerSessions for ReusableTickets {
    fn put(&self, key: Vec<u8>, value: Vec<u8>) -> bool {
        self.0.lock().unwrap().push((key, value));
        true
    }

    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        let entries = self.0.lock().unwrap();
        entries
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
    }

    fn take(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.get(key)
    }

    fn can_cache(&self) -> bool {
        true
    }
}

/// Feeds a recorded first flight to a fresh server connection, as an attacker
/// would, and returns what its driver saw.
fn replay(
    server_tls: &Arc<rustls::ServerConfig>,
    flight: &[u8],
    tokens: &Tokens,
    feed: Feed,
) -> Log {
    let mut server = Harness::with_tls(Listener::DirectTls, Arc::clone(server_tls), feed, 7);
    server.log.fast_tokens = tokens.clone();
    let answer = server.receive(flight);
    assert!(!answer.is_empty(), "the server answered the ClientHello");
    // The replayer cannot send the client's Finished: the login never completes,
    // and the login deadline ends it.
    assert!(server.conn.is_logging_in());
    server.conn.handle_timeout();
    assert!(server.conn.is_closed());
    server.log
}

#[test]
fn a_replayed_first_flight_fails_the_count_and_changes_nothing() {
    let mut reusable = pipit_testkit::new_server_tls();
    reusable.session_storage = Arc::new(ReusableTickets::default());
    let server_tls = Arc::new(reusable);
    let (client_tls, learned, mut tokens) = returning_client(&server_tls);
    let genuine = run(
        config(Mode::Fast0Rtt, Some(learned), &client_tls),
        Feed::Whole,
        &server_tls,
        &mut tokens,
    )
    .unwrap();
    assert!(genuine.early_data);
    let flight = genuine.first_flight;
    for feed in Feed::all(flight.len()) {
        let log = replay(&server_tls, &flight, &tokens, feed);
        // The ticket resumed again and the early data was read: the FAST
        // authenticate reached the store, whose count check refused it.
        assert_eq!(log.fast_lookups, 1, "{feed:?}");
        assert_eq!(log.fast_replays_refused, 1, "{feed:?}");
        // Nothing else happened: no login, no resource, no stanza, no token issued
        // or retired.
        assert!(log.authenticated.is_empty(), "{feed:?}");
        assert!(log.bound.is_empty(), "{feed:?}");
        assert!(log.stanzas.is_empty(), "{feed:?}");
        assert_eq!(log.fast_tokens, tokens, "{feed:?}");
    }
}

#[test]
fn a_replay_to_the_same_store_is_not_even_resumed() {
    let server_tls = Arc::new(pipit_testkit::new_server_tls());
    let (client_tls, learned, mut tokens) = returning_client(&server_tls);
    let genuine = run(
        config(Mode::Fast0Rtt, Some(learned), &client_tls),
        Feed::Whole,
        &server_tls,
        &mut tokens,
    )
    .unwrap();
    assert!(genuine.early_data);
    // rustls's tickets are single-use (RFC 8446 §8.1): the replayed ClientHello gets
    // a full handshake and its early data is skipped unread.
    let log = replay(&server_tls, &genuine.first_flight, &tokens, Feed::Whole);
    assert_eq!(log.fast_lookups, 0);
    assert!(log.authenticated.is_empty() && log.stanzas.is_empty());
}

/// The scripted client's early data: the stream header, then `rest`.
fn early_client(client_tls: &Arc<rustls::ClientConfig>, early: &str) -> Client {
    let mut client = Client::new();
    client.start_tls(client_tls, false);
    assert!(
        client.write_early(early.as_bytes()),
        "a resumable session allows early data"
    );
    client
}

/// A FAST `<authenticate/>` with Bind2, for `token` (HT-SHA-256-ENDP), with `count`
/// or none.
fn fast_authenticate(token: &FastToken, end_point_hash: &[u8], count: Option<u64>) -> String {
    use base64::Engine;
    let mechanism = HtMechanism::from_name(&token.mechanism).unwrap();
    let initial = ht_initial_response(mechanism, "alice", &token.token, end_point_hash);
    let count = count
        .map(|c| format!("<fast xmlns='urn:xmpp:fast:0' count='{c}'/>"))
        .unwrap_or_default();
    format!(
        "<authenticate xmlns='urn:xmpp:sasl:2' mechanism='{}'>\
         <initial-response>{}</initial-response>\
         <bind xmlns='urn:xmpp:bind:0'><tag>early</tag></bind>{count}</authenticate>",
        token.mechanism,
        base64::engine::general_purpose::STANDARD.encode(initial)
    )
}

/// A SASL2 PLAIN `<authenticate/>` with Bind2.
fn plain_authenticate() -> String {
    use base64::Engine;
    let initial = base64::engine::general_purpose::STANDARD.encode(format!("\0alice\0{PASSWORD}"));
    format!(
        "<authenticate xmlns='urn:xmpp:sasl:2' mechanism='PLAIN'>\
         <initial-response>{initial}</initial-response>\
         <bind xmlns='urn:xmpp:bind:0'><tag>early</tag></bind></authenticate>"
    )
}

/// Sends `early` as 0-RTT data to a server on `server_tls` and hands the driver's
/// log to `after_first` (the handshake not complete) and to `after_finished` (the
/// client's Finished processed), with what the client read by then.
fn early_exchange(
    server_tls: &Arc<rustls::ServerConfig>,
    client_tls: &Arc<rustls::ClientConfig>,
    tokens: &mut Tokens,
    early: &str,
    feed: Feed,
    after_first: impl FnOnce(&Log, &str),
    after_finished: impl FnOnce(&Log, &str),
) -> usize {
    let mut client = early_client(client_tls, early);
    let mut server = Harness::with_tls(
        Listener::DirectTls,
        Arc::clone(server_tls),
        feed,
        next_seed(),
    );
    server.log.fast_tokens = std::mem::take(tokens);
    let flight = client.wire(b"");
    let answer = server.receive(&flight);
    client.receive(&answer);
    assert!(client.tls().is_early_data_accepted(), "{feed:?}");
    after_first(&server.log, &client.take_text());
    // EndOfEarlyData and the Finished; the answer brings new tickets too.
    let answer = server.receive(&client.wire(b""));
    client.receive(&answer);
    after_finished(&server.log, &client.take_text());
    *tokens = std::mem::take(&mut server.log.fast_tokens);
    flight.len()
}

#[test]
fn a_stanza_in_early_data_waits_for_the_handshake() {
    let server_tls = Arc::new(pipit_testkit::new_server_tls());
    let (client_tls, learned, mut tokens) = returning_client(&server_tls);
    let token = learned.fast_token.clone().unwrap();
    let hash = learned.end_point_hash.clone().unwrap();
    let mut count = token.count;
    let message = message_to("alice@localhost", "from early data");
    for feed in every_feed() {
        count += 1;
        let early = format!(
            "{}{}{message}",
            header(true),
            fast_authenticate(&token, &hash, Some(count))
        );
        let len = early_exchange(
            &server_tls,
            &client_tls,
            &mut tokens,
            &early,
            feed,
            |log, text| {
                // The counted FAST authenticate was acted on at once: bound, and
                // the success went out before the client's Finished.
                assert_eq!(log.authenticated.len(), 1, "{feed:?}");
                assert_eq!(log.bound.len(), 1, "{feed:?}");
                assert!(
                    text.contains("<success xmlns='urn:xmpp:sasl:2'>"),
                    "{feed:?}: {text}"
                );
                // The message was not.
                assert!(log.stanzas.is_empty(), "{feed:?}");
                assert!(!text.contains("from early data"), "{feed:?}: {text}");
            },
            |log, text| {
                assert_eq!(log.stanzas.len(), 1, "{feed:?}");
                assert!(text.contains("from early data"), "{feed:?}: {text}");
            },
        );
        if past(feed, len) {
            break;
        }
    }
}

#[test]
fn a_password_in_early_data_is_refused() {
    let server_tls = Arc::new(pipit_testkit::new_server_tls());
    let (client_tls, _, mut tokens) = returning_client(&server_tls);
    let early = format!(
        "{}{}{}",
        header(true),
        plain_authenticate(),
        message_to("alice@localhost", "after plain")
    );
    for feed in every_feed() {
        let len = early_exchange(
            &server_tls,
            &client_tls,
            &mut tokens,
            &early,
            feed,
            |log, text| {
                // The stream opened (the features went out), nothing else.
                assert!(text.contains("<stream:features>"), "{feed:?}: {text}");
                assert_eq!(log.credential_lookups, 0, "{feed:?}");
                assert!(log.authenticated.is_empty() && log.stanzas.is_empty());
            },
            |log, text| {
                // Rule 7: never a password in early data, even from the client's
                // own connection: it was sent without forward secrecy.
                assert!(log.authenticated.is_empty(), "{feed:?}");
                assert!(
                    text.contains("no password in TLS early data"),
                    "{feed:?}: {text}"
                );
                assert!(log.stanzas.is_empty(), "{feed:?}");
            },
        );
        if past(feed, len) {
            break;
        }
    }
}

#[test]
fn a_fast_authenticate_without_a_count_in_early_data_is_refused() {
    let server_tls = Arc::new(pipit_testkit::new_server_tls());
    let (client_tls, learned, mut tokens) = returning_client(&server_tls);
    let token = learned.fast_token.clone().unwrap();
    let hash = learned.end_point_hash.clone().unwrap();
    let early = format!(
        "{}{}{}",
        header(true),
        fast_authenticate(&token, &hash, None),
        message_to("alice@localhost", "never")
    );
    for feed in every_feed() {
        let len = early_exchange(
            &server_tls,
            &client_tls,
            &mut tokens,
            &early,
            feed,
            |log, _| assert_eq!(log.fast_lookups, 0, "{feed:?}"),
            |log, text| {
                // XEP-0484 §3.4: refused, even now that the handshake is complete;
                // the token was never looked at, and the message is not executed.
                assert_eq!(log.fast_lookups, 0, "{feed:?}");
                assert!(log.authenticated.is_empty() && log.stanzas.is_empty());
                assert!(text.contains("needs a count"), "{feed:?}: {text}");
                assert!(text.contains("<malformed-request"), "{feed:?}: {text}");
            },
        );
        if past(feed, len) {
            break;
        }
    }
}

#[test]
fn the_features_say_tls_0rtt_only_where_early_data_is_taken() {
    let mut refusing = pipit_testkit::new_server_tls();
    refusing.max_early_data_size = 0;
    let mut stateless = pipit_testkit::new_server_tls();
    stateless.ticketer = rustls::crypto::ring::Ticketer::new().unwrap();
    for (tls, expected) in [
        (pipit_testkit::new_server_tls(), true),
        (refusing, false),
        // rustls takes no early data on sessions from stateless tickets.
        (stateless, false),
    ] {
        let tls = Arc::new(tls);
        let mut pair = Pair {
            server: Harness::with_tls(Listener::DirectTls, tls, Feed::Whole, 7),
            client: Client::new(),
            round_trips: 1,
        };
        pair.client.start_tls(&client_tls(TLS13), false);
        pair.flight(b"");
        pair.flight(header(true).as_bytes());
        let text = pair.client.take_text();
        assert_eq!(text.contains("tls-0rtt='true'"), expected, "{text}");
    }
}
