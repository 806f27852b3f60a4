//! The HT-* mechanisms (draft-schmaus-kitten-sasl-ht-08) for FAST (XEP-0484): fixed vectors,
//! round trips, wrong tokens and binding data, and hostile input.

use super::{ChannelBindingInfo, ChannelBindingType, SaslError, tls_cb};
use crate::sasl::{
    HtMechanism, HtServer, HtTokenKey, ht_initial_response, ht_token_string, ht_verify_server,
};

/// Decodes a hex string (test vectors only).
fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// A connection whose binding data are the ones the fixed vectors were computed with.
fn vector_cb() -> ChannelBindingInfo {
    ChannelBindingInfo {
        plus_advertised: true,
        data: vec![
            (
                ChannelBindingType::TlsServerEndPoint,
                (0x20..0x40).collect(),
            ),
            (ChannelBindingType::TlsExporter, (0x40..0x60).collect()),
        ],
    }
}

/// The binding data `cb` holds for `mech` (empty for -NONE), as a client would compute it.
fn cb_for(mech: HtMechanism, cb: &ChannelBindingInfo) -> Vec<u8> {
    mech.channel_binding_type()
        .and_then(|ty| cb.get(ty))
        .unwrap_or_default()
        .to_vec()
}

// Computed independently with Python 3's standard library, not with this crate:
//
//   import hmac, hashlib, base64
//   tok = "secret-token:pipit-fast-" + base64.urlsafe_b64encode(bytes(range(32))).decode().rstrip("=")
//   hashlib.sha256(tok.encode()).hexdigest()                               # VECTOR_TOKEN_HASH
//   for cb in (b"", bytes(range(0x20, 0x40)), bytes(range(0x40, 0x60))):  # NONE, ENDP, EXPR
//       hmac.new(tok.encode(), b"Initiator" + cb, hashlib.sha256).hexdigest()
//       hmac.new(tok.encode(), b"Responder" + cb, hashlib.sha256).hexdigest()

/// `ht_token_string(&[0, 1, …, 31])`.
const VECTOR_TOKEN: &str = "secret-token:pipit-fast-AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";
/// SHA-256 of [`VECTOR_TOKEN`]: what the store keeps.
const VECTOR_TOKEN_HASH: &str = "202882982a515972d07e9551751275b85f03175d6e9348734680c8d9e1d4bd71";
/// (mechanism, initiator-hashed-token, responder-msg) for [`VECTOR_TOKEN`] over [`vector_cb`].
const VECTORS: [(HtMechanism, &str, &str); 3] = [
    (
        HtMechanism::Sha256None,
        "3f276a3240276917c898bccfce14180345eb5d69450e86950316267f77ce4fa8",
        "9f7c9dee14da6e911e0bd723a1cd4a81b301e69430d6a83cf389e2a7f7dbad58",
    ),
    (
        HtMechanism::Sha256Endp,
        "6ebbeb3177593162d4b1f369086591a494e56c88b714f287b878bf4eae596592",
        "60150c10c8fc8cae89ebbea95620ff1e39ea265b430be5646a644d057d3aafcf",
    ),
    (
        HtMechanism::Sha256Expr,
        "4fd91e53c6fed7b8654f54403ff7856f8e74e16a2eb9552aa4e700160edaf3a9",
        "6876405f8f097860e5bb854e60e32a40fb235abb487a951997849fd06c632685",
    ),
];

#[test]
fn token_string_and_hash_match_the_vector() {
    let random: Vec<u8> = (0..32).collect();
    assert_eq!(ht_token_string(&random).unwrap(), VECTOR_TOKEN);
    let key = HtTokenKey::from_token(VECTOR_TOKEN).unwrap();
    assert_eq!(key.as_bytes().to_vec(), hex(VECTOR_TOKEN_HASH));
}

