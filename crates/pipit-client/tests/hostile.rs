//! Servers that misbehave: every login ends with an error, in time, without a panic.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use pipit_client::{
    ClientError, Error, KnownServer, LoginOptions, Mode, Session, SmSession, State, TlsSettings,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// A server that answers every connection with `script`, then keeps the
/// connection open (or closes it when `close` is set).
async fn fake_server(script: &'static [u8], close: bool) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                // Answer once the client spoke, as a server would.
                let _ = s.read(&mut buf).await;
                let _ = s.write_all(script).await;
                if close {
                    return;
                }
                while let Ok(n) = s.read(&mut buf).await {
                    if n == 0 {
                        return;
                    }
                }
            });
        }
    });
    addr
}

fn options(addr: SocketAddr, mode: Mode) -> LoginOptions {
    let mut o = LoginOptions::new("alice@localhost", "pencil").unwrap();
    o.server = addr.to_string();
    o.direct_tls = addr.to_string();
    o.mode = mode;
    o.tls = TlsSettings::builder()
        .dangerous_accept_any_certificate()
        .build()
        .unwrap();
    o.timeout = Duration::from_millis(500);
    if mode == Mode::SmResume {
        // A session an earlier login left, so that this one goes to the network.
        let earlier = KnownServer {
            sm_session: Some(SmSession {
                id: "sm-1".into(),
                h: 0,
            }),
            ..KnownServer::default()
        };
        o.state = State::in_memory();
        o.state.remember(&o.server, &o.jid, &earlier).unwrap();
    }
    o
}

async fn fails(addr: SocketAddr, mode: Mode) -> Error {
    let start = Instant::now();
    let err = Session::login(&options(addr, mode)).await.unwrap_err();
    assert!(start.elapsed() < Duration::from_secs(5), "{err:?}");
    err
}

#[tokio::test]
async fn a_silent_server_times_out() {
    let addr = fake_server(b"", false).await;
    for mode in Mode::ALL {
        assert!(matches!(fails(addr, mode).await, Error::Timeout(_)));
    }
}

#[tokio::test]
async fn a_server_that_hangs_up_is_reported() {
    let addr = fake_server(b"", true).await;
    for mode in Mode::ALL {
        let err = fails(addr, mode).await;
        assert!(
            matches!(
                err,
                Error::Protocol(ClientError::ConnectionClosed) | Error::Io(_)
            ),
            "{mode:?}: {err:?}"
        );
    }
}

#[tokio::test]
async fn garbage_is_an_xml_or_tls_error() {
    let addr = fake_server(b"\x16\x03\x01\xff\xff<<<&&&\x00garbage", false).await;
    for mode in Mode::ALL {
        let err = fails(addr, mode).await;
        assert!(
            matches!(
                err,
                Error::Protocol(ClientError::Xml(_) | ClientError::Tls(_))
            ),
            "{mode:?}: {err:?}"
        );
    }
}

#[tokio::test]
async fn no_starttls_no_login() {
    let addr = fake_server(
        b"<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
          xmlns:stream='http://etherx.jabber.org/streams' version='1.0' from='localhost'>\
          <stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>\
          <mechanism>PLAIN</mechanism></mechanisms></stream:features>",
        false,
    )
    .await;
    let err = fails(addr, Mode::Lockstep).await;
    assert!(
        matches!(err, Error::Protocol(ClientError::NoStartTls)),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_stream_error_is_passed_on() {
    let addr = fake_server(
        b"<stream:stream xmlns='jabber:client' \
          xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>\
          <stream:error><host-unknown xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>\
          </stream:error></stream:stream>",
        false,
    )
    .await;
    let err = fails(addr, Mode::Pipelined).await;
    assert!(
        matches!(&err, Error::Protocol(ClientError::Stream { condition, .. }) if condition == "host-unknown"),
        "{err:?}"
    );
}

#[tokio::test]
async fn nobody_listening_is_a_connect_error() {
    let gone = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = gone.local_addr().unwrap();
    drop(gone);
    let err = fails(addr, Mode::Stunt).await;
    assert!(matches!(err, Error::Connect { .. }), "{err:?}");
}

#[tokio::test]
async fn an_address_without_a_port_is_a_resolve_error() {
    let mut o = options("127.0.0.1:1".parse().unwrap(), Mode::Stunt);
    o.server = "127.0.0.1".into();
    let err = Session::login(&o).await.unwrap_err();
    assert!(matches!(err, Error::Resolve { .. }), "{err:?}");
}
