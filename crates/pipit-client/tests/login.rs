//! Logins against a real Pipit server over loopback: the exact round trips per mode
//! and mechanism, the grounds for pipelining (rule 9), the state file, the relay.

mod support;

use std::time::Duration;

use pipit_client::{ClientError, Error, Mechanism, Mode, Session, State};
use support::*;

/// Round trips to the bound resource with the server's facts cached, per mode.
const PLAIN: [(Mode, usize); 4] = [
    (Mode::Lockstep, 8),
    (Mode::Pipelined, 4),
    (Mode::Stunt, 3),
    (Mode::Direct, 3),
];
/// SCRAM costs one more round trip, except in lockstep, which pays it anyway.
const SCRAM: [(Mode, usize); 4] = [
    (Mode::Lockstep, 9),
    (Mode::Pipelined, 5),
    (Mode::Stunt, 4),
    (Mode::Direct, 4),
];

#[tokio::test]
async fn exact_round_trips_per_mode_with_cached_state() {
    let server = TestServer::start().await;
    for (mechanism, expected) in [(Mechanism::Plain, PLAIN), (Mechanism::ScramSha256, SCRAM)] {
        // Lockstep first, with nothing known: it teaches the others.
        let state = State::in_memory();
        let tls = trusting_test_ca();
        for (i, (mode, round_trips)) in expected.into_iter().enumerate() {
            let options = server.options(mode, Some(mechanism), &tls, &state);
            let (report, arrived) = login_and_echo(options).await;
            assert_eq!(report.round_trips, round_trips, "{mode:?} {mechanism:?}");
            assert_eq!(report.mechanism, Some(mechanism.name()));
            assert_eq!(report.tls_version.as_deref(), Some("TLS 1.3"));
            assert_eq!(report.jid.to_string(), "alice@localhost/pipit");
            assert_eq!(report.pipelined, mode != Mode::Lockstep);
            // One shared TLS config: every login after the first resumes.
            assert_eq!(report.resumed, i > 0, "{mode:?}");
            assert!(arrived >= report.login_time);
        }
    }
    server.stop().await;
}

#[tokio::test]
async fn the_strongest_mechanism_is_the_default() {
    let server = TestServer::start().await;
    let state = State::in_memory();
    let tls = trusting_test_ca();
    let first = login_and_echo(server.options(Mode::Lockstep, None, &tls, &state)).await;
    assert_eq!(first.0.mechanism, Some(Mechanism::ScramSha256Plus.name()));
    assert_eq!(first.0.round_trips, 9);
    let direct = login_and_echo(server.options(Mode::Direct, None, &tls, &state)).await;
    assert_eq!(direct.0.mechanism, Some(Mechanism::ScramSha256Plus.name()));
    assert_eq!(direct.0.round_trips, 4);
    server.stop().await;
}

#[tokio::test]
async fn without_grounds_the_first_login_does_not_pipeline() {
    let server = TestServer::start().await;
    let state = State::in_memory();
    let tls = trusting_test_ca();
    let options = server.options(Mode::Stunt, Some(Mechanism::Plain), &tls, &state);
    // Auth waits for the features, the restart for the success, bind for the
    // restarted stream's features: 6, not 3.
    let (first, _) = login_and_echo(options.clone()).await;
    assert_eq!((first.round_trips, first.pipelined), (6, false));
    let (second, _) = login_and_echo(options).await;
    assert_eq!((second.round_trips, second.pipelined), (3, true));
    server.stop().await;
}

#[tokio::test]
async fn the_state_file_carries_the_grounds_to_the_next_process() {
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    let state = State::open(&path).unwrap();
    let options = server.options(
        Mode::Stunt,
        Some(Mechanism::Plain),
        &trusting_test_ca(),
        &state,
    );
    let (first, _) = login_and_echo(options).await;
    assert_eq!(first.round_trips, 6);

    let text = std::fs::read_to_string(&path).unwrap();
    assert!(!text.contains(PASSWORD), "the password leaked: {text}");
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    let entry = &json["servers"][0];
    assert_eq!(entry["server"], server.c2s.to_string());
    assert_eq!(entry["jid"], ALICE);
    assert_eq!(entry["credentials_ok"], true);
    assert!(
        entry["mechanisms"]
            .as_array()
            .unwrap()
            .contains(&"PLAIN".into())
    );

    // A new "process": the file, but no TLS session to resume.
    let reloaded = State::open(&path).unwrap();
    let options = server.options(
        Mode::Stunt,
        Some(Mechanism::Plain),
        &trusting_test_ca(),
        &reloaded,
    );
    let (second, _) = login_and_echo(options).await;
    assert_eq!((second.round_trips, second.resumed), (3, false));
    server.stop().await;
}

