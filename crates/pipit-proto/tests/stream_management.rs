//! XEP-0198 stream management at the protocol-core level: enabling, counting,
//! acks, the bounded queue, and resumption, with every stream-management flight
//! fed whole, one byte at a time and split at every point.
//!
//! The client is on TLS, so the split is made where it matters, in the plaintext:
//! each piece goes out as its own TLS record and reaches the XML parser alone.

mod support;

use std::sync::{Arc, OnceLock};

use pipit_proto::jid::Jid;
use pipit_proto::random::SeededRandom;
use pipit_proto::sasl::StoredCredentials;
use pipit_proto::server::{
    ConflictPolicy, Event, Listener, ServerConfig, ServerConnection, SmConfig, StreamManagement,
};
use pipit_proto::stanza::StanzaError;
use pipit_proto::xml::{Element, ns};
use support::{Feed, PASSWORD, server_config};

const TLS13: &rustls::SupportedProtocolVersion = &rustls::version::TLS13;

fn credentials() -> &'static StoredCredentials {
    static CREDS: OnceLock<StoredCredentials> = OnceLock::new();
    CREDS.get_or_init(|| StoredCredentials::derive(PASSWORD, b"test-salt-123456", 4096).unwrap())
}

/// A session parked by the driver after its connection dropped.
struct Parked {
    id: String,
    jid: Jid,
    sm: StreamManagement,
}

/// The server core and a small driver: accounts alice and bob, binding as asked,
/// routed stanzas logged, and one parked session to answer `ResumeRequest`s from.
struct Server {
    conn: ServerConnection,
    routed: Vec<Element>,
    enabled: Vec<Option<String>>,
    resume_requests: Vec<(Jid, String)>,
    parked: Option<Parked>,
    closed: Option<Option<String>>,
}

impl Server {
    fn new(config: Arc<ServerConfig>, seed: u64) -> Self {
        Server {
            conn: ServerConnection::new(
                config,
                Listener::DirectTls,
                Box::new(SeededRandom::new(seed)),
            ),
            routed: Vec::new(),
            enabled: Vec::new(),
            resume_requests: Vec::new(),
            parked: None,
            closed: None,
        }
    }

    fn drive(&mut self) {
        while let Some(event) = self.conn.poll_event() {
            match event {
                Event::NeedCredentials { username, .. } => {
                    let known = matches!(username.as_str(), "alice" | "bob");
                    self.conn
                        .provide_credentials(known.then(|| credentials().clone()));
                }
                Event::BindRequest { jid, resource, .. } => {
                    let full = jid.with_resource(&resource.unwrap_or("gen".into()));
                    self.conn
                        .complete_bind(full.map_err(|_| StanzaError::BadRequest));
                }
                Event::Stanza(stanza) => self.routed.push(stanza),
                Event::StreamManagementEnabled { resume_id } => self.enabled.push(resume_id),
                Event::ResumeRequest { jid, previd } => {
                    self.resume_requests.push((jid.clone(), previd.clone()));
                    // The registry's rule: the same id, and the same account.
                    let found = self
                        .parked
                        .take_if(|p| p.id == previd && p.jid.to_bare() == jid)
                        .map(|p| (p.jid, p.sm));
                    self.conn.complete_resume(found);
                }
                Event::Closed { error } => self.closed = Some(error.map(|e| e.to_string())),
                _ => {}
            }
        }
    }
}

/// A client on Direct TLS and the server core, joined in memory.
struct Pair {
    client: pipit_testkit::Client,
    server: Server,
}

impl Pair {
    fn new(config: Arc<ServerConfig>, seed: u64) -> Self {
        let mut client = pipit_testkit::Client::new();
        client.start_tls(&pipit_testkit::client_tls(TLS13), false);
        Pair {
            client,
            server: Server::new(config, seed),
        }
    }

    /// Sends `plaintext` as `feed` cuts it, one TLS record (and one read) per
    /// piece, answering events after each; the client reads the whole answer.
    fn flight(&mut self, feed: Feed, plaintext: &str) {
        let pieces: Vec<Vec<u8>> = if plaintext.is_empty() {
            vec![self.client.wire(b"")]
        } else {
            feed.chunks(plaintext.as_bytes())
                .into_iter()
                .map(|piece| self.client.wire(piece))
                .collect()
        };
        let mut answer = Vec::new();
        for piece in pieces {
            self.server.conn.handle_input(&piece);
            self.server.drive();
            answer.extend(self.server.conn.take_output());
        }
        self.client.receive(&answer);
    }

