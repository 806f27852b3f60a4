//! The client state machine against the server core over an in-memory pair that
//! counts round trips: the exact count per mode, mechanism and cache state.

mod support;

use pipit_proto::client::{
    ClientConfig, ClientConnection, ClientError, ClientEvent, KnownServer, Mode, SmSession,
};
use pipit_proto::jid::Jid;
use pipit_proto::random::SeededRandom;
use pipit_proto::sasl::{Mechanism, StoredCredentials};
use pipit_proto::server::{ConflictPolicy, Listener};
use pipit_proto::xml::{Element, ns};
use support::*;

const TLS13: &rustls::SupportedProtocolVersion = &rustls::version::TLS13;

struct Run {
    /// Round trips to the bound session, TCP connect included.
    to_bound: usize,
    /// Round trips until the message to oneself came back.
    to_stanza: usize,
    learned: KnownServer,
    mechanism: Option<&'static str>,
    /// The login resumed a detached session (XEP-0198 §5).
    sm_resumed: bool,
    /// The session as the client left it, to resume later.
    sm_session: Option<SmSession>,
}

/// What outlives one connection on the server: the FAST token store, and the
/// session the connection left detached when it dropped.
#[derive(Default)]
struct Carry {
    tokens: Vec<([u8; 32], String, u64)>,
    parked: Option<Parked>,
    /// The server's wanted SCRAM iteration count and the account's credentials,
    /// when not the defaults (XEP-0480 upgrades).
    iterations: Option<u32>,
    credentials: Option<StoredCredentials>,
    upgrades: usize,
}

fn config(
    mode: Mode,
    mechanism: Option<Mechanism>,
    known: Option<KnownServer>,
    password: &str,
) -> ClientConfig {
    ClientConfig {
        jid: Jid::parse("alice@localhost").unwrap(),
        password: password.into(),
        resource: "pair".into(),
        mechanism,
        mode,
        tls: client_tls(TLS13),
        server_name: "localhost".try_into().unwrap(),
        known,
        user_agent: Some("8c5a7f2e-pair".into()),
    }
}

/// Moves flights between client and server until the self-message is back, counting
/// a round trip for each flight the client sends and then waits on.
fn run(config: ClientConfig, feed: Feed) -> Result<Run, ClientError> {
    run_in(config, feed, &mut Vec::new())
}

/// As [`run`], with a FAST token store that outlives the connection.
fn run_in(
    config: ClientConfig,
    feed: Feed,
    tokens: &mut Vec<([u8; 32], String, u64)>,
) -> Result<Run, ClientError> {
    let mut carry = Carry {
        tokens: std::mem::take(tokens),
        ..Carry::default()
    };
    let run = run_carrying(config, feed, &mut carry);
    *tokens = carry.tokens;
    run
}

