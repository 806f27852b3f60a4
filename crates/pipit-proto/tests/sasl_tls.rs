//! SCRAM (with and without channel binding), TLS versions and session resumption,
//! through the server core.

mod support;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use pipit_proto::sasl::{ChannelBindingType, Mechanism, ScramClient};
use pipit_proto::server::Listener;
use rustls::{ProtocolVersion, SupportedProtocolVersion};
use support::*;

const TLS13: &SupportedProtocolVersion = &rustls::version::TLS13;
const TLS12: &SupportedProtocolVersion = &rustls::version::TLS12;

fn between<'a>(text: &'a str, open: &str, close: &str) -> &'a str {
    let start = text
        .find(open)
        .unwrap_or_else(|| panic!("no {open} in {text}"))
        + open.len();
    let end = text[start..].find(close).unwrap() + start;
    &text[start..end]
}

fn open_tls(version: &'static SupportedProtocolVersion, feed: Feed) -> (Pair, String) {
    let mut pair = Pair::new(Listener::DirectTls, feed);
    pair.client.start_tls(&client_tls(version), false);
    pair.flight(b"");
    pair.flight(header(true).as_bytes());
    let features = pair.client.take_text();
    (pair, features)
}

/// A lockstep SCRAM login; returns the client after verifying the server signature.
fn scram_login(pair: &mut Pair, mech: Mechanism, cb: Option<(ChannelBindingType, Vec<u8>)>) {
    let mut scram =
        ScramClient::new(mech, "alice", PASSWORD, None, "clientnonce123", cb, true).unwrap();
    pair.flight(
        format!(
            "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='{}'>{}</auth>",
            mech.name(),
            BASE64.encode(scram.client_first())
        )
        .as_bytes(),
    );
    let text = pair.client.take_text();
    let challenge = BASE64
        .decode(between(
            &text,
            "<challenge xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>",
            "</challenge>",
        ))
        .unwrap();
    let client_final = scram.handle_server_first(&challenge).unwrap();
    pair.flight(
        format!(
            "<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>{}</response>",
            BASE64.encode(client_final)
        )
        .as_bytes(),
    );
    let text = pair.client.take_text();
    let server_final = BASE64
        .decode(between(
            &text,
            "<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>",
            "</success>",
        ))
        .unwrap();
    scram
        .verify_server_final(&server_final)
        .expect("server signature verifies");
    assert_eq!(pair.server.log.authenticated.len(), 1);
}

/// The SCRAM flights at every split point and one byte at a time.
#[test]
fn scram_sha256_plus_at_every_split() {
    for feed in Feed::all(600) {
        let (mut pair, _) = open_tls(TLS13, feed);
        let data = pair.client.exporter();
        scram_login(
            &mut pair,
            Mechanism::ScramSha256Plus,
            Some((ChannelBindingType::TlsExporter, data)),
        );
    }
}

#[test]
fn scram_sha256_and_sha1_log_in() {
    for mech in [Mechanism::ScramSha256, Mechanism::ScramSha1] {
        let (mut pair, features) = open_tls(TLS13, Feed::Whole);
        assert!(features.contains(&format!("<mechanism>{}</mechanism>", mech.name())));
        scram_login(&mut pair, mech, None);
    }
}

#[test]
fn scram_plus_with_tls_exporter_on_tls13() {
    for mech in [Mechanism::ScramSha256Plus, Mechanism::ScramSha1Plus] {
        let (mut pair, features) = open_tls(TLS13, Feed::Whole);
        // XEP-0440: both types advertised on TLS 1.3.
        assert!(
            features.contains("<channel-binding type='tls-exporter'/>"),
            "{features}"
        );
        assert!(features.contains("<channel-binding type='tls-server-end-point'/>"));
        let data = pair.client.exporter();
        scram_login(
            &mut pair,
            mech,
            Some((ChannelBindingType::TlsExporter, data)),
        );
    }
}

#[test]
fn scram_plus_with_server_end_point_on_tls12() {
    let (mut pair, features) = open_tls(TLS12, Feed::Whole);
    assert!(
        !features.contains("tls-exporter"),
        "RFC 9266: not on TLS 1.2: {features}"
    );
    use sha2::Digest;
    let cert = pair.client.tls().peer_certificates().unwrap()[0].clone();
    let hash = sha2::Sha256::digest(cert.as_ref()).to_vec();
    scram_login(
        &mut pair,
        Mechanism::ScramSha256Plus,
        Some((ChannelBindingType::TlsServerEndPoint, hash)),
    );
}