    /// Routes stanzas to the session, as the driver would.
    fn route(&mut self, stanzas: &[Element]) -> Vec<bool> {
        let sent = stanzas
            .iter()
            .map(|s| self.server.conn.send_stanza(s))
            .collect();
        self.server.drive();
        let answer = self.server.conn.take_output();
        self.client.receive(&answer);
        sent
    }

    /// The connection drops; the driver parks its SM state if it may be resumed.
    fn drop_connection(mut self) -> Option<Parked> {
        self.server.conn.handle_eof();
        self.server.drive();
        if !self.server.conn.can_resume() {
            return None;
        }
        let jid = self.server.conn.jid().cloned()?;
        let sm = self.server.conn.take_stream_management()?;
        Some(Parked {
            id: sm.resume_id()?.to_owned(),
            jid,
            sm,
        })
    }
}

fn config_with(sm: SmConfig) -> Arc<ServerConfig> {
    let mut config = (*server_config(ConflictPolicy::Replace)).clone();
    config.stream_management = sm;
    Arc::new(config)
}

/// TLS, then header, PLAIN and the restart header, then `after` (bind, or not).
fn login(config: Arc<ServerConfig>, seed: u64, after: &str) -> Pair {
    let mut pair = Pair::new(config, seed);
    pair.flight(Feed::Whole, "");
    let auth = format!(
        "{}{}{}{after}",
        pipit_testkit::header(true),
        pipit_testkit::plain_auth("alice", PASSWORD),
        pipit_testkit::header(false),
    );
    pair.flight(Feed::Whole, &auth);
    assert!(
        pair.client.text.contains("<success"),
        "{}",
        pair.client.text
    );
    pair
}

fn bound(config: Arc<ServerConfig>, seed: u64) -> Pair {
    let mut pair = login(config, seed, &pipit_testkit::bind("phone"));
    let text = pair.client.take_text();
    assert!(
        text.contains("<jid>alice@localhost/phone</jid>"),
        "bound: {text}"
    );
    pair
}

fn message(n: usize) -> Element {
    Element::new("message", ns::CLIENT)
        .with_attr("from", "bob@localhost/desk")
        .with_attr("to", "alice@localhost/phone")
        .with_attr("id", format!("m{n}"))
        .with_child(Element::new("body", ns::CLIENT).with_text(format!("body {n}")))
}

fn messages(range: std::ops::RangeInclusive<usize>) -> Vec<Element> {
    range.map(message).collect()
}

fn bodies(text: &str) -> Vec<String> {
    text.split("<body>")
        .skip(1)
        .filter_map(|rest| rest.split_once("</body>").map(|(b, _)| b.to_owned()))
        .collect()
}

fn enabled_id(text: &str) -> String {
    let start = text.find("<enabled ").expect("<enabled/>");
    let rest = &text[start..];
    let id = rest.split_once(" id='").expect("an id").1;
    id.split_once('\'').unwrap().0.to_owned()
}

const ENABLE_RESUME: &str = "<enable xmlns='urn:xmpp:sm:3' resume='true'/>";

#[test]
fn the_feature_is_offered_once_authenticated() {
    let mut pair = Pair::new(server_config(ConflictPolicy::Replace), 1);
    pair.flight(Feed::Whole, "");
    pair.flight(Feed::Whole, &pipit_testkit::header(true));
    let before = pair.client.take_text();
    // XEP-0198 §3: no <sm/> before authentication. SASL2 names it as an inline
    // feature (a <resume/> may ride in <authenticate/>), and Bind2 as one it may
    // enable: neither is an offer to enable it on this stream.
    let sasl2 = before.find("<authentication").unwrap()..before.find("</authentication>").unwrap();
    assert!(
        before[sasl2.clone()].contains("<sm xmlns='urn:xmpp:sm:3'/></inline>"),
        "{before}"
    );
    let outside = format!("{}{}", &before[..sasl2.start], &before[sasl2.end..]);
    assert!(!outside.contains("<sm xmlns='urn:xmpp:sm:3'/>"), "{before}");
    let pair = login(server_config(ConflictPolicy::Replace), 1, "");
    assert!(
        pair.client.text.contains("<sm xmlns='urn:xmpp:sm:3'/>"),
        "{}",
        pair.client.text
    );
}