/// As [`run`], with the server's state carried over from connection to connection;
/// once the self-message is back the connection drops, leaving the session
/// detached when it is resumable.
fn run_carrying(config: ClientConfig, feed: Feed, carry: &mut Carry) -> Result<Run, ClientError> {
    let listener = if config.mode.direct_tls() {
        Listener::DirectTls
    } else {
        Listener::StartTls
    };
    let mut server = match carry.iterations {
        Some(iterations) => {
            let credentials = carry.credentials.clone().unwrap_or(credentials().clone());
            Harness::with_iterations(listener, feed, iterations, credentials)
        }
        None => Harness::new(listener, ConflictPolicy::Replace, feed),
    };
    server.log.fast_tokens = std::mem::take(&mut carry.tokens);
    server.log.parked = carry.parked.take();
    let mut client = ClientConnection::new(config, Box::new(SeededRandom::new(3)))?;
    let me = Element::new("message", ns::CLIENT)
        .with_attr("to", "alice@localhost")
        .with_child(Element::new("body", ns::CLIENT).with_text("to me"));
    client.send_stanza(&me);
    let mut round_trips = 1;
    let mut to_bound = None;
    loop {
        let flight = client.take_output();
        assert!(
            !flight.is_empty(),
            "the client is waiting with nothing sent; server saw {:?}",
            server.log
        );
        round_trips += 1;
        let answer = server.receive(&flight);
        // The server's answer reaches the client cut the same way.
        for chunk in feed.chunks(&answer) {
            client.handle_input(chunk);
        }
        while let Some(event) = client.poll_event() {
            match event {
                ClientEvent::Bound(jid) => {
                    // Bind2 adds a random part to the tag (XEP-0386 §3).
                    assert!(jid.to_string().starts_with("alice@localhost/pair"), "{jid}");
                    to_bound = Some(round_trips);
                }
                ClientEvent::Stanza(s) if s.get_child("body", ns::CLIENT).is_some() => {
                    server.drop_connection();
                    carry.credentials = Some(server.credentials.clone());
                    carry.upgrades += server.log.upgrades;
                    carry.tokens = std::mem::take(&mut server.log.fast_tokens);
                    carry.parked = server.log.parked.take();
                    return Ok(Run {
                        to_bound: to_bound.expect("bound before stanzas"),
                        to_stanza: round_trips,
                        learned: client.learned().clone(),
                        mechanism: client.mechanism(),
                        sm_resumed: client.sm_resumed(),
                        sm_session: client.sm_session(),
                    });
                }
                ClientEvent::Closed { error } => {
                    carry.tokens = std::mem::take(&mut server.log.fast_tokens);
                    carry.parked = server.log.parked.take();
                    return Err(error.expect("closed with a reason"));
                }
                _ => {}
            }
        }
    }
}

/// What a first login teaches, for the pipelined ones.
fn known(mechanism: Option<Mechanism>) -> KnownServer {
    run(
        config(Mode::Lockstep, mechanism, None, PASSWORD),
        Feed::Whole,
    )
    .unwrap()
    .learned
}

#[test]
fn exact_round_trips_per_mode() {
    for (mechanism, mode, expected_bound, expected_stanza) in [
        (Mechanism::Plain, Mode::Lockstep, 8, 9),
        (Mechanism::Plain, Mode::Pipelined, 4, 4),
        (Mechanism::Plain, Mode::Stunt, 3, 3),
        (Mechanism::Plain, Mode::Direct, 3, 3),
        (Mechanism::ScramSha256, Mode::Lockstep, 9, 10),
        (Mechanism::ScramSha256, Mode::Pipelined, 5, 5),
        (Mechanism::ScramSha256, Mode::Stunt, 4, 4),
        (Mechanism::ScramSha256, Mode::Direct, 4, 4),
        (Mechanism::ScramSha256Plus, Mode::Stunt, 4, 4),
        (Mechanism::Plain, Mode::Sasl2, 3, 3),
        (Mechanism::ScramSha256, Mode::Sasl2, 4, 4),
        (Mechanism::ScramSha256Plus, Mode::Sasl2, 4, 4),
    ] {
        let cache = (mode != Mode::Lockstep).then(|| known(Some(mechanism)));
        let got = run(config(mode, Some(mechanism), cache, PASSWORD), Feed::Whole).unwrap();
        assert_eq!(
            (got.to_bound, got.to_stanza),
            (expected_bound, expected_stanza),
            "{mode:?} {mechanism:?}"
        );
    }
}

#[test]
fn without_grounds_the_client_waits() {
    // Rule 9: no earlier success, so auth waits for the features, the restart for
    // the success and bind for the new features: stunt + PLAIN takes 6, not 3.
    let got = run(
        config(Mode::Stunt, Some(Mechanism::Plain), None, PASSWORD),
        Feed::Whole,
    )
    .unwrap();
    assert_eq!(got.to_bound, 6);
    assert!(got.learned.credentials_ok);
    assert!(
        got.learned
            .mechanisms
            .contains(&"SCRAM-SHA-256".to_string())
    );
}

#[test]
fn the_strongest_mechanism_is_picked_by_default() {
    let learned = known(None);
    let got = run(
        config(Mode::Direct, None, Some(learned), PASSWORD),
        Feed::Whole,
    )
    .unwrap();
    // SCRAM-SHA-256-PLUS: one more round trip than PLAIN.
    assert_eq!(got.mechanism, Some("SCRAM-SHA-256-PLUS"));
    assert_eq!(got.to_bound, 4);
}

