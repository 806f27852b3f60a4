//! -PLUS mechanisms, GS2 flags and downgrade detection (RFC 5802 §6, RFC 5929, RFC 9266).

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;

use super::{
    ChannelBindingInfo, ChannelBindingType, Mechanism, SaslError, ScramClient, ServerSession,
    client, creds, no_cb, run_scram, server_first, tls_cb,
};

fn plus_client(mech: Mechanism, ty: ChannelBindingType, data: Vec<u8>) -> ScramClient {
    ScramClient::new(mech, "user", "pencil", None, "abc", Some((ty, data)), true).unwrap()
}

#[test]
fn plus_with_tls_exporter() {
    for mech in [Mechanism::ScramSha256Plus, Mechanism::ScramSha1Plus] {
        let mut c = plus_client(mech, ChannelBindingType::TlsExporter, vec![0x11; 32]);
        assert!(c.client_first().starts_with(b"p=tls-exporter,,n=user,"));
        assert_eq!(
            run_scram(mech, &mut c, &tls_cb(), Some(&creds("pencil"))),
            Ok(())
        );
    }
}

#[test]
fn plus_with_tls_server_end_point() {
    for mech in [Mechanism::ScramSha256Plus, Mechanism::ScramSha1Plus] {
        let mut c = plus_client(mech, ChannelBindingType::TlsServerEndPoint, vec![0x22; 32]);
        assert!(c.client_first().starts_with(b"p=tls-server-end-point,,"));
        assert_eq!(
            run_scram(mech, &mut c, &tls_cb(), Some(&creds("pencil"))),
            Ok(())
        );
    }
}

#[test]
fn plus_with_authzid_binds_the_whole_header() {
    let mut c = ScramClient::new(
        Mechanism::ScramSha256Plus,
        "user",
        "pencil",
        Some("user@example.com"),
        "abc",
        Some((ChannelBindingType::TlsExporter, vec![0x11; 32])),
        true,
    )
    .unwrap();
    let cb = tls_cb();
    let (mut server, first) = server_first(
        Mechanism::ScramSha256Plus,
        &c.client_first(),
        &cb,
        Some(&creds("pencil")),
    )
    .unwrap();
    let client_final = c.handle_server_first(&first).unwrap();
    let expected_c = [&b"p=tls-exporter,a=user@example.com,"[..], &[0x11; 32]].concat();
    let expected = format!("c={},", BASE64.encode(expected_c));
    assert!(client_final.starts_with(expected.as_bytes()));
    assert!(server.respond(&client_final).is_ok());
}

#[test]
fn mismatched_binding_data_fails() {
    // A man in the middle terminates TLS, so the client sees different binding data.
    for ty in [
        ChannelBindingType::TlsExporter,
        ChannelBindingType::TlsServerEndPoint,
    ] {
        let mut c = plus_client(Mechanism::ScramSha256Plus, ty, vec![0x33; 32]);
        assert_eq!(
            run_scram(
                Mechanism::ScramSha256Plus,
                &mut c,
                &tls_cb(),
                Some(&creds("pencil"))
            ),
            Err(SaslError::NotAuthorized)
        );
    }
}

#[test]
fn unsupported_binding_type_fails() {
    // TLS 1.2: no tls-exporter.
    let cb = ChannelBindingInfo {
        plus_advertised: true,
        data: vec![(ChannelBindingType::TlsServerEndPoint, vec![0x22; 32])],
    };
    let c = plus_client(
        Mechanism::ScramSha256Plus,
        ChannelBindingType::TlsExporter,
        vec![0x11; 32],
    );
    let result = ServerSession::start(Mechanism::ScramSha256Plus, Some(&c.client_first()), &cb);
    assert!(matches!(result, Err(SaslError::MalformedRequest(_))));
    let result = ServerSession::start(
        Mechanism::ScramSha256Plus,
        Some(b"p=tls-unique,,n=user,r=abc"),
        &tls_cb(),
    );
    assert!(matches!(result, Err(SaslError::MalformedRequest(_))));
}