#[test]
fn fixed_vectors_from_both_sides() {
    let cb = vector_cb();
    for (mech, initiator, responder) in VECTORS {
        let client_cb = cb_for(mech, &cb);
        let msg = ht_initial_response(mech, "juliet", VECTOR_TOKEN, &client_cb);
        let mut expected = b"juliet\0".to_vec();
        expected.extend(hex(initiator));
        assert_eq!(msg, expected, "{mech:?}");

        let (server, username) = HtServer::start(mech, &msg, &cb).unwrap();
        assert_eq!(username, "juliet");
        assert_eq!(server.username(), "juliet");
        assert_eq!(server.mechanism(), mech);
        // The key from the stored hash and the key from the token are the same key.
        let stored = HtTokenKey::from_stored(&hex(VECTOR_TOKEN_HASH)).unwrap();
        assert!(server.verify(&stored), "{mech:?}");
        assert!(server.verify(&HtTokenKey::from_token(VECTOR_TOKEN).unwrap()));
        let data = server.success_data(&stored);
        assert_eq!(data, hex(responder), "{mech:?}");
        assert!(ht_verify_server(mech, VECTOR_TOKEN, &client_cb, &data));
    }
}

#[test]
fn client_keys_the_hmac_with_the_token_string_itself() {
    // A short token as another server might issue it (too short to store hashed, which
    // only matters on the server): the client still follows the draft exactly.
    // Python: hmac.new(b"secret-token:fast-abc", b"Initiator", hashlib.sha256).hexdigest()
    let token = "secret-token:fast-abc";
    let msg = ht_initial_response(HtMechanism::Sha256None, "romeo", token, b"ignored");
    let mut expected = b"romeo\0".to_vec();
    expected.extend(hex(
        "31a40f95e222589afb8c28c212119413c99f1530ed11458f2ccd141988ee709e",
    ));
    assert_eq!(msg, expected);
    let responder = hex("90fd060e34951aa445e2728bb488b74255c5b8355fea618546f7588e5427a204");
    assert!(ht_verify_server(
        HtMechanism::Sha256None,
        token,
        &[],
        &responder
    ));
    assert!(HtTokenKey::from_token(token).is_none());
}

#[test]
fn round_trip_every_mechanism() {
    let cb = tls_cb();
    for seed in 0..8u8 {
        let token = ht_token_string(&[seed; 40]).unwrap();
        let key = HtTokenKey::from_token(&token).unwrap();
        for mech in HtMechanism::ALL {
            let client_cb = cb_for(mech, &cb);
            let msg = ht_initial_response(mech, "juliet", &token, &client_cb);
            let (server, username) = HtServer::start(mech, &msg, &cb).unwrap();
            assert_eq!(username, "juliet");
            assert!(server.verify(&key), "{mech:?} seed {seed}");
            let data = server.success_data(&key);
            assert!(ht_verify_server(mech, &token, &client_cb, &data));
            // The server's answer is not the client's proof replayed back.
            assert_ne!(data, msg[b"juliet\0".len()..]);
        }
    }
}

#[test]
fn wrong_token_fails() {
    let cb = tls_cb();
    let token = ht_token_string(&[1; 32]).unwrap();
    let other = HtTokenKey::from_token(&ht_token_string(&[2; 32]).unwrap()).unwrap();
    for mech in HtMechanism::ALL {
        let msg = ht_initial_response(mech, "juliet", &token, &cb_for(mech, &cb));
        let (server, _) = HtServer::start(mech, &msg, &cb).unwrap();
        assert!(!server.verify(&other), "{mech:?}");
        // Nor does a server answer for another token satisfy the client.
        let data = server.success_data(&other);
        assert!(!ht_verify_server(mech, &token, &cb_for(mech, &cb), &data));
    }
}