#[test]
fn enable_counts_and_answers_requests() {
    // A stanza before <enable/> is not counted (§4: h starts at <enabled/>);
    // every stanza after it is, including one answered with an error.
    let flight = format!(
        "<presence/>{ENABLE_RESUME}<message to='bob@localhost'><body>1</body></message>\
         <r xmlns='urn:xmpp:sm:3'/><message to='a@b@c'/><presence/><r xmlns='urn:xmpp:sm:3'/>"
    );
    for feed in Feed::all(flight.len()) {
        let mut pair = bound(server_config(ConflictPolicy::Replace), 2);
        pair.flight(feed, &flight);
        let text = pair.client.take_text();
        let id = enabled_id(&text);
        assert_eq!(id.len(), 32, "{feed:?}: 128 random bits");
        let expected_enabled =
            format!("<enabled xmlns='urn:xmpp:sm:3' id='{id}' resume='true' max='300'/>");
        assert!(text.starts_with(&expected_enabled), "{feed:?}: {text}");
        // The jid-malformed reply is itself a stanza sent, and counted as such.
        let error_at = text.find("<jid-malformed").expect("jid-malformed");
        let a1 = text.find("<a xmlns='urn:xmpp:sm:3' h='1'/>").expect("h=1");
        let a3 = text.find("<a xmlns='urn:xmpp:sm:3' h='3'/>").expect("h=3");
        assert!(a1 < error_at && error_at < a3, "{feed:?}: {text}");
        assert_eq!(pair.server.enabled, [Some(id)], "{feed:?}");
        let sm = pair.server.conn.stream_management().unwrap();
        assert_eq!((sm.handled(), sm.sent(), sm.unacked_len()), (3, 1, 1));
        assert_eq!(pair.server.routed.len(), 3, "{feed:?}");
    }
}

#[test]
fn requests_acks_every_five_stanzas_and_drops_what_is_acknowledged() {
    let acks = "<a xmlns='urn:xmpp:sm:3' h='4'/><a xmlns='urn:xmpp:sm:3' h='6'/>";
    for feed in Feed::all(acks.len()) {
        let mut pair = bound(server_config(ConflictPolicy::Replace), 3);
        pair.flight(Feed::Whole, ENABLE_RESUME);
        pair.client.take_text();
        assert!(pair.route(&messages(1..=6)).iter().all(|s| *s));
        let text = pair.client.take_text();
        assert_eq!(pipit_testkit::count(&text, "<r xmlns='urn:xmpp:sm:3'/>"), 1);
        let r = text.find("<r xmlns").unwrap();
        assert!(
            text.find("body 5").unwrap() < r && r < text.find("body 6").unwrap(),
            "{text}"
        );
        pair.flight(feed, acks);
        let sm = pair.server.conn.stream_management().unwrap();
        assert_eq!((sm.sent(), sm.unacked_len()), (6, 0), "{feed:?}");
        assert!(!pair.server.conn.wants_ack(), "all acknowledged ({feed:?})");
        assert!(pair.client.text.is_empty(), "acks are not answered");
    }
}

#[test]
fn idle_request_is_the_drivers_call() {
    let mut pair = bound(server_config(ConflictPolicy::Replace), 4);
    pair.flight(Feed::Whole, ENABLE_RESUME);
    pair.route(&messages(1..=2));
    pair.client.take_text();
    assert!(pair.server.conn.wants_ack());
    pair.server.conn.request_ack();
    pair.server.conn.request_ack();
    let answer = pair.server.conn.take_output();
    pair.client.receive(&answer);
    assert_eq!(
        pair.client.take_text(),
        "<r xmlns='urn:xmpp:sm:3'/>",
        "one <r/>"
    );
    assert!(!pair.server.conn.wants_ack());
}

