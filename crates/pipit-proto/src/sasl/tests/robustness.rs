//! Hostile input: truncated, mutated and garbage messages must fail cleanly, never panic.

use super::{
    ChannelBindingType, Mechanism, ScramClient, ServerSession, StoredCredentials, client, creds,
    no_cb, server_first, tls_cb,
};
use crate::sasl::plain_initial_response;

/// Replacement bytes for the mutation tests: separators, escapes, NUL, invalid UTF-8.
const MUTATIONS: [u8; 7] = [0, b',', b'=', b'a', b'/', 0x80, 0xff];

/// Every strict prefix, then every single-byte mutation, of `msg`.
fn variants(msg: &[u8]) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = (0..msg.len()).map(|n| msg[..n].to_vec()).collect();
    for i in 0..msg.len() {
        for b in MUTATIONS {
            if msg[i] != b {
                let mut m = msg.to_vec();
                m[i] = b;
                out.push(m);
            }
        }
    }
    out
}

fn start_all_ways(mech: Mechanism, msg: &[u8]) {
    for cb in [no_cb(), tls_cb()] {
        let _ = ServerSession::start(mech, Some(msg), &cb);
        if let Ok((mut server, _)) = ServerSession::start(mech, None, &cb) {
            let _ = server.respond(msg);
        }
    }
}

#[test]
fn plain_first_message_variants() {
    let stored = creds("pencil");
    let msg = plain_initial_response(Some("a@b"), "user", "pencil");
    for m in variants(&msg) {
        start_all_ways(Mechanism::Plain, &m);
        if let Ok((mut server, _)) = ServerSession::start(Mechanism::Plain, Some(&m), &no_cb()) {
            let _ = server.credentials(Some(&stored), "");
        }
    }
}

#[test]
fn scram_client_first_variants() {
    let messages: [&[u8]; 3] = [
        b"n,a=x=2Cy,n=us=3Der,r=abc,e=ext",
        b"p=tls-exporter,,n=user,r=abc",
        b"y,,n=\xc3\xa9,r=abc",
    ];
    for msg in messages {
        for m in variants(msg) {
            for mech in Mechanism::ALL {
                start_all_ways(mech, &m);
            }
        }
    }
}

#[test]
fn scram_client_final_variants_all_fail() {
    let stored = creds("pencil");
    for (mech, cb_data) in [
        (Mechanism::ScramSha256, None),
        (
            Mechanism::ScramSha256Plus,
            Some((ChannelBindingType::TlsExporter, vec![0x11; 32])),
        ),
    ] {
        let mut c = ScramClient::new(mech, "user", "pencil", None, "abc", cb_data, true).unwrap();
        let cb = tls_cb();
        let (_, first) = server_first(mech, &c.client_first(), &cb, Some(&stored)).unwrap();
        let client_final = c.handle_server_first(&first).unwrap();
        for m in variants(&client_final) {
            let (mut server, _) =
                server_first(mech, &c.client_first(), &cb, Some(&stored)).unwrap();
            assert!(
                server.respond(&m).is_err(),
                "{:?}",
                String::from_utf8_lossy(&m)
            );
        }
        let (mut server, _) = server_first(mech, &c.client_first(), &cb, Some(&stored)).unwrap();
        assert!(server.respond(&client_final).is_ok());
    }
}

#[test]
fn scram_server_messages_variants_never_panic() {
    let stored = StoredCredentials::derive("pencil", b"salt", 2).unwrap();
    let mut c = client(Mechanism::ScramSha1, "user", "pencil");
    let (mut server, first) = server_first(
        Mechanism::ScramSha1,
        &c.client_first(),
        &no_cb(),
        Some(&stored),
    )
    .unwrap();
    let client_final = c.handle_server_first(&first).unwrap();
    let Ok(super::Step::Success {
        additional_data: Some(server_final),
    }) = server.respond(&client_final)
    else {
        panic!("exchange failed");
    };
    for m in variants(&first) {
        // No mutation inserts a digit, so `i=` stays small.
        let _ = client(Mechanism::ScramSha1, "user", "pencil").handle_server_first(&m);
    }
    for m in variants(&server_final) {
        assert!(c.verify_server_final(&m).is_err());
    }
    assert!(c.verify_server_final(&server_final).is_ok());
}

#[test]
fn garbage_single_bytes_and_empty() {
    for b in 0..=255u8 {
        for mech in Mechanism::ALL {
            start_all_ways(mech, &[b]);
        }
    }
    for mech in Mechanism::ALL {
        start_all_ways(mech, b"");
    }
    let mut c = client(Mechanism::ScramSha256, "user", "pencil");
    assert!(c.handle_server_first(b"").is_err());
    assert!(c.verify_server_final(b"").is_err());
}