#[test]
fn a_wrong_password_is_reported_not_hidden() {
    let cache = known(Some(Mechanism::Plain));
    for mechanism in [Mechanism::Plain, Mechanism::ScramSha256] {
        let err = run(
            config(Mode::Stunt, Some(mechanism), Some(cache.clone()), "wrong"),
            Feed::Whole,
        )
        .err()
        .unwrap();
        assert_eq!(
            err,
            ClientError::AuthFailed {
                condition: "not-authorized".into(),
                text: None
            }
        );
    }
}

#[test]
fn every_split_point_gives_the_same_login() {
    let cache = known(Some(Mechanism::Plain));
    for feed in Feed::all(1400) {
        let got = run(
            config(
                Mode::Stunt,
                Some(Mechanism::Plain),
                Some(cache.clone()),
                PASSWORD,
            ),
            feed,
        )
        .unwrap();
        assert_eq!(got.to_bound, 3, "{feed:?}");
    }
}

#[test]
fn a_cache_that_lacks_the_mechanism_is_not_trusted() {
    let stale = KnownServer {
        mechanisms: vec!["X-UNKNOWN".into()],
        channel_bindings: Vec::new(),
        credentials_ok: true,
        config_version: None,
        fast_mechanisms: Vec::new(),
        fast_token: None,
        ..KnownServer::default()
    };
    let got = run(
        config(Mode::Stunt, Some(Mechanism::Plain), Some(stale), PASSWORD),
        Feed::Whole,
    )
    .unwrap();
    // Auth waits for the real features; restart and bind still pipeline behind it.
    assert_eq!(got.to_bound, 4);
}

#[test]
fn sasl2_without_a_config_version_waits_for_the_features() {
    // A first login teaches the mechanisms but, in lockstep, no SASL2 config version
    // is needed; take it away to see the SASL2 client refuse to pipeline.
    let mut cache = known(Some(Mechanism::Plain));
    cache.config_version = None;
    let got = run(
        config(Mode::Sasl2, Some(Mechanism::Plain), Some(cache), PASSWORD),
        Feed::Whole,
    )
    .unwrap();
    assert_eq!(got.to_bound, 4);
    assert!(
        got.learned.config_version.is_some(),
        "learned for next time"
    );
}

#[test]
fn sasl2_with_a_stale_config_version_retries_and_succeeds() {
    let mut cache = known(Some(Mechanism::Plain));
    cache.config_version = Some("stale".into());
    let got = run(
        config(Mode::Sasl2, Some(Mechanism::Plain), Some(cache), PASSWORD),
        Feed::Whole,
    )
    .unwrap();
    // The refusal arrives with the new features; the retry costs one round trip.
    assert_eq!(got.to_bound, 4);
}

#[test]
fn sasl2_login_at_every_split_point() {
    let cache = known(Some(Mechanism::ScramSha256));
    for feed in Feed::all(1400) {
        let got = run(
            config(
                Mode::Sasl2,
                Some(Mechanism::ScramSha256),
                Some(cache.clone()),
                PASSWORD,
            ),
            feed,
        )
        .unwrap();
        assert_eq!(got.to_bound, 4, "{feed:?}");
    }
}

/// A SASL2 login that asks for a FAST token, then what it learned.
fn with_token(tokens: &mut Vec<([u8; 32], String, u64)>) -> KnownServer {
    let cache = known(Some(Mechanism::Plain));
    let got = run_in(
        config(Mode::Sasl2, Some(Mechanism::Plain), Some(cache), PASSWORD),
        Feed::Whole,
        tokens,
    )
    .unwrap();
    assert!(got.learned.fast_token.is_some(), "a token was issued");
    assert_eq!(tokens.len(), 1, "and stored hashed");
    got.learned
}

