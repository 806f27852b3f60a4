//! SASL SCRAM Downgrade Protection (XEP-0474): the §5.3 example byte for byte, detection of
//! stripped mechanisms and binding types, tolerance when absent, and coexistence with FAST.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;

use super::{
    ChannelBindingInfo, ChannelBindingType, Mechanism, SERVER_NONCE, SaslError, ScramClient,
    ServerSession, Step, StoredCredentials, client, creds, no_cb, run_plain, tls_cb,
};

/// XEP-0474 §5.3's full example (SCRAM-SHA-1-PLUS over `tls-exporter`, password "pencil").
mod example {
    pub const CLIENT_NONCE: &str = "12C4CD5C-E38E-4A98-8F6D-15C38F51CCC6";
    pub const SERVER_NONCE: &str = "a09117a6-ac50-4f2f-93f1-93799c2bddf6";
    pub const SALT_B64: &str = "QSXCR+Q6sek8bf92";
    pub const CB_DATA: &[u8] = b"THIS IS FAKE CB DATA";
    pub const MECHANISMS: [&str; 2] = ["SCRAM-SHA-1", "SCRAM-SHA-1-PLUS"];
    pub const CHANNEL_BINDINGS: [&str; 2] = ["tls-server-end-point", "tls-exporter"];
    pub const CLIENT_FIRST: &str = "p=tls-exporter,,n=user,r=12C4CD5C-E38E-4A98-8F6D-15C38F51CCC6";
    pub const SERVER_FIRST: &str = "r=12C4CD5C-E38E-4A98-8F6D-15C38F51CCC6\
        a09117a6-ac50-4f2f-93f1-93799c2bddf6,s=QSXCR+Q6sek8bf92,i=4096,\
        h=G6k/rBLDqgOhRRaCuuatSDFkJ08=";
    /// The example's client-final message carries an extra `x=` extension.
    pub const CLIENT_FINAL: &str = "c=cD10bHMtZXhwb3J0ZXIsLFRISVMgSVMgRkFLRSBDQiBEQVRB,\
        r=12C4CD5C-E38E-4A98-8F6D-15C38F51CCC6a09117a6-ac50-4f2f-93f1-93799c2bddf6,\
        x=19C6532F-1CF4-4A27-A18D-DC9CEA41BBB3,p=M/SIDjT+dfcxUh89jZEypRvFxB4=";
    pub const SERVER_FINAL: &str = "v=MQrMPvv7yv4x4Cq4W4Ih25EqS2c=";
    /// Our client sends no `x=`; computed with Python's hashlib/hmac from the RFC 5802 §3
    /// formulas over the example's client-first-bare, server-first and this message.
    pub const OUR_CLIENT_FINAL: &str = "c=cD10bHMtZXhwb3J0ZXIsLFRISVMgSVMgRkFLRSBDQiBEQVRB,\
        r=12C4CD5C-E38E-4A98-8F6D-15C38F51CCC6a09117a6-ac50-4f2f-93f1-93799c2bddf6,\
        p=NWgTsQJvWgbXKxbqd3P4BNurjkU=";
    pub const OUR_SERVER_FINAL: &str = "v=EMsYR2n9LecK8qm5xR19xuvM1jw=";
}

fn example_cb() -> ChannelBindingInfo {
    ChannelBindingInfo {
        plus_advertised: true,
        data: vec![(ChannelBindingType::TlsExporter, example::CB_DATA.to_vec())],
    }
}

fn example_creds() -> StoredCredentials {
    let salt = BASE64.decode(example::SALT_B64).unwrap();
    StoredCredentials::derive("pencil", &salt, 4096).unwrap()
}

fn example_client() -> ScramClient {
    ScramClient::new(
        Mechanism::ScramSha1Plus,
        "user",
        "pencil",
        None,
        example::CLIENT_NONCE,
        Some((ChannelBindingType::TlsExporter, example::CB_DATA.to_vec())),
        true,
    )
    .unwrap()
}