#[test]
fn enable_before_bind_fails_then_bind_and_enable_work() {
    let flight = format!(
        "{ENABLE_RESUME}{}{ENABLE_RESUME}<r xmlns='urn:xmpp:sm:3'/>",
        pipit_testkit::bind("phone")
    );
    for feed in Feed::all(flight.len()) {
        let mut pair = login(server_config(ConflictPolicy::Replace), 5, "");
        pair.client.take_text();
        pair.flight(feed, &flight);
        let text = pair.client.take_text();
        let failed = "<failed xmlns='urn:xmpp:sm:3'><unexpected-request \
                      xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></failed>";
        assert!(text.starts_with(failed), "{feed:?}: {text}");
        let jid = text.find("<jid>alice@localhost/phone</jid>").unwrap();
        let enabled = text.find("<enabled ").unwrap();
        assert!(jid < enabled, "{feed:?}: {text}");
        assert!(
            text.ends_with("<a xmlns='urn:xmpp:sm:3' h='0'/>"),
            "{feed:?}: {text}"
        );
    }
}

/// Feeds `flight` to a bound session with SM enabled and expects a stream error.
fn expect_stream_error(flight: &str, expected: &[&str], sm_first: bool) {
    for feed in Feed::all(flight.len()) {
        let mut pair = bound(server_config(ConflictPolicy::Replace), 6);
        if sm_first {
            pair.flight(Feed::Whole, ENABLE_RESUME);
            pair.route(&messages(1..=2));
            pair.client.take_text();
        }
        pair.flight(feed, flight);
        let text = pair.client.take_text();
        for needle in expected {
            assert!(text.contains(needle), "{feed:?}: {needle} in {text}");
        }
        assert!(text.ends_with("</stream:stream>"), "{feed:?}: {text}");
        assert!(pair.server.conn.is_closed());
        assert!(
            !pair.server.conn.can_resume(),
            "a stream error ends the session"
        );
    }
}

#[test]
fn acknowledging_more_than_was_sent_is_undefined_condition() {
    expect_stream_error(
        "<a xmlns='urn:xmpp:sm:3' h='3'/>",
        &[
            "<undefined-condition xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>",
            "handled count too high",
            "<handled-count-too-high xmlns='urn:xmpp:sm:3' h='3' send-count='2'/>",
        ],
        true,
    );
}

#[test]
fn misuse_ends_the_stream() {
    expect_stream_error(
        ENABLE_RESUME,
        &["<policy-violation", "already enabled"],
        true,
    );
    expect_stream_error(
        "<r xmlns='urn:xmpp:sm:3'/>",
        &["<policy-violation", "not enabled"],
        false,
    );
    expect_stream_error(
        "<a xmlns='urn:xmpp:sm:3' h='x'/>",
        &["<policy-violation", "'h'"],
        true,
    );
    expect_stream_error(
        "<enabled xmlns='urn:xmpp:sm:3'/>",
        &["<unsupported-stanza-type"],
        true,
    );
}

#[test]
fn a_full_queue_ends_the_stream_with_resource_constraint() {
    let small = SmConfig {
        max_unacked: 3,
        ..SmConfig::default()
    };
    let mut pair = bound(config_with(small), 7);
    pair.flight(Feed::Whole, ENABLE_RESUME);
    pair.client.take_text();
    // The fourth is not written: the driver gets it back (false).
    assert_eq!(pair.route(&messages(1..=4)), [true, true, true, false]);
    let text = pair.client.take_text();
    assert_eq!(bodies(&text), ["body 1", "body 2", "body 3"]);
    assert!(
        text.contains("<resource-constraint xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>"),
        "{text}"
    );
    assert!(!pair.server.conn.can_resume());
    let mut sm = pair.server.conn.take_stream_management().unwrap();
    assert_eq!(sm.take_unacked(), messages(1..=3), "kept for the driver");
}

#[test]
fn a_clean_close_is_not_resumable_a_drop_is() {
    let mut pair = bound(server_config(ConflictPolicy::Replace), 8);
    pair.flight(Feed::Whole, ENABLE_RESUME);
    pair.flight(Feed::Whole, "</stream:stream>");
    assert!(pair.server.conn.is_closed() && !pair.server.conn.can_resume());

    let mut pair = bound(server_config(ConflictPolicy::Replace), 8);
    pair.flight(Feed::Whole, ENABLE_RESUME);
    assert!(pair.drop_connection().is_some());

    let mut pair = bound(server_config(ConflictPolicy::Replace), 8);
    pair.flight(Feed::Whole, "<enable xmlns='urn:xmpp:sm:3'/>");
    let text = pair.client.take_text();
    assert_eq!(text, "<enabled xmlns='urn:xmpp:sm:3'/>", "no resume asked");
    assert!(pair.drop_connection().is_none());
}