#[test]
fn wrong_channel_binding_data_fails() {
    let token = ht_token_string(&[3; 32]).unwrap();
    let key = HtTokenKey::from_token(&token).unwrap();
    let server_cb = tls_cb();
    for mech in [HtMechanism::Sha256Endp, HtMechanism::Sha256Expr] {
        // A man in the middle terminates TLS: the client sees other binding data.
        let mitm_data = vec![0x99; 32];
        let msg = ht_initial_response(mech, "juliet", &token, &mitm_data);
        let (server, _) = HtServer::start(mech, &msg, &server_cb).unwrap();
        assert!(!server.verify(&key), "{mech:?}");
        // And the server's answer does not verify against the client's view either.
        let honest = ht_initial_response(mech, "juliet", &token, &cb_for(mech, &server_cb));
        let (server, _) = HtServer::start(mech, &honest, &server_cb).unwrap();
        assert!(server.verify(&key));
        let data = server.success_data(&key);
        assert!(!ht_verify_server(mech, &token, &mitm_data, &data));
    }
    // The other type's data does not do either: ENDP data presented for EXPR.
    let endp = cb_for(HtMechanism::Sha256Endp, &server_cb);
    let msg = ht_initial_response(HtMechanism::Sha256Expr, "juliet", &token, &endp);
    let (server, _) = HtServer::start(HtMechanism::Sha256Expr, &msg, &server_cb).unwrap();
    assert!(!server.verify(&key));
}

#[test]
fn a_proof_for_one_mechanism_does_not_verify_under_another() {
    let cb = tls_cb();
    let token = ht_token_string(&[4; 32]).unwrap();
    let key = HtTokenKey::from_token(&token).unwrap();
    for client_mech in HtMechanism::ALL {
        let msg = ht_initial_response(client_mech, "juliet", &token, &cb_for(client_mech, &cb));
        for server_mech in HtMechanism::ALL {
            let (server, _) = HtServer::start(server_mech, &msg, &cb).unwrap();
            assert_eq!(server.verify(&key), client_mech == server_mech);
        }
    }
}

#[test]
fn binding_mechanisms_need_binding_data_on_the_connection() {
    let token = ht_token_string(&[5; 32]).unwrap();
    let none = ChannelBindingInfo::default();
    for mech in [HtMechanism::Sha256Endp, HtMechanism::Sha256Expr] {
        let msg = ht_initial_response(mech, "juliet", &token, &[1; 32]);
        let r = HtServer::start(mech, &msg, &none);
        assert_eq!(r.map(|_| ()), Err(SaslError::InvalidMechanism), "{mech:?}");
    }
    // TLS 1.2: no tls-exporter, but tls-server-end-point.
    let tls12 = ChannelBindingInfo {
        plus_advertised: true,
        data: vec![(ChannelBindingType::TlsServerEndPoint, vec![2; 32])],
    };
    let msg = ht_initial_response(HtMechanism::Sha256Expr, "juliet", &token, &[1; 32]);
    assert_eq!(
        HtServer::start(HtMechanism::Sha256Expr, &msg, &tls12).map(|_| ()),
        Err(SaslError::InvalidMechanism)
    );
    let msg = ht_initial_response(HtMechanism::Sha256Endp, "juliet", &token, &[2; 32]);
    assert!(HtServer::start(HtMechanism::Sha256Endp, &msg, &tls12).is_ok());
    // -NONE needs nothing, and ignores binding data the client passes anyway.
    let msg = ht_initial_response(HtMechanism::Sha256None, "juliet", &token, &[9; 32]);
    let (server, _) = HtServer::start(HtMechanism::Sha256None, &msg, &none).unwrap();
    assert!(server.verify(&HtTokenKey::from_token(&token).unwrap()));
}

#[test]
fn the_first_nul_ends_the_authcid_even_if_the_hmac_contains_nuls() {
    let cb = tls_cb();
    let mech = HtMechanism::Sha256None;
    // Find a token whose HMAC has a NUL byte (about one in eight does).
    let (token, msg) = (0..=255u8)
        .map(|seed| {
            let token = ht_token_string(&[seed; 32]).unwrap();
            let msg = ht_initial_response(mech, "juliet", &token, &[]);
            (token, msg)
        })
        .find(|(_, msg)| msg[b"juliet\0".len()..].contains(&0))
        .expect("some seed gives an HMAC with a NUL");
    let (server, username) = HtServer::start(mech, &msg, &cb).unwrap();
    assert_eq!(username, "juliet");
    assert!(server.verify(&HtTokenKey::from_token(&token).unwrap()));
}

