//! The driver learns of each failed password login (`Event::AuthFailed`), for its
//! throttling, and of nothing else: an unknown account fails exactly like a wrong
//! password, and failures where no password was tried are not reported.

mod support;

use pipit_proto::random::SeededRandom;
use pipit_proto::server::{ConflictPolicy, Event, Listener, ServerConnection};
use support::*;

/// The core and a client over memory, with every event kept.
struct Wire {
    conn: ServerConnection,
    client: Client,
    events: Vec<Event>,
}

impl Wire {
    fn direct_tls() -> Wire {
        let config = server_config(ConflictPolicy::Replace);
        let conn =
            ServerConnection::new(config, Listener::DirectTls, Box::new(SeededRandom::new(1)));
        let mut wire = Wire {
            conn,
            client: Client::new(),
            events: Vec::new(),
        };
        wire.client
            .start_tls(&client_tls(&rustls::version::TLS13), false);
        wire.flight("");
        wire
    }

    fn flight(&mut self, plaintext: &str) {
        let bytes = self.client.wire(plaintext.as_bytes());
        self.conn.handle_input(&bytes);
        while let Some(event) = self.conn.poll_event() {
            if let Event::NeedCredentials { username, .. } = &event {
                let known = username == "alice";
                self.conn
                    .provide_credentials(known.then(|| credentials().clone()));
            }
            self.events.push(event);
        }
        self.client.receive(&self.conn.take_output());
    }

    fn failures(&self) -> Vec<(String, &'static str)> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::AuthFailed {
                    username,
                    domain,
                    mechanism,
                } => {
                    assert_eq!(domain, DOMAIN);
                    Some((username.clone(), *mechanism))
                }
                _ => None,
            })
            .collect()
    }
}

#[test]
fn wrong_passwords_and_unknown_accounts_are_reported_alike() {
    let mut wire = Wire::direct_tls();
    wire.flight(&header(true));
    wire.flight(&plain_auth("alice", "wrong"));
    wire.flight(&plain_auth("nobody", PASSWORD));
    assert!(wire.client.take_text().matches("<not-authorized/>").count() == 2);
    assert_eq!(
        wire.failures(),
        [
            ("alice".to_string(), "PLAIN"),
            ("nobody".to_string(), "PLAIN")
        ]
    );
    // A success after them reports no failure.
    wire.flight(&plain_auth("alice", PASSWORD));
    assert!(wire.client.take_text().contains("<success"));
    assert_eq!(wire.failures().len(), 2);
}

#[test]
fn failures_without_a_password_tried_are_not_reported() {
    let mut wire = Wire::direct_tls();
    wire.flight(&header(true));
    wire.flight("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='X-NONE'/>");
    wire.flight("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>!!</auth>");
    wire.flight("<abort xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>");
    assert_eq!(wire.client.take_text().matches("<failure").count(), 3);
    assert!(wire.failures().is_empty(), "{:?}", wire.events);
}

#[test]
fn the_stream_header_and_tls_phases_are_visible_to_the_driver() {
    let config = server_config(ConflictPolicy::Replace);
    let conn = ServerConnection::new(
        config.clone(),
        Listener::StartTls,
        Box::new(SeededRandom::new(1)),
    );
    assert!(conn.awaits_stream_header() && !conn.is_tls_handshaking());
    // The server's flight is out; it waits for the client's Finished.
    let mut wire = Wire::direct_tls();
    assert!(wire.conn.is_tls_handshaking() && !wire.conn.awaits_stream_header());
    let mut fresh =
        ServerConnection::new(config, Listener::DirectTls, Box::new(SeededRandom::new(1)));
    assert!(fresh.is_tls_handshaking() && !fresh.awaits_stream_header());
    fresh.handle_timeout();
    assert!(!fresh.is_tls_handshaking(), "closed");
    // The Finished and the header in one flight: the stream is open.
    wire.flight(&header(true));
    assert!(!wire.conn.is_tls_handshaking() && !wire.conn.awaits_stream_header());
    wire.flight(&plain_auth("alice", PASSWORD));
    // After success, the restart waits for the client's new header.
    assert!(wire.conn.awaits_stream_header());
}
