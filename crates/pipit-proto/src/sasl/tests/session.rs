//! Whole exchanges through `ServerSession`: PLAIN, SCRAM names, call order, sticky errors.

use super::{
    Mechanism, SERVER_NONCE, SaslError, ScramClient, ServerSession, Step, client, creds, no_cb,
    plain_session, run_plain, run_scram, server_first,
};
use crate::sasl::plain_initial_response;

fn success_without_data() -> Step {
    Step::Success {
        additional_data: None,
    }
}

#[test]
fn plain_success() {
    assert_eq!(
        run_plain("user", "pencil", Some(&creds("pencil"))),
        Ok(success_without_data())
    );
}

#[test]
fn plain_wrong_password() {
    assert_eq!(
        run_plain("user", "pencil2", Some(&creds("pencil"))),
        Err(SaslError::NotAuthorized)
    );
}

#[test]
fn plain_reports_authzid_and_prepared_username() {
    let msg = plain_initial_response(Some("juliet@example.com"), "us\u{00AD}er", "pencil");
    let (_, step) = ServerSession::start(Mechanism::Plain, Some(&msg), &no_cb()).unwrap();
    assert_eq!(
        step,
        Step::NeedCredentials {
            username: "user".into(),
            authzid: Some("juliet@example.com".into())
        }
    );
}

#[test]
fn plain_password_is_saslprepped() {
    // U+00AD SOFT HYPHEN maps to nothing (RFC 4013 §2.1).
    let stored = creds("password");
    assert_eq!(
        run_plain("user", "pass\u{00AD}word", Some(&stored)),
        Ok(success_without_data())
    );
    let stored = creds("pass\u{00AD}word");
    assert_eq!(
        run_plain("user", "password", Some(&stored)),
        Ok(success_without_data())
    );
}

#[test]
fn plain_without_initial_response() {
    let (mut server, step) = ServerSession::start(Mechanism::Plain, None, &no_cb()).unwrap();
    assert_eq!(step, Step::Challenge(Vec::new()));
    let step = server.respond(b"\0user\0pencil").unwrap();
    assert!(matches!(step, Step::NeedCredentials { .. }));
    assert_eq!(
        server.credentials(Some(&creds("pencil")), ""),
        Ok(success_without_data())
    );
}

#[test]
fn plain_empty_initial_response_is_malformed() {
    let result = ServerSession::start(Mechanism::Plain, Some(b""), &no_cb());
    assert!(matches!(result, Err(SaslError::MalformedRequest(_))));
}

#[test]
fn scram_success_both_hashes() {
    for mech in [Mechanism::ScramSha256, Mechanism::ScramSha1] {
        let mut c = client(mech, "user", "pencil");
        assert_eq!(
            run_scram(mech, &mut c, &no_cb(), Some(&creds("pencil"))),
            Ok(())
        );
    }
}

#[test]
fn scram_hash_mismatch_fails() {
    // A SHA-1 client proof checked as SHA-256 (or the reverse) cannot verify.
    let mut c = client(Mechanism::ScramSha1, "user", "pencil");
    assert_eq!(
        run_scram(
            Mechanism::ScramSha256,
            &mut c,
            &no_cb(),
            Some(&creds("pencil"))
        ),
        Err(SaslError::NotAuthorized)
    );
}

#[test]
fn scram_password_and_username_are_saslprepped() {
    let mut c = client(Mechanism::ScramSha256, "us\u{00AD}er", "pen\u{00AD}cil");
    assert!(c.client_first().ends_with(b"n=user,r=cl1ent-n0nce"));
    assert_eq!(
        run_scram(
            Mechanism::ScramSha256,
            &mut c,
            &no_cb(),
            Some(&creds("pencil"))
        ),
        Ok(())
    );
    let (_, step) = ServerSession::start(
        Mechanism::ScramSha1,
        Some(b"n,,n=us\xc2\xader,r=x"),
        &no_cb(),
    )
    .unwrap();
    assert!(matches!(step, Step::NeedCredentials { username, .. } if username == "user"));
}

#[test]
fn scram_username_escaping() {
    let mut c = client(Mechanism::ScramSha256, "a,b=c", "pencil");
    assert!(c.client_first().starts_with(b"y,,n=a=2Cb=3Dc,r="));
    let (_, step) =
        ServerSession::start(Mechanism::ScramSha256, Some(&c.client_first()), &no_cb()).unwrap();
    assert_eq!(
        step,
        Step::NeedCredentials {
            username: "a,b=c".into(),
            authzid: None
        }
    );
    assert_eq!(
        run_scram(
            Mechanism::ScramSha256,
            &mut c,
            &no_cb(),
            Some(&creds("pencil"))
        ),
        Ok(())
    );
}

#[test]
fn scram_reports_authzid() {
    let c = ScramClient::new(
        Mechanism::ScramSha256,
        "user",
        "pencil",
        Some("x,y=z@example.com"),
        "abc",
        None,
        false,
    )
    .unwrap();
    assert!(
        c.client_first()
            .starts_with(b"y,a=x=2Cy=3Dz@example.com,n=user,")
    );
    let (_, step) =
        ServerSession::start(Mechanism::ScramSha256, Some(&c.client_first()), &no_cb()).unwrap();
    assert_eq!(
        step,
        Step::NeedCredentials {
            username: "user".into(),
            authzid: Some("x,y=z@example.com".into())
        }
    );
}