#[test]
fn xep0474_example_server_side() {
    let (mut server, step) = ServerSession::start(
        Mechanism::ScramSha1Plus,
        Some(example::CLIENT_FIRST.as_bytes()),
        &example_cb(),
    )
    .unwrap();
    assert!(matches!(step, Step::NeedCredentials { .. }));
    // The caller's order does not matter: the lists are sorted (XEP-0474 §5.1).
    server.set_downgrade_protection(
        &[example::MECHANISMS[1], example::MECHANISMS[0]],
        &example::CHANNEL_BINDINGS,
    );
    let step = server
        .credentials(Some(&example_creds()), example::SERVER_NONCE)
        .unwrap();
    assert_eq!(
        step,
        Step::Challenge(example::SERVER_FIRST.as_bytes().to_vec())
    );
    let step = server.respond(example::CLIENT_FINAL.as_bytes()).unwrap();
    assert_eq!(
        step,
        Step::Success {
            additional_data: Some(example::SERVER_FINAL.as_bytes().to_vec())
        }
    );
}

#[test]
fn xep0474_example_client_side() {
    let mut client = example_client();
    client.expect_downgrade_protection(&example::MECHANISMS, &example::CHANNEL_BINDINGS, true);
    assert_eq!(client.client_first(), example::CLIENT_FIRST.as_bytes());
    let client_final = client
        .handle_server_first(example::SERVER_FIRST.as_bytes())
        .unwrap();
    assert_eq!(
        String::from_utf8(client_final).unwrap(),
        example::OUR_CLIENT_FINAL
    );
    client
        .verify_server_final(example::OUR_SERVER_FINAL.as_bytes())
        .unwrap();

    // And our server agrees with that message.
    let (mut server, _) = ServerSession::start(
        Mechanism::ScramSha1Plus,
        Some(example::CLIENT_FIRST.as_bytes()),
        &example_cb(),
    )
    .unwrap();
    server.set_downgrade_protection(&example::MECHANISMS, &example::CHANNEL_BINDINGS);
    server
        .credentials(Some(&example_creds()), example::SERVER_NONCE)
        .unwrap();
    assert_eq!(
        server.respond(example::OUR_CLIENT_FINAL.as_bytes()),
        Ok(Step::Success {
            additional_data: Some(example::OUR_SERVER_FINAL.as_bytes().to_vec())
        })
    );
}

#[test]
fn stripped_mechanism_or_binding_type_is_detected() {
    // What a man in the middle left in the features the client saw.
    let seen: [(&[&str], &[&str]); 4] = [
        (&["SCRAM-SHA-1"], &example::CHANNEL_BINDINGS),
        (&example::MECHANISMS, &["tls-server-end-point"]),
        (&example::MECHANISMS, &[]),
        (
            &["SCRAM-SHA-1", "SCRAM-SHA-1-PLUS", "PLAIN"],
            &example::CHANNEL_BINDINGS,
        ),
    ];
    for (mechanisms, bindings) in seen {
        for require in [false, true] {
            let mut client = example_client();
            client.expect_downgrade_protection(mechanisms, bindings, require);
            assert_eq!(
                client.handle_server_first(example::SERVER_FIRST.as_bytes()),
                Err(SaslError::DowngradeDetected),
                "{mechanisms:?} {bindings:?}"
            );
        }
    }
}

#[test]
fn without_an_expectation_the_attribute_is_ignored() {
    let mut client = example_client();
    let client_final = client
        .handle_server_first(example::SERVER_FIRST.as_bytes())
        .unwrap();
    assert_eq!(
        String::from_utf8(client_final).unwrap(),
        example::OUR_CLIENT_FINAL
    );
}

