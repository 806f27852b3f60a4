//! The server side of every SASL mechanism (PLAIN, SCRAM-SHA-1/256 and their -PLUS
//! forms, the HT-* mechanisms of FAST) fed arbitrary client messages.
//!
//! Input: `[mechanism] [flags] message (0xFF message)*`. The mechanism byte picks one
//! of [`Mechanism::ALL`] then [`HtMechanism::ALL`]; the flags say whether the first
//! message is the initial response, whether -PLUS was advertised, which channel-binding
//! data the connection has, and whether downgrade protection (XEP-0474) and a decoy
//! secret are on. The driver answers like the server: the credentials of `alice` (none
//! for anyone else, nonce `snonce`), each challenge with the next message.
//!
//! Asserts no panic, that errors are sticky, that an unknown user never succeeds, and
//! that no exchange succeeds both against `alice`'s credentials and against the same
//! account with another password (same salt and iteration count): a success must
//! depend on knowing the password (or the FAST token).
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use pipit_proto::sasl::{
    ChannelBindingInfo, ChannelBindingType, HtMechanism, HtServer, HtTokenKey, Mechanism,
    ServerSession, Step, StoredCredentials,
};

/// Salt and iterations of both credential sets (few iterations: PLAIN runs PBKDF2).
const SALT: &[u8] = b"fuzz-salt-123456";
const ITERATIONS: u32 = 16;
/// FAST tokens A (alice's) and B (any other); both longer than 64 bytes.
const TOKEN_A: &str = "secret-token:pipit-fast-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
const TOKEN_B: &str = "secret-token:pipit-fast-BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB";

fn credentials() -> &'static [StoredCredentials; 2] {
    static CREDS: OnceLock<[StoredCredentials; 2]> = OnceLock::new();
    CREDS.get_or_init(|| {
        ["pencil", "pencil-not"].map(|p| StoredCredentials::derive(p, SALT, ITERATIONS).unwrap())
    })
}

/// Runs one exchange against `creds` for alice; returns whether it succeeded.
fn scram_or_plain(
    mech: Mechanism,
    flags: u8,
    cb: &ChannelBindingInfo,
    messages: &[&[u8]],
    creds: &StoredCredentials,
) -> bool {
    let mut messages = messages.iter().copied();
    let initial = if flags & 1 != 0 {
        messages.next()
    } else {
        None
    };
    let Ok((mut session, mut step)) = ServerSession::start(mech, initial, cb) else {
        return false;
    };
    if flags & 16 != 0 {
        session.set_downgrade_protection(
            &[
                "SCRAM-SHA-256-PLUS",
                "SCRAM-SHA-256",
                "SCRAM-SHA-1",
                "PLAIN",
            ],
            &["tls-exporter"],
        );
    }
    if flags & 32 != 0 {
        session.set_decoy_secret(b"decoy", ITERATIONS);
    }
    let mut user = None;
    loop {
        let next = match step {
            Step::NeedCredentials { username, .. } => {
                let known = username == "alice";
                user = Some(username);
                session.credentials(known.then_some(creds), "snonce")
            }
            Step::Challenge(_) => match messages.next() {
                Some(message) => session.respond(message),
                None => return false,
            },
            Step::Success { .. } => {
                assert_eq!(user.as_deref(), Some("alice"), "an unknown user succeeded");
                // Nothing more is expected.
                assert!(session.respond(b"n,,n=alice,r=x").is_err());
                return true;
            }
        };
        match next {
            Ok(s) => step = s,
            Err(error) => {
                assert_eq!(session.respond(b"n,,n=alice,r=x"), Err(error.clone()));
                assert_eq!(session.credentials(Some(creds), "snonce"), Err(error));
                return false;
            }
        }
    }
}

fuzz_target!(|input: &[u8]| {
    let [mech, flags, rest @ ..] = input else {
        return;
    };
    let messages: Vec<&[u8]> = rest.split(|&b| b == 0xFF).collect();
    let mut cb = ChannelBindingInfo {
        plus_advertised: flags & 2 != 0,
        data: Vec::new(),
    };
    if flags & 4 != 0 {
        cb.data.push((ChannelBindingType::TlsExporter, vec![1; 32]));
    }
    if flags & 8 != 0 {
        cb.data
            .push((ChannelBindingType::TlsServerEndPoint, vec![2; 32]));
    }
    let index = usize::from(*mech) % (Mechanism::ALL.len() + HtMechanism::ALL.len());
    if let Some(&mech) = Mechanism::ALL.get(index) {
        let [a, b] = credentials();
        let with_a = scram_or_plain(mech, *flags, &cb, &messages, a);
        let with_b = scram_or_plain(mech, *flags, &cb, &messages, b);
        assert!(
            !(with_a && with_b),
            "succeeded without depending on the password"
        );
    } else {
        let mech = HtMechanism::ALL[index - Mechanism::ALL.len()];
        let Ok((server, username)) = HtServer::start(mech, messages[0], &cb) else {
            return;
        };
        assert_eq!(server.username(), username);
        let a = server.verify(&HtTokenKey::from_token(TOKEN_A).unwrap());
        let b = server.verify(&HtTokenKey::from_token(TOKEN_B).unwrap());
        assert!(!(a && b), "one hashed token proved two tokens");
    }
});