#[test]
fn malformed_initial_responses() {
    let cb = tls_cb();
    let mech = HtMechanism::Sha256None;
    let cases: [(&[u8], SaslError); 6] = [
        (b"", SaslError::malformed("HT message has no NUL separator")),
        (
            b"juliet",
            SaslError::malformed("HT message has no NUL separator"),
        ),
        (b"\0abc", SaslError::malformed("empty HT authcid")),
        (
            b"juliet\0",
            SaslError::malformed("empty HT initiator-hashed-token"),
        ),
        (b"jul\xffiet\0abc", SaslError::IncorrectEncoding),
        // SASLprep prohibits control characters (RFC 4013 §2.3).
        (b"jul\x07iet\0abc", SaslError::NotAuthorized),
    ];
    for (msg, expected) in cases {
        assert_eq!(
            HtServer::start(mech, msg, &cb).map(|_| ()),
            Err(expected),
            "{msg:?}"
        );
    }
    // SASLprep maps the username like PLAIN and SCRAM do (RFC 4013 §3: soft hyphen).
    let (_, username) = HtServer::start(mech, "I\u{00AD}X\0abc".as_bytes(), &cb).unwrap();
    assert_eq!(username, "IX");
}

#[test]
fn every_truncation_and_mutation_fails_cleanly() {
    let cb = tls_cb();
    let token = ht_token_string(&[6; 32]).unwrap();
    let key = HtTokenKey::from_token(&token).unwrap();
    for mech in HtMechanism::ALL {
        let msg = ht_initial_response(mech, "jüliet", &token, &cb_for(mech, &cb));
        // Every strict prefix: an error, or a session whose proof is too short to verify.
        for n in 0..msg.len() {
            if let Ok((server, _)) = HtServer::start(mech, &msg[..n], &cb) {
                assert!(!server.verify(&key), "{mech:?} prefix {n}");
            }
        }
        // Every single-byte change: never a panic, and never a match once the proof changed.
        let authcid_end = msg.iter().position(|&b| b == 0).unwrap();
        for i in 0..msg.len() {
            for b in [0u8, 1, b'a', 0x80, 0xff] {
                if msg[i] == b {
                    continue;
                }
                let mut m = msg.clone();
                m[i] = b;
                if let Ok((server, username)) = HtServer::start(mech, &m, &cb) {
                    let verified = server.verify(&key);
                    if i > authcid_end {
                        assert!(!verified, "{mech:?} byte {i} -> {b:#x}");
                    }
                    let _ = server.success_data(&key);
                    assert!(!username.is_empty());
                }
            }
        }
    }
}

#[test]
fn client_checks_the_server_answer_strictly() {
    let token = ht_token_string(&[7; 32]).unwrap();
    let key = HtTokenKey::from_token(&token).unwrap();
    let cb = tls_cb();
    let mech = HtMechanism::Sha256Expr;
    let client_cb = cb_for(mech, &cb);
    let msg = ht_initial_response(mech, "juliet", &token, &client_cb);
    let (server, _) = HtServer::start(mech, &msg, &cb).unwrap();
    let data = server.success_data(&key);
    assert!(ht_verify_server(mech, &token, &client_cb, &data));
    // The later drafts' `NUL || HMAC` success-response is accepted as well.
    let mut prefixed = vec![0];
    prefixed.extend_from_slice(&data);
    assert!(ht_verify_server(mech, &token, &client_cb, &prefixed));
    // Anything else is not.
    let mut flipped = data.clone();
    flipped[31] ^= 1;
    let mut one_prefix = vec![1];
    one_prefix.extend_from_slice(&data);
    for bad in [
        Vec::new(),
        vec![0],
        data[..31].to_vec(),
        flipped,
        one_prefix,
        [data.clone(), vec![0]].concat(),
    ] {
        assert!(!ht_verify_server(mech, &token, &client_cb, &bad), "{bad:?}");
    }
    // The client's own proof is not a valid server answer (the labels differ).
    assert!(!ht_verify_server(
        mech,
        &token,
        &client_cb,
        &msg[b"juliet\0".len()..]
    ));
}
