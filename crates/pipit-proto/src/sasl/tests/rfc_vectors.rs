//! The RFC 5802 §5 and RFC 7677 §3 example exchanges, byte for byte, from both sides.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;

use super::{Mechanism, ScramClient, ServerSession, Step, StoredCredentials, no_cb, tls_cb};

/// One example exchange from an RFC.
struct Vector {
    mech: Mechanism,
    password: &'static str,
    client_nonce: &'static str,
    server_nonce: &'static str,
    salt_b64: &'static str,
    client_first: &'static str,
    server_first: &'static str,
    client_final: &'static str,
    server_final: &'static str,
}

/// RFC 5802 §5.
const RFC5802: Vector = Vector {
    mech: Mechanism::ScramSha1,
    password: "pencil",
    client_nonce: "fyko+d2lbbFgONRv9qkxdawL",
    server_nonce: "3rfcNHYJY1ZVvWVs7j",
    salt_b64: "QSXCR+Q6sek8bf92",
    client_first: "n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL",
    server_first: "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096",
    client_final: "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
    server_final: "v=rmF9pqV8S7suAoZWja4dJRkFsKQ=",
};

/// RFC 7677 §3.
const RFC7677: Vector = Vector {
    mech: Mechanism::ScramSha256,
    password: "pencil",
    client_nonce: "rOprNGfwEbeRWgbNEkqO",
    server_nonce: "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
    salt_b64: "W22ZaJ0SNY7soEsUEjb6gQ==",
    client_first: "n,,n=user,r=rOprNGfwEbeRWgbNEkqO",
    server_first: "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
                   s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
    client_final: "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
                   p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
    server_final: "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=",
};

fn check_client(v: &Vector) {
    // The examples use flag `n`: the client cannot bind although the server may offer -PLUS.
    let mut client =
        ScramClient::new(v.mech, "user", v.password, None, v.client_nonce, None, true).unwrap();
    assert_eq!(client.client_first(), v.client_first.as_bytes());
    let client_final = client
        .handle_server_first(v.server_first.as_bytes())
        .unwrap();
    assert_eq!(String::from_utf8(client_final).unwrap(), v.client_final);
    client
        .verify_server_final(v.server_final.as_bytes())
        .unwrap();
}

fn check_server(v: &Vector, initial_response: bool) {
    let salt = BASE64.decode(v.salt_b64).unwrap();
    let creds = StoredCredentials::derive(v.password, &salt, 4096).unwrap();
    // Flag `n` is acceptable whether or not -PLUS was advertised.
    for cb in [no_cb(), tls_cb()] {
        let mut server = if initial_response {
            let (server, step) =
                ServerSession::start(v.mech, Some(v.client_first.as_bytes()), &cb).unwrap();
            assert_eq!(
                step,
                Step::NeedCredentials {
                    username: "user".into(),
                    authzid: None
                }
            );
            server
        } else {
            let (mut server, step) = ServerSession::start(v.mech, None, &cb).unwrap();
            assert_eq!(step, Step::Challenge(Vec::new()));
            let step = server.respond(v.client_first.as_bytes()).unwrap();
            assert!(matches!(step, Step::NeedCredentials { .. }));
            server
        };
        let step = server.credentials(Some(&creds), v.server_nonce).unwrap();
        assert_eq!(step, Step::Challenge(v.server_first.as_bytes().to_vec()));
        let step = server.respond(v.client_final.as_bytes()).unwrap();
        assert_eq!(
            step,
            Step::Success {
                additional_data: Some(v.server_final.as_bytes().to_vec())
            }
        );
    }
}

#[test]
fn rfc5802_client() {
    check_client(&RFC5802);
}

#[test]
fn rfc5802_server() {
    check_server(&RFC5802, true);
}

#[test]
fn rfc5802_server_without_initial_response() {
    check_server(&RFC5802, false);
}

#[test]
fn rfc7677_client() {
    check_client(&RFC7677);
}

#[test]
fn rfc7677_server() {
    check_server(&RFC7677, true);
}

#[test]
fn rfc7677_server_without_initial_response() {
    check_server(&RFC7677, false);
}

#[test]
fn rfc5802_wrong_server_signature_is_detected() {
    let v = &RFC5802;
    let mut client =
        ScramClient::new(v.mech, "user", v.password, None, v.client_nonce, None, true).unwrap();
    client
        .handle_server_first(v.server_first.as_bytes())
        .unwrap();
    assert_eq!(
        client.verify_server_final(RFC7677.server_final.as_bytes()),
        Err(super::SaslError::ServerSignatureMismatch)
    );
}