/// Runs SCRAM-SHA-256 with the server protecting `server_lists` and the client expecting
/// `client_lists`; `None` leaves that side's protection off.
fn run(
    server_lists: Option<(&[&str], &[&str])>,
    client_lists: Option<(&[&str], &[&str], bool)>,
) -> Result<(), SaslError> {
    let mech = Mechanism::ScramSha256;
    let stored = creds("pencil");
    let mut c = client(mech, "user", "pencil");
    if let Some((mechanisms, bindings, require)) = client_lists {
        c.expect_downgrade_protection(mechanisms, bindings, require);
    }
    let (mut server, _) = ServerSession::start(mech, Some(&c.client_first()), &no_cb())?;
    if let Some((mechanisms, bindings)) = server_lists {
        server.set_downgrade_protection(mechanisms, bindings);
    }
    let Step::Challenge(first) = server.credentials(Some(&stored), SERVER_NONCE)? else {
        panic!("expected server-first")
    };
    let client_final = c.handle_server_first(&first)?;
    let Step::Success {
        additional_data: Some(server_final),
    } = server.respond(&client_final)?
    else {
        panic!("expected success")
    };
    c.verify_server_final(&server_final)
}

/// A SASL2 stream with FAST: what goes in `<authentication/>` and what goes in `<fast/>`.
const SASL2_MECHANISMS: [&str; 3] = ["SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN"];
const FAST_MECHANISMS: [&str; 3] = ["HT-SHA-256-EXPR", "HT-SHA-256-ENDP", "HT-SHA-256-NONE"];

#[test]
fn coexists_with_fast_when_both_sides_hash_only_the_sasl_list() {
    assert_eq!(
        run(
            Some((&SASL2_MECHANISMS, &["tls-exporter"])),
            Some((&SASL2_MECHANISMS, &["tls-exporter"], true)),
        ),
        Ok(())
    );
}

#[test]
fn hashing_the_fast_mechanisms_breaks_correct_clients() {
    // ejabberd 24.12's bug (processone/ejabberd#4331): the HT-* names of `<fast/>` hashed
    // in. Every client that hashes the advertised list, as XEP-0474 §5.2 says, fails.
    let with_fast: Vec<&str> = SASL2_MECHANISMS
        .iter()
        .chain(&FAST_MECHANISMS)
        .copied()
        .collect();
    assert_eq!(
        run(
            Some((&with_fast, &["tls-exporter"])),
            Some((&SASL2_MECHANISMS, &["tls-exporter"], false)),
        ),
        Err(SaslError::DowngradeDetected)
    );
}

#[test]
fn absent_attribute_passes_unless_required() {
    let lists: (&[&str], &[&str], bool) = (&SASL2_MECHANISMS, &[], false);
    assert_eq!(run(None, Some(lists)), Ok(()));
    let required = (lists.0, lists.1, true);
    assert_eq!(run(None, Some(required)), Err(SaslError::DowngradeDetected));
    // Protection on the server only: a client that does not check still logs in.
    assert_eq!(run(Some((&SASL2_MECHANISMS, &[])), None), Ok(()));
}

#[test]
fn the_hash_uses_the_mechanisms_own_hash() {
    for (mech, len) in [(Mechanism::ScramSha256, 32), (Mechanism::ScramSha1, 20)] {
        let c = client(mech, "user", "pencil");
        let (mut server, _) =
            ServerSession::start(mech, Some(&c.client_first()), &no_cb()).unwrap();
        server.set_downgrade_protection(&SASL2_MECHANISMS, &[]);
        let Step::Challenge(first) = server.credentials(Some(&creds("pencil")), "n").unwrap()
        else {
            panic!("expected server-first")
        };
        let first = String::from_utf8(first).unwrap();
        let (_, h) = first.rsplit_once(",h=").expect("h is the last attribute");
        assert_eq!(BASE64.decode(h).unwrap().len(), len, "{mech:?}");
    }
}