#[test]
fn fast_logs_in_without_the_password_in_three_round_trips() {
    let mut tokens = Vec::new();
    let learned = with_token(&mut tokens);
    for feed in Feed::all(1400) {
        let mut store = tokens.clone();
        // No password at all: only the token can have done it.
        let got = run_in(
            config(Mode::Fast, None, Some(learned.clone()), ""),
            feed,
            &mut store,
        )
        .unwrap();
        assert_eq!(got.to_bound, 3, "{feed:?}");
        let rotated = got.learned.fast_token.expect("a fresh token");
        assert_ne!(
            Some(&rotated),
            learned.fast_token.as_ref(),
            "rotated at each login"
        );
    }
}

#[test]
fn a_replayed_fast_count_is_refused() {
    let mut tokens = Vec::new();
    let learned = with_token(&mut tokens);
    run_in(
        config(Mode::Fast, None, Some(learned.clone()), ""),
        Feed::Whole,
        &mut tokens,
    )
    .unwrap();
    // The same cached state again: the same count, which the server has seen.
    let err = run_in(
        config(Mode::Fast, None, Some(learned), ""),
        Feed::Whole,
        &mut tokens,
    )
    .err()
    .unwrap();
    assert!(
        matches!(err, ClientError::AuthFailed { ref condition, .. } if condition == "not-authorized"),
        "{err:?}"
    );
}

#[test]
fn a_token_is_no_good_for_another_mechanism_or_after_it_is_gone() {
    let mut tokens = Vec::new();
    let mut learned = with_token(&mut tokens);
    let mut wrong = learned.clone();
    if let Some(t) = wrong.fast_token.as_mut() {
        t.mechanism = "HT-SHA-256-NONE".into();
    }
    assert!(
        run_in(
            config(Mode::Fast, None, Some(wrong), ""),
            Feed::Whole,
            &mut tokens
        )
        .is_err()
    );
    tokens.clear();
    learned.fast_token.as_mut().unwrap().count += 10;
    assert!(
        run_in(
            config(Mode::Fast, None, Some(learned), ""),
            Feed::Whole,
            &mut tokens
        )
        .is_err()
    );
}

/// A SASL2 login that enables stream management inline and drops its connection
/// once the self-message is back: the server keeps the session detached.
fn detached(carry: &mut Carry) -> KnownServer {
    let cache = known(Some(Mechanism::Plain));
    let first = run_carrying(
        config(Mode::Sasl2, Some(Mechanism::Plain), Some(cache), PASSWORD),
        Feed::Whole,
        carry,
    )
    .unwrap();
    assert!(first.learned.sm_inline && first.learned.sm_resume_inline);
    let session = first.sm_session.clone().expect("resumption granted");
    // The self-message is the one stanza handled from the server.
    assert_eq!(session.h, 1);
    assert!(carry.parked.is_some(), "the dropped session waits");
    KnownServer {
        sm_session: Some(session),
        ..first.learned
    }
}

#[test]
fn sm_resume_takes_the_session_back_in_the_sasl2_round_trips() {
    let mut base = Carry::default();
    let learned = detached(&mut base);
    let parked_jid = base.parked.as_ref().unwrap().jid.clone();
    // With the password (no token cached): as sasl2, 3 round trips.
    let password_only = KnownServer {
        fast_token: None,
        ..learned.clone()
    };
    // With the token: as fast, 3 round trips, and no password.
    for (known, password, mechanism, name) in [
        (password_only, PASSWORD, Some(Mechanism::Plain), "PLAIN"),
        (learned.clone(), "", None, "HT-SHA-256-ENDP"),
    ] {
        for feed in Feed::all(1400) {
            let mut carry = Carry {
                tokens: base.tokens.clone(),
                parked: base.parked.as_ref().map(|p| Parked {
                    id: p.id.clone(),
                    jid: p.jid.clone(),
                    sm: p.sm.clone(),
                }),
                ..Carry::default()
            };
            let got = run_carrying(
                config(Mode::SmResume, mechanism, Some(known.clone()), password),
                feed,
                &mut carry,
            )
            .unwrap();
            assert_eq!((got.to_bound, got.to_stanza), (3, 3), "{name} {feed:?}");
            assert!(got.sm_resumed, "{name} {feed:?}");
            assert_eq!(got.mechanism, Some(name));
            // Same SM-ID, and h counts on from the first connection's 1.
            let session = got.sm_session.expect("still resumable");
            assert_eq!(session.id, learned.sm_session.as_ref().unwrap().id);
            assert_eq!(session.h, 2, "{feed:?}");
            // The old binding carries on, and is parked again.
            assert_eq!(carry.parked.map(|p| p.jid), Some(parked_jid.clone()));
        }
    }
}