#[test]
fn scram_rejects_bad_usernames_and_extensions() {
    let start = |msg: &[u8]| ServerSession::start(Mechanism::ScramSha256, Some(msg), &no_cb());
    assert!(matches!(
        start(b"n,,m=x,n=user,r=abc"),
        Err(SaslError::MalformedRequest(_))
    ));
    assert!(matches!(
        start(b"n,,n=us\xffer,r=abc"),
        Err(SaslError::IncorrectEncoding)
    ));
    assert!(matches!(
        start(b"n,,n=us\x07er,r=abc"),
        Err(SaslError::NotAuthorized)
    ));
    assert!(matches!(
        start(b"n,a=,n=user,r=abc"),
        Err(SaslError::InvalidAuthzid)
    ));
}

#[test]
fn scram_server_nonce_tampering_fails() {
    let mut c = client(Mechanism::ScramSha256, "user", "pencil");
    let (mut server, first) = server_first(
        Mechanism::ScramSha256,
        &c.client_first(),
        &no_cb(),
        Some(&creds("pencil")),
    )
    .unwrap();
    let client_final = String::from_utf8(c.handle_server_first(&first).unwrap()).unwrap();
    let tampered = client_final.replacen(SERVER_NONCE, "srvnonce+/y", 1);
    assert_ne!(tampered, client_final);
    assert_eq!(
        server.respond(tampered.as_bytes()),
        Err(SaslError::NotAuthorized)
    );
}

#[test]
fn scram_client_rejects_nonce_not_extending_its_own() {
    for first in [
        "r=other-nonce-srv,s=QSXCR+Q6sek8bf92,i=4096",
        "r=cl1ent-n0nce,s=QSXCR+Q6sek8bf92,i=4096",
        "r=cl1ent-n0ncX-srv,s=QSXCR+Q6sek8bf92,i=4096",
    ] {
        let mut c = client(Mechanism::ScramSha1, "user", "pencil");
        assert!(matches!(
            c.handle_server_first(first.as_bytes()),
            Err(SaslError::InvalidServerMessage(_))
        ));
    }
}

#[test]
fn scram_client_server_final_errors() {
    let mut c = client(Mechanism::ScramSha1, "user", "pencil");
    assert!(c.verify_server_final(b"v=AAAA").is_err());
    c.handle_server_first(b"r=cl1ent-n0nce-srv,s=QSXCR+Q6sek8bf92,i=16")
        .unwrap();
    assert_eq!(
        c.verify_server_final(b"e=invalid-proof"),
        Err(SaslError::ServerError("invalid-proof".into()))
    );
    assert_eq!(
        c.verify_server_final(b"v=rmF9pqV8S7suAoZWja4dJRkFsKQ="),
        Err(SaslError::ServerSignatureMismatch)
    );
    assert!(
        c.handle_server_first(b"r=cl1ent-n0nce-srv,s=QSXCR+Q6sek8bf92,i=16")
            .is_err()
    );
}

#[test]
fn bad_server_nonce_is_an_internal_error() {
    for nonce in ["", "a,b", "a b", "ünï"] {
        let c = client(Mechanism::ScramSha256, "user", "pencil");
        let (mut server, _) =
            ServerSession::start(Mechanism::ScramSha256, Some(&c.client_first()), &no_cb())
                .unwrap();
        assert!(matches!(
            server.credentials(Some(&creds("pencil")), nonce),
            Err(SaslError::Internal(_))
        ));
    }
}

#[test]
fn broken_stored_credentials_are_an_internal_error() {
    let mut stored = creds("pencil");
    stored.iterations = 0;
    let c = client(Mechanism::ScramSha256, "user", "pencil");
    let (mut server, _) =
        ServerSession::start(Mechanism::ScramSha256, Some(&c.client_first()), &no_cb()).unwrap();
    assert!(matches!(
        server.credentials(Some(&stored), SERVER_NONCE),
        Err(SaslError::Internal(_))
    ));
}

#[test]
fn calls_out_of_order_fail() {
    let (mut server, _) = ServerSession::start(Mechanism::ScramSha256, None, &no_cb()).unwrap();
    assert!(matches!(
        server.credentials(None, SERVER_NONCE),
        Err(SaslError::Internal(_))
    ));

    let mut server = plain_session(b"\0user\0pencil");
    assert!(matches!(
        server.respond(b"\0user\0pencil"),
        Err(SaslError::MalformedRequest(_))
    ));

    let mut server = plain_session(b"\0user\0pencil");
    server.credentials(Some(&creds("pencil")), "").unwrap();
    assert!(matches!(
        server.respond(b""),
        Err(SaslError::MalformedRequest(_))
    ));
}

#[test]
fn errors_are_sticky() {
    let mut c = client(Mechanism::ScramSha256, "user", "wrong");
    let (mut server, first) = server_first(
        Mechanism::ScramSha256,
        &c.client_first(),
        &no_cb(),
        Some(&creds("pencil")),
    )
    .unwrap();
    let client_final = c.handle_server_first(&first).unwrap();
    assert_eq!(server.respond(&client_final), Err(SaslError::NotAuthorized));
    assert_eq!(server.respond(&client_final), Err(SaslError::NotAuthorized));
    assert_eq!(
        server.credentials(Some(&creds("pencil")), SERVER_NONCE),
        Err(SaslError::NotAuthorized)
    );
}

#[test]
fn debug_output_hides_secrets() {
    let server = plain_session(b"\0user\0hunter2");
    let text = format!("{server:?}");
    assert!(text.contains("PlainNeedsCredentials"));
    assert!(!text.contains("hunter2"));
    let c = client(Mechanism::ScramSha256, "user", "hunter2");
    assert!(!format!("{c:?}").contains("hunter2"));
}