#[test]
fn stripping_the_attribute_in_transit_fails_at_the_server() {
    // A tolerant client cannot see that `h` was removed, but the server's AuthMessage
    // still contains it, so the proof does not verify (XEP-0474 §8).
    let mech = Mechanism::ScramSha256;
    let mut c = client(mech, "user", "pencil");
    c.expect_downgrade_protection(&SASL2_MECHANISMS, &[], false);
    let (mut server, _) = ServerSession::start(mech, Some(&c.client_first()), &no_cb()).unwrap();
    server.set_downgrade_protection(&SASL2_MECHANISMS, &[]);
    let Step::Challenge(first) = server
        .credentials(Some(&creds("pencil")), SERVER_NONCE)
        .unwrap()
    else {
        panic!("expected server-first")
    };
    let first = String::from_utf8(first).unwrap();
    let (stripped, _) = first.rsplit_once(",h=").unwrap();
    let client_final = c.handle_server_first(stripped.as_bytes()).unwrap();
    assert_eq!(server.respond(&client_final), Err(SaslError::NotAuthorized));
}

#[test]
fn a_malformed_attribute_is_a_mismatch_only_when_checking() {
    let server_first = format!(
        "r={}{SERVER_NONCE},s=QSXCR+Q6sek8bf92,i=16,h=not*base64",
        "cl1ent-n0nce"
    );
    let mut checking = client(Mechanism::ScramSha256, "user", "pencil");
    checking.expect_downgrade_protection(&SASL2_MECHANISMS, &[], false);
    assert_eq!(
        checking.handle_server_first(server_first.as_bytes()),
        Err(SaslError::DowngradeDetected)
    );
    let mut ignoring = client(Mechanism::ScramSha256, "user", "pencil");
    assert!(
        ignoring
            .handle_server_first(server_first.as_bytes())
            .is_ok()
    );
}

#[test]
fn off_by_default_and_ignored_by_plain() {
    let mech = Mechanism::ScramSha256Plus;
    let cb = tls_cb();
    let c = ScramClient::new(
        mech,
        "user",
        "pencil",
        None,
        "n0nce",
        Some((ChannelBindingType::TlsExporter, vec![0x11; 32])),
        true,
    )
    .unwrap();
    let (mut server, _) = ServerSession::start(mech, Some(&c.client_first()), &cb).unwrap();
    let Step::Challenge(first) = server.credentials(Some(&creds("pencil")), "s").unwrap() else {
        panic!("expected server-first")
    };
    assert!(!String::from_utf8(first).unwrap().contains(",h="));

    // PLAIN has no server-first message; the setting changes nothing.
    assert!(matches!(
        run_plain("user", "pencil", Some(&creds("pencil"))),
        Ok(Step::Success {
            additional_data: None
        })
    ));
    let msg = crate::sasl::plain_initial_response(None, "user", "pencil");
    let (mut server, _) = ServerSession::start(Mechanism::Plain, Some(&msg), &no_cb()).unwrap();
    server.set_downgrade_protection(&SASL2_MECHANISMS, &[]);
    assert_eq!(
        server.credentials(Some(&creds("pencil")), ""),
        Ok(Step::Success {
            additional_data: None
        })
    );
}

#[test]
fn mutated_server_first_messages_never_panic_a_checking_client() {
    let msg = example::SERVER_FIRST.as_bytes();
    for i in 0..msg.len() {
        for b in [0u8, b',', b'=', b'h', b'/', 0x80] {
            let mut m = msg.to_vec();
            m[i] = b;
            for require in [false, true] {
                let mut client = example_client();
                client.expect_downgrade_protection(
                    &example::MECHANISMS,
                    &example::CHANNEL_BINDINGS,
                    require,
                );
                let _ = client.handle_server_first(&m);
            }
        }
        let mut client = example_client();
        client.expect_downgrade_protection(&example::MECHANISMS, &example::CHANNEL_BINDINGS, true);
        let _ = client.handle_server_first(&msg[..i]);
    }
}
