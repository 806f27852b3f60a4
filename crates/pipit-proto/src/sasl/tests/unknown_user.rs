//! Wrong passwords and unknown users fail alike, and SCRAM hides whether an account exists.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;

use super::{
    Mechanism, SERVER_NONCE, SaslError, ServerSession, Step, client, creds, no_cb, plain_session,
    run_scram, server_first,
};
use crate::sasl::plain_initial_response;

#[test]
fn scram_wrong_password_fails_at_final_step() {
    for mech in [Mechanism::ScramSha256, Mechanism::ScramSha1] {
        let mut c = client(mech, "user", "wrong");
        assert_eq!(
            run_scram(mech, &mut c, &no_cb(), Some(&creds("pencil"))),
            Err(SaslError::NotAuthorized)
        );
    }
}

#[test]
fn scram_unknown_user_fails_at_final_step() {
    for mech in [Mechanism::ScramSha256, Mechanism::ScramSha1] {
        let mut c = client(mech, "nobody", "pencil");
        let (mut server, first) = server_first(mech, &c.client_first(), &no_cb(), None).unwrap();
        // The client cannot tell: the server-first message is well formed.
        let client_final = c.handle_server_first(&first).unwrap();
        assert_eq!(server.respond(&client_final), Err(SaslError::NotAuthorized));
    }
}

#[test]
fn scram_unknown_user_server_first_looks_normal() {
    let c = client(Mechanism::ScramSha256, "nobody", "pencil");
    let (_, first) =
        server_first(Mechanism::ScramSha256, &c.client_first(), &no_cb(), None).unwrap();
    let first = String::from_utf8(first).unwrap();
    let fields: Vec<&str> = first.split(',').collect();
    assert_eq!(fields.len(), 3);
    assert_eq!(fields[0], format!("r=cl1ent-n0nce{SERVER_NONCE}"));
    let salt = BASE64
        .decode(fields[1].strip_prefix("s=").unwrap())
        .unwrap();
    assert_eq!(salt.len(), 16);
    assert_eq!(fields[2], "i=4096");
}

#[test]
fn scram_unknown_user_server_first_is_deterministic() {
    let first_for = |user: &str, nonce: &str| {
        let c = client(Mechanism::ScramSha256, user, "pw");
        let (mut server, _) =
            ServerSession::start(Mechanism::ScramSha256, Some(&c.client_first()), &no_cb())
                .unwrap();
        match server.credentials(None, nonce).unwrap() {
            Step::Challenge(first) => first,
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(first_for("nobody", "n1"), first_for("nobody", "n1"));
    assert_ne!(first_for("nobody", "n1"), first_for("somebody", "n1"));
}

#[test]
fn decoy_secret_keeps_the_salt_stable_across_attempts() {
    let salt_for = |nonce: &str| {
        let c = client(Mechanism::ScramSha256, "nobody", "pw");
        let (mut server, _) =
            ServerSession::start(Mechanism::ScramSha256, Some(&c.client_first()), &no_cb())
                .unwrap();
        server.set_decoy_secret(b"server-wide secret", 10_000);
        let Step::Challenge(first) = server.credentials(None, nonce).unwrap() else {
            panic!("expected a challenge");
        };
        let first = String::from_utf8(first).unwrap();
        assert!(first.ends_with(",i=10000"));
        first.split(',').nth(1).unwrap().to_owned()
    };
    assert_eq!(salt_for("n1"), salt_for("n2"));
}

#[test]
fn plain_unknown_user_fails_like_wrong_password() {
    let msg = plain_initial_response(None, "user", "pencil");
    let mut unknown = plain_session(&msg);
    assert_eq!(unknown.credentials(None, ""), Err(SaslError::NotAuthorized));
    let mut wrong = plain_session(&msg);
    assert_eq!(
        wrong.credentials(Some(&creds("other")), ""),
        Err(SaslError::NotAuthorized)
    );
}
