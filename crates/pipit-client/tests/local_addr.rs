//! `LoginOptions::local_addr`: the connection comes from the address asked for, as a
//! load test needs to spread its clients over 127.0.0.0/8.

use std::net::IpAddr;
use std::time::Duration;

use pipit_client::{Error, LoginOptions, Mode, Session};
use tokio::net::TcpListener;

#[tokio::test]
async fn the_connection_comes_from_the_local_address_given() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut options = LoginOptions::new("alice@localhost", "pencil").unwrap();
    options.server = addr.to_string();
    options.mode = Mode::Lockstep;
    options.timeout = Duration::from_secs(10);
    for from in ["127.0.0.7", "127.3.2.1"] {
        options.local_addr = Some(from.parse().unwrap());
        // The "server" hangs up at once: what matters is where the connection came from.
        let accept = async {
            let (peer, _) = listener.accept().await.unwrap();
            peer.peer_addr().unwrap().ip()
        };
        let (ip, login) = tokio::join!(accept, Session::login(&options));
        assert_eq!(ip, from.parse::<IpAddr>().unwrap());
        let err = login.unwrap_err();
        assert!(
            matches!(err, Error::Protocol(_) | Error::Io(_)),
            "the server hung up: {err:?}"
        );
    }
}