#[test]
fn wrong_channel_binding_data_fails() {
    let (mut pair, _) = open_tls(TLS13, Feed::Whole);
    let mut scram = ScramClient::new(
        Mechanism::ScramSha256Plus,
        "alice",
        PASSWORD,
        None,
        "nonce",
        Some((ChannelBindingType::TlsExporter, vec![0; 32])),
        true,
    )
    .unwrap();
    let auth = format!(
        "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-256-PLUS'>{}</auth>",
        BASE64.encode(scram.client_first())
    );
    pair.flight(auth.as_bytes());
    let text = pair.client.take_text();
    let challenge = BASE64
        .decode(between(
            &text,
            "<challenge xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>",
            "</challenge>",
        ))
        .unwrap();
    let response = scram.handle_server_first(&challenge).unwrap();
    pair.flight(
        format!(
            "<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>{}</response>",
            BASE64.encode(response)
        )
        .as_bytes(),
    );
    assert!(pair.client.take_text().contains("<failure"));
    assert!(pair.server.log.authenticated.is_empty());
}

#[test]
fn tls_sessions_resume_on_13_and_12() {
    for (version, expected) in [
        (TLS13, ProtocolVersion::TLSv1_3),
        (TLS12, ProtocolVersion::TLSv1_2),
    ] {
        let config = client_tls(version);
        let mut resumed = Vec::new();
        for _ in 0..2 {
            let mut pair = Pair::new(Listener::DirectTls, Feed::Whole);
            pair.client.start_tls(&config, false);
            pair.flight(b"");
            pair.flight(pipelined_login(false).as_bytes());
            if !pair.client.text.contains("hello me") {
                // A full TLS 1.2 handshake holds application data until the server's
                // Finished: one more flight.
                pair.flight(b"");
            }
            assert!(
                pair.client.text.contains("hello me"),
                "{}",
                pair.client.text
            );
            let info = pair.server.conn.tls_info().unwrap();
            assert_eq!(info.version, expected);
            assert_eq!(info.alpn, None);
            resumed.push(info.resumed);
        }
        assert_eq!(resumed, [false, true], "{expected:?}");
    }
}

#[test]
fn no_mechanisms_before_tls_and_auth_is_refused() {
    for feed in Feed::all(400) {
        let mut pair = Pair::new(Listener::StartTls, feed);
        pair.flight(format!("{}{}", header(false), plain_auth("alice", PASSWORD)).as_bytes());
        let text = pair.client.take_text();
        assert!(!text.contains("<mechanisms"), "{text}");
        assert!(
            text.contains(
                "<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><encryption-required/></failure>"
            ),
            "{feed:?}: {text}"
        );
        assert_eq!(pair.server.log.credential_lookups, 0);
    }
}

#[test]
fn unknown_user_fails_like_a_wrong_password() {
    let (mut pair, _) = open_tls(TLS13, Feed::Whole);
    pair.flight(plain_auth("nobody", PASSWORD).as_bytes());
    assert!(pair.client.take_text().contains("<not-authorized/>"));
    pair.flight(plain_auth("alice", "nope").as_bytes());
    assert!(pair.client.take_text().contains("<not-authorized/>"));
    pair.flight(plain_auth("alice", PASSWORD).as_bytes());
    assert!(pair.client.take_text().contains("<success"));
}

#[test]
fn authzid_must_be_the_account() {
    let (mut pair, _) = open_tls(TLS13, Feed::Whole);
    let data = pipit_proto::sasl::plain_initial_response(Some("bob@localhost"), "alice", PASSWORD);
    pair.flight(
        format!(
            "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{}</auth>",
            BASE64.encode(data)
        )
        .as_bytes(),
    );
    assert!(pair.client.take_text().contains("<invalid-authzid/>"));
    let data =
        pipit_proto::sasl::plain_initial_response(Some("alice@localhost"), "alice", PASSWORD);
    pair.flight(
        format!(
            "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{}</auth>",
            BASE64.encode(data)
        )
        .as_bytes(),
    );
    assert!(pair.client.take_text().contains("<success"));
}

#[test]
fn an_unsupported_channel_binding_type_is_named() {
    let (mut pair, _) = open_tls(TLS13, Feed::Whole);
    let first = BASE64.encode("p=tls-unique,,n=alice,r=abcdef");
    pair.flight(
        format!("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-256-PLUS'>{first}</auth>")
            .as_bytes(),
    );
    let text = pair.client.take_text();
    assert!(
        text.contains("<malformed-request/><text xml:lang='en'>"),
        "{text}"
    );
    assert!(text.contains("tls-unique"), "{text}");
    assert_eq!(pair.server.log.credential_lookups, 0);
}