#[test]
fn plus_mechanism_requires_p_flag() {
    for msg in [&b"n,,n=user,r=abc"[..], b"y,,n=user,r=abc"] {
        let result = ServerSession::start(Mechanism::ScramSha256Plus, Some(msg), &tls_cb());
        assert!(matches!(result, Err(SaslError::MalformedRequest(_))));
    }
}

#[test]
fn p_flag_requires_plus_mechanism() {
    let msg = b"p=tls-exporter,,n=user,r=abc";
    for mech in [Mechanism::ScramSha256, Mechanism::ScramSha1] {
        let result = ServerSession::start(mech, Some(msg), &tls_cb());
        assert!(matches!(result, Err(SaslError::MalformedRequest(_))));
    }
}

#[test]
fn plus_mechanism_without_binding_is_invalid() {
    let result = ServerSession::start(Mechanism::ScramSha256Plus, None, &no_cb());
    assert!(matches!(result, Err(SaslError::InvalidMechanism)));
    let advertised_but_no_data = ChannelBindingInfo {
        plus_advertised: true,
        data: Vec::new(),
    };
    let result = ServerSession::start(Mechanism::ScramSha1Plus, None, &advertised_but_no_data);
    assert!(matches!(result, Err(SaslError::InvalidMechanism)));
}

#[test]
fn downgrade_with_y_flag_is_rejected() {
    // The client thinks the server has no -PLUS (someone stripped it) and says `y`.
    let c = client(Mechanism::ScramSha256, "user", "pencil");
    assert!(c.client_first().starts_with(b"y,,"));
    let result = ServerSession::start(Mechanism::ScramSha256, Some(&c.client_first()), &tls_cb());
    assert!(matches!(result, Err(SaslError::NotAuthorized)));
}

#[test]
fn y_flag_is_fine_when_plus_was_not_advertised() {
    let mut c = client(Mechanism::ScramSha256, "user", "pencil");
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
fn n_flag_is_fine_when_plus_was_advertised() {
    let mut c = ScramClient::new(
        Mechanism::ScramSha1,
        "user",
        "pencil",
        None,
        "abc",
        None,
        true,
    )
    .unwrap();
    assert!(c.client_first().starts_with(b"n,,"));
    assert_eq!(
        run_scram(
            Mechanism::ScramSha1,
            &mut c,
            &tls_cb(),
            Some(&creds("pencil"))
        ),
        Ok(())
    );
}

#[test]
fn channel_binding_attribute_must_echo_the_header() {
    let mut c = client(Mechanism::ScramSha256, "user", "pencil");
    let cb = no_cb();
    let (mut server, first) = server_first(
        Mechanism::ScramSha256,
        &c.client_first(),
        &cb,
        Some(&creds("pencil")),
    )
    .unwrap();
    let client_final = String::from_utf8(c.handle_server_first(&first).unwrap()).unwrap();
    // The client sent `y,,`; claim `n,,` in c= instead.
    assert!(client_final.starts_with("c=eSws,"));
    let tampered = client_final.replacen("c=eSws,", "c=biws,", 1);
    assert_eq!(
        server.respond(tampered.as_bytes()),
        Err(SaslError::NotAuthorized)
    );
}

#[test]
fn client_rejects_inconsistent_binding_arguments() {
    let with_data = Some((ChannelBindingType::TlsExporter, vec![1; 32]));
    let result = ScramClient::new(Mechanism::ScramSha256, "u", "p", None, "n", with_data, true);
    assert!(matches!(result, Err(SaslError::Internal(_))));
    let result = ScramClient::new(Mechanism::ScramSha256Plus, "u", "p", None, "n", None, true);
    assert!(matches!(result, Err(SaslError::Internal(_))));
    let result = ScramClient::new(Mechanism::Plain, "u", "p", None, "n", None, true);
    assert!(matches!(result, Err(SaslError::InvalidMechanism)));
}