#[test]
fn resumption_is_off_when_the_timeout_is_zero() {
    let off = config_with(SmConfig {
        resume_timeout_secs: 0,
        ..SmConfig::default()
    });
    let mut pair = bound(Arc::clone(&off), 9);
    pair.flight(Feed::Whole, ENABLE_RESUME);
    assert_eq!(pair.client.take_text(), "<enabled xmlns='urn:xmpp:sm:3'/>");
    let mut pair = login(off, 9, "<resume xmlns='urn:xmpp:sm:3' previd='x' h='0'/>");
    assert!(
        pair.client.take_text().contains(
            "<failed xmlns='urn:xmpp:sm:3'><feature-not-implemented \
             xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></failed>"
        ),
        "resume is refused"
    );
}

/// A first connection: enabled with resumption, six stanzas sent, the first two
/// acknowledged, two stanzas received; then it drops.
fn first_connection() -> Parked {
    let mut pair = bound(server_config(ConflictPolicy::Replace), 10);
    pair.flight(
        Feed::Whole,
        &format!("{ENABLE_RESUME}<presence/><message to='bob@localhost'/>"),
    );
    pair.route(&messages(1..=6));
    pair.flight(Feed::Whole, "<a xmlns='urn:xmpp:sm:3' h='2'/>");
    let parked = pair.drop_connection().expect("resumable");
    assert_eq!((parked.sm.handled(), parked.sm.sent()), (2, 6));
    parked
}

#[test]
fn resume_resends_what_was_not_acknowledged_then_carries_on() {
    // The client got stanzas 1–4 (h=4), resumes, and pipelines a message and <r/>.
    let flight = "<resume xmlns='urn:xmpp:sm:3' previd='ID' h='4'/>\
                  <message to='bob@localhost'><body>again</body></message>\
                  <r xmlns='urn:xmpp:sm:3'/>";
    let template = first_connection();
    let flight = flight.replace("ID", &template.id);
    for feed in Feed::all(flight.len()) {
        let mut pair = login(server_config(ConflictPolicy::Replace), 11, "");
        pair.client.take_text();
        pair.server.parked = Some(Parked {
            id: template.id.clone(),
            jid: template.jid.clone(),
            sm: template.sm.clone(),
        });
        pair.flight(feed, &flight);
        let text = pair.client.take_text();
        let resumed = format!(
            "<resumed xmlns='urn:xmpp:sm:3' previd='{}' h='2'/>",
            template.id
        );
        assert!(text.starts_with(&resumed), "{feed:?}: {text}");
        assert_eq!(bodies(&text), ["body 5", "body 6"], "{feed:?}: {text}");
        let r = text.find("<r xmlns='urn:xmpp:sm:3'/>").expect("<r/>");
        assert!(text.find("body 6").unwrap() < r, "{feed:?}");
        // Counters carried on: the pipelined message is the third handled.
        assert!(
            text.ends_with("<a xmlns='urn:xmpp:sm:3' h='3'/>"),
            "{feed:?}: {text}"
        );
        assert_eq!(pair.server.conn.jid(), Some(&template.jid));
        assert_eq!(pair.server.routed.len(), 1);
        assert_eq!(
            pair.server.routed[0].attr("from"),
            Some("alice@localhost/phone"),
            "the old binding carries on"
        );
        assert_eq!(
            pair.server.resume_requests,
            [(template.jid.to_bare(), template.id.clone())]
        );
        // New stanzas continue the sequence: 7 is the next.
        pair.route(&messages(7..=7));
        let sm = pair.server.conn.stream_management().unwrap();
        assert_eq!((sm.sent(), sm.unacked_len()), (7, 3), "{feed:?}");
        // And the session may drop and resume again under the same id.
        let again = pair.drop_connection().expect("still resumable");
        assert_eq!(again.id, template.id);
    }
}

