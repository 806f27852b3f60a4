//! Exchange-level tests: RFC vectors, channel binding, unknown users, robustness.

mod channel_binding;
mod downgrade;
mod ht;
mod rfc_vectors;
mod robustness;
mod session;
mod unknown_user;

use super::{
    ChannelBindingInfo, ChannelBindingType, Mechanism, SaslError, ScramClient, ServerSession, Step,
    StoredCredentials, plain_initial_response,
};

/// The server nonce part most tests use.
const SERVER_NONCE: &str = "srvnonce+/x";

/// A connection without TLS channel binding.
fn no_cb() -> ChannelBindingInfo {
    ChannelBindingInfo::default()
}

/// A TLS 1.3 connection offering both binding types.
fn tls_cb() -> ChannelBindingInfo {
    ChannelBindingInfo {
        plus_advertised: true,
        data: vec![
            (ChannelBindingType::TlsExporter, vec![0x11; 32]),
            (ChannelBindingType::TlsServerEndPoint, vec![0x22; 32]),
        ],
    }
}

/// Cheap credentials (few iterations keep debug-build tests fast).
fn creds(password: &str) -> StoredCredentials {
    StoredCredentials::derive(password, b"0123456789abcdef", 16).unwrap()
}

/// A SCRAM client without channel binding on a connection that offers none.
fn client(mech: Mechanism, username: &str, password: &str) -> ScramClient {
    ScramClient::new(mech, username, password, None, "cl1ent-n0nce", None, false).unwrap()
}

/// Runs the server up to the server-first message and returns it with the session.
fn server_first(
    mech: Mechanism,
    client_first: &[u8],
    cb: &ChannelBindingInfo,
    creds: Option<&StoredCredentials>,
) -> Result<(ServerSession, Vec<u8>), SaslError> {
    let (mut server, step) = ServerSession::start(mech, Some(client_first), cb)?;
    assert!(matches!(step, Step::NeedCredentials { .. }), "{step:?}");
    match server.credentials(creds, SERVER_NONCE)? {
        Step::Challenge(data) => Ok((server, data)),
        other => panic!("expected a challenge, got {other:?}"),
    }
}

/// Runs a whole SCRAM exchange between `client` and a server.
fn run_scram(
    mech: Mechanism,
    client: &mut ScramClient,
    cb: &ChannelBindingInfo,
    creds: Option<&StoredCredentials>,
) -> Result<(), SaslError> {
    let (mut server, first) = server_first(mech, &client.client_first(), cb, creds)?;
    let client_final = client.handle_server_first(&first)?;
    match server.respond(&client_final)? {
        Step::Success {
            additional_data: Some(server_final),
        } => client.verify_server_final(&server_final),
        other => panic!("expected success with data, got {other:?}"),
    }
}

/// A PLAIN session that has parsed `msg` and waits for credentials.
fn plain_session(msg: &[u8]) -> ServerSession {
    let (server, step) = ServerSession::start(Mechanism::Plain, Some(msg), &no_cb()).unwrap();
    assert!(matches!(step, Step::NeedCredentials { .. }), "{step:?}");
    server
}

/// A complete PLAIN exchange's result.
fn run_plain(
    username: &str,
    password: &str,
    creds: Option<&StoredCredentials>,
) -> Result<Step, SaslError> {
    let msg = plain_initial_response(None, username, password);
    let (mut server, _) = ServerSession::start(Mechanism::Plain, Some(&msg), &no_cb())?;
    server.credentials(creds, "")
}