#[test]
fn sm_resume_of_an_unknown_session_binds_a_fresh_one() {
    let mut carry = Carry::default();
    let learned = detached(&mut carry);
    carry.parked = None;
    let got = run_carrying(
        config(Mode::SmResume, None, Some(learned.clone()), ""),
        Feed::Whole,
        &mut carry,
    )
    .unwrap();
    // Bind2 rode along as the fallback: no extra round trip.
    assert_eq!(got.to_bound, 3);
    assert!(!got.sm_resumed);
    let fresh = got.sm_session.expect("enabled anew");
    assert_ne!(Some(&fresh.id), learned.sm_session.as_ref().map(|s| &s.id));
    assert_eq!(fresh.h, 1);
}

#[test]
fn sm_resume_without_a_saved_session_says_so() {
    let learned = known(Some(Mechanism::Plain));
    let error = run(
        config(Mode::SmResume, None, Some(learned), PASSWORD),
        Feed::Whole,
    )
    .err();
    assert_eq!(error, Some(ClientError::NoSmSession));
}

#[test]
fn a_password_login_raises_the_iteration_count_once() {
    // XEP-0480: the server wants 8192 iterations, the account has 4096. Two tasks
    // (SHA-1, SHA-256), each <continue/> + <next/>, then the salt and the
    // SaltedPassword: four round trips, once; the message pipelined behind the
    // login is refused meanwhile and sent again after <success/>.
    for (mechanism, plain_trips) in [(Mechanism::Plain, 3), (Mechanism::ScramSha256, 4)] {
        let cache = known(Some(mechanism));
        assert_eq!(
            cache.upgrade_tasks,
            ["UPGR-SCRAM-SHA-1", "UPGR-SCRAM-SHA-256"]
        );
        for feed in Feed::all(1400) {
            let mut carry = Carry {
                iterations: Some(8192),
                ..Carry::default()
            };
            let sasl2 = || config(Mode::Sasl2, Some(mechanism), Some(cache.clone()), PASSWORD);
            let got = run_carrying(sasl2(), feed, &mut carry).unwrap();
            assert_eq!(
                (got.to_bound, got.to_stanza),
                (plain_trips + 4, plain_trips + 5),
                "{mechanism:?} {feed:?}"
            );
            assert_eq!(carry.upgrades, 1);
            let upgraded = carry.credentials.clone().unwrap();
            assert_eq!(upgraded.iterations, 8192);
            assert!(
                upgraded.verify_password(PASSWORD),
                "the same password, re-salted"
            );
            assert_ne!(upgraded.salt, credentials().salt);
            // The account is current now: the next login runs no task.
            let again = run_carrying(sasl2(), feed, &mut carry).unwrap();
            assert_eq!(
                (again.to_bound, again.to_stanza),
                (plain_trips, plain_trips)
            );
            assert_eq!(carry.upgrades, 1, "{mechanism:?} {feed:?}");
        }
    }
}

#[test]
fn a_fast_login_never_upgrades() {
    // A token proves no password: a FAST login gets no task even below the count.
    let mut carry = Carry::default();
    let learned = with_token(&mut carry.tokens);
    carry.iterations = Some(8192);
    let got = run_carrying(
        config(Mode::Fast, None, Some(learned), ""),
        Feed::Whole,
        &mut carry,
    )
    .unwrap();
    assert_eq!(got.to_bound, 3);
    assert_eq!(carry.upgrades, 0);
}