#[test]
fn resume_failures_let_the_client_bind() {
    let template = first_connection();
    let cases = [
        // Unknown id.
        (
            "<resume xmlns='urn:xmpp:sm:3' previd='nope' h='0'/>".to_owned(),
            "item-not-found",
        ),
        // No h.
        (
            format!("<resume xmlns='urn:xmpp:sm:3' previd='{}'/>", template.id),
            "bad-request",
        ),
    ];
    for (resume, condition) in cases {
        let flight = format!("{resume}{}", pipit_testkit::bind("laptop"));
        for feed in Feed::all(flight.len()) {
            let mut pair = login(server_config(ConflictPolicy::Replace), 12, "");
            pair.client.take_text();
            pair.server.parked = Some(Parked {
                id: template.id.clone(),
                jid: template.jid.clone(),
                sm: template.sm.clone(),
            });
            pair.flight(feed, &flight);
            let text = pair.client.take_text();
            let failed = format!(
                "<failed xmlns='urn:xmpp:sm:3'><{condition} \
                 xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></failed>"
            );
            assert!(text.starts_with(&failed), "{feed:?}: {text}");
            assert!(text.contains("<jid>alice@localhost/laptop</jid>"), "{text}");
        }
    }
}

#[test]
fn another_accounts_session_is_not_found() {
    let template = first_connection();
    let mut pair = Pair::new(server_config(ConflictPolicy::Replace), 13);
    pair.flight(Feed::Whole, "");
    let flight = format!(
        "{}{}{}<resume xmlns='urn:xmpp:sm:3' previd='{}' h='0'/>",
        pipit_testkit::header(true),
        pipit_testkit::plain_auth("bob", PASSWORD),
        pipit_testkit::header(false),
        template.id
    );
    pair.server.parked = Some(template);
    pair.flight(Feed::Whole, &flight);
    assert!(
        pair.client.text.contains("<item-not-found"),
        "{}",
        pair.client.text
    );
    assert!(pair.server.parked.is_some(), "alice's session is untouched");
    assert_eq!(pair.server.conn.jid(), None);
}

#[test]
fn resume_at_the_wrong_time_is_unexpected() {
    let template = first_connection();
    let resume = format!(
        "<resume xmlns='urn:xmpp:sm:3' previd='{}' h='0'/>",
        template.id
    );
    // Before authentication: the registry is never consulted.
    let mut pair = Pair::new(server_config(ConflictPolicy::Replace), 14);
    pair.flight(Feed::Whole, "");
    pair.flight(
        Feed::Whole,
        &format!("{}{resume}", pipit_testkit::header(true)),
    );
    assert!(pair.client.text.contains("<unexpected-request"));
    assert!(pair.server.resume_requests.is_empty());
    // After binding.
    let mut pair = bound(server_config(ConflictPolicy::Replace), 14);
    pair.flight(Feed::Whole, &resume);
    assert!(pair.client.text.contains("<unexpected-request"));
    assert!(pair.server.resume_requests.is_empty());
}

#[test]
fn resume_with_h_too_high_ends_the_stream_and_hands_the_session_back() {
    let template = first_connection();
    let flight = format!(
        "<resume xmlns='urn:xmpp:sm:3' previd='{}' h='7'/>",
        template.id
    );
    for feed in Feed::all(flight.len()) {
        let mut pair = login(server_config(ConflictPolicy::Replace), 15, "");
        pair.client.take_text();
        pair.server.parked = Some(Parked {
            id: template.id.clone(),
            jid: template.jid.clone(),
            sm: template.sm.clone(),
        });
        pair.flight(feed, &flight);
        let text = pair.client.take_text();
        assert!(
            text.contains("<handled-count-too-high xmlns='urn:xmpp:sm:3' h='7' send-count='6'/>"),
            "{feed:?}: {text}"
        );
        assert!(!pair.server.conn.can_resume());
        let mut sm = pair.server.conn.take_stream_management().expect("state");
        assert_eq!(
            sm.take_unacked(),
            messages(3..=6),
            "for the driver to bounce"
        );
    }
}