#[tokio::test]
async fn a_wrong_password_fails_and_stops_pipelining() {
    let server = TestServer::start().await;
    let state = State::in_memory();
    let tls = trusting_test_ca();
    let options = server.options(Mode::Stunt, Some(Mechanism::Plain), &tls, &state);
    login_and_echo(options.clone()).await;
    for mechanism in [Mechanism::Plain, Mechanism::ScramSha256] {
        let mut wrong = options.clone();
        wrong.mechanism = Some(mechanism);
        wrong.password = "wrong".into();
        let err = Session::login(&wrong).await.unwrap_err();
        assert!(
            matches!(
                &err,
                Error::Protocol(ClientError::AuthFailed { condition, .. }) if condition == "not-authorized"
            ),
            "{err:?}"
        );
    }
    // The failure took away the grounds: the next login waits again.
    let (next, _) = login_and_echo(options).await;
    assert_eq!((next.round_trips, next.pipelined), (6, false));
    server.stop().await;
}

#[tokio::test]
async fn the_relay_adds_time_not_round_trips() {
    let server = TestServer::start().await;
    let state = State::in_memory();
    let tls = trusting_test_ca();
    let rtt = Duration::from_millis(40);
    for (mode, round_trips) in PLAIN {
        let mut options = server.options(mode, Some(Mechanism::Plain), &tls, &state);
        options.emulated_rtt = Some(rtt);
        let (report, arrived) = login_and_echo(options).await;
        assert_eq!(report.round_trips, round_trips, "{mode:?}");
        // A lower bound is deterministic; an upper one would not be.
        assert!(report.login_time >= rtt * round_trips as u32, "{report:?}");
        assert!(arrived >= report.login_time);
    }
    server.stop().await;
}

#[tokio::test]
async fn fast_0rtt_is_bound_in_two_round_trips_or_falls_back_to_three() {
    let server = TestServer::start().await;
    let state = State::in_memory();
    // One TLS configuration: its session cache holds the tickets.
    let tls = trusting_test_ca();
    // A password login leaves a FAST token; the SASL2 one is Direct TLS, so the
    // newest ticket carries ALPN `xmpp-client` as the 0-RTT login will.
    for mode in [Mode::Lockstep, Mode::Sasl2] {
        login_and_echo(server.options(mode, Some(Mechanism::Plain), &tls, &state)).await;
    }
    let rtt = Duration::from_millis(40);
    let mut options = server.options(Mode::Fast0Rtt, None, &tls, &state);
    options.emulated_rtt = Some(rtt);
    let (report, arrived) = login_and_echo(options).await;
    assert_eq!(report.round_trips, 2, "{report:?}");
    assert!(report.resumed && report.early_data, "{report:?}");
    assert_eq!(report.mechanism, Some("HT-SHA-256-ENDP"));
    assert!(report.login_time >= rtt * 2, "{report:?}");
    // The message to oneself never rides in early data: it goes with the Finished.
    assert!(arrived >= rtt * 3, "{arrived:?}");
    // Now the newest ticket is from a STARTTLS login, without ALPN: the session
    // resumes, but the server refuses early data that does not match it (RFC 8446
    // §4.2.10), and the login goes again after the handshake.
    login_and_echo(server.options(Mode::Stunt, Some(Mechanism::Plain), &tls, &state)).await;
    let (report, _) = login_and_echo(server.options(Mode::Fast0Rtt, None, &tls, &state)).await;
    assert_eq!(report.round_trips, 3, "{report:?}");
    assert!(report.resumed && !report.early_data, "{report:?}");
    // And it left a ticket from Direct TLS: 0-RTT again.
    let (report, _) = login_and_echo(server.options(Mode::Fast0Rtt, None, &tls, &state)).await;
    assert_eq!((report.round_trips, report.early_data), (2, true));
    server.stop().await;
}

#[tokio::test]
async fn a_session_sends_and_receives_after_login() {
    use pipit_client::xml::{Element, ns};
    let server = TestServer::start().await;
    let options = server.options(Mode::Direct, None, &trusting_test_ca(), &State::in_memory());
    let mut session = Session::login(&options).await.unwrap();
    // Nothing was sent, so nothing comes.
    let quiet = session.next_stanza(Duration::from_millis(200)).await;
    assert!(matches!(quiet, Err(Error::Timeout(_))), "{quiet:?}");
    let ping = Element::new("iq", ns::CLIENT)
        .with_attr("type", "get")
        .with_attr("id", "p1")
        .with_child(Element::new("ping", "urn:xmpp:ping"));
    session.send(&ping).await.unwrap();
    let reply = session
        .next_stanza(Duration::from_secs(10))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((reply.name(), reply.attr("id")), ("iq", Some("p1")));
    assert_eq!(reply.attr("type"), Some("result"));
    session.close().await.unwrap();
    server.stop().await;
}