/// Header and a SASL2 PLAIN `<authenticate/>` carrying `inline` (XEP-0388 §2.3).
fn sasl2_login(inline: &str) -> String {
    use base64::Engine;
    let initial = base64::engine::general_purpose::STANDARD.encode(
        pipit_proto::sasl::plain_initial_response(None, "alice", PASSWORD),
    );
    format!(
        "{}<authenticate xmlns='urn:xmpp:sasl:2' mechanism='PLAIN'>\
         <initial-response>{initial}</initial-response>{inline}</authenticate>",
        pipit_testkit::header(true)
    )
}

/// A fresh Direct TLS connection with TLS up, and the first connection's session
/// parked for it to find.
fn direct_with_parked(template: &Parked, seed: u64) -> Pair {
    let mut pair = Pair::new(server_config(ConflictPolicy::Replace), seed);
    pair.flight(Feed::Whole, "");
    pair.client.take_text();
    pair.server.parked = Some(Parked {
        id: template.id.clone(),
        jid: template.jid.clone(),
        sm: template.sm.clone(),
    });
    pair
}

#[test]
fn sasl2_resumes_inline_and_ignores_bind2() {
    // XEP-0198 §5 with SASL2: one flight authenticates and resumes; the Bind2
    // request rides along as a fallback and is ignored once resumption works.
    let template = first_connection();
    let flight = format!(
        "{}<message to='bob@localhost'><body>again</body></message><r xmlns='urn:xmpp:sm:3'/>",
        sasl2_login(&format!(
            "<resume xmlns='urn:xmpp:sm:3' previd='{}' h='4'/>\
             <bind xmlns='urn:xmpp:bind:0'><tag>laptop</tag></bind>",
            template.id
        ))
    );
    for feed in Feed::all(flight.len()) {
        let mut pair = direct_with_parked(&template, 13);
        pair.flight(feed, &flight);
        let text = pair.client.take_text();
        let success = format!(
            "<success xmlns='urn:xmpp:sasl:2'><authorization-identifier>alice@localhost/phone\
             </authorization-identifier><resumed xmlns='urn:xmpp:sm:3' previd='{}' h='2'/></success>",
            template.id
        );
        assert!(text.contains(&success), "{feed:?}: {text}");
        assert!(!text.contains("<bound"), "{feed:?}: {text}");
        assert_eq!(bodies(&text), ["body 5", "body 6"], "{feed:?}: {text}");
        assert!(text.find(&success).unwrap() < text.find("body 5").unwrap());
        assert!(
            text.ends_with("<a xmlns='urn:xmpp:sm:3' h='3'/>"),
            "{feed:?}: {text}"
        );
        assert_eq!(pair.server.conn.jid(), Some(&template.jid));
        assert_eq!(pair.server.routed.len(), 1, "{feed:?}");
        assert_eq!(
            pair.server.routed[0].attr("from"),
            Some("alice@localhost/phone")
        );
        assert!(pair.server.enabled.is_empty(), "nothing enabled anew");
    }
}

#[test]
fn a_failed_sasl2_resumption_binds_a_fresh_session() {
    let template = first_connection();
    let cases = [
        ("previd='nope' h='0'", "item-not-found"),
        ("previd='ID'", "bad-request"),
    ];
    for (attrs, condition) in cases {
        let flight = sasl2_login(&format!(
            "<resume xmlns='urn:xmpp:sm:3' {}/>\
             <bind xmlns='urn:xmpp:bind:0'><tag>laptop</tag>{ENABLE_RESUME}</bind>",
            attrs.replace("ID", &template.id)
        ));
        for feed in Feed::all(flight.len()) {
            let mut pair = direct_with_parked(&template, 14);
            pair.flight(feed, &flight);
            let text = pair.client.take_text();
            let failed = format!(
                "<failed xmlns='urn:xmpp:sm:3'><{condition} \
                 xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></failed></success>"
            );
            assert!(text.contains(&failed), "{feed:?}: {text}");
            assert!(
                text.contains("<authorization-identifier>alice@localhost/laptop"),
                "{feed:?}: {text}"
            );
            assert!(
                text.contains("<bound xmlns='urn:xmpp:bind:0'><enabled xmlns='urn:xmpp:sm:3'"),
                "{feed:?}: {text}"
            );
            // The parked session is untouched: still there to resume.
            assert!(pair.server.parked.is_some(), "{feed:?}");
        }
    }
}
