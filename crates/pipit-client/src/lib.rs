//! Pipit's XMPP client for tokio: a thin driver of the sans-IO client in
//! [`pipit_proto::client`] that logs in with the fewest round trips the server
//! allows, in each mode of DESIGN.md §1, and reports how many it took.
//!
//! ```no_run
//! # async fn demo() -> Result<(), pipit_client::Error> {
//! use std::time::Duration;
//! use pipit_client::{LoginOptions, Mode, Session, State};
//! use pipit_client::xml::{Element, ns};
//!
//! let mut options = LoginOptions::new("alice@example.org", "secret")?;
//! options.mode = Mode::Stunt;
//! // What this login learns lets the next one pipeline (DESIGN.md rule 9).
//! options.state = State::open("pipit-state.json")?;
//! let mut session = Session::login(&options).await?;
//! let report = session.report();
//! println!("bound {} in {} round trips", report.jid, report.round_trips);
//!
//! session.send(&Element::new("presence", ns::CLIENT)).await?;
//! if let Some(stanza) = session.next_stanza(Duration::from_secs(5)).await? {
//!     println!("got {stanza}");
//! }
//! session.close().await?;
//! # Ok(()) }
//! ```
//!
//! Layout:
//! - [`options`]: [`LoginOptions`], what a login needs;
//! - [`session`]: [`Session::login`], the driver and its round-trip [`Report`];
//! - [`tls`]: [`TlsSettings`], trust and the in-memory TLS session cache;
//! - [`state`]: [`State`], the facts earlier logins learned, optionally in a file;
//! - [`relay`]: a latency relay for emulating a round-trip time.
//!
//! Round trips are counted as the server tests and `pipit login` count them: the TCP
//! connect is 1, and each time the client has written all it can and must wait on
//! the server before its resource is bound adds 1. Each flight goes out in one
//! write on a socket with TCP_NODELAY (DESIGN.md §4).
//!
//! The client pipelines authentication only with credentials that succeeded on that
//! server before (the [`State`]), still verifies the SCRAM server signature, and
//! otherwise waits for each answer it needs (DESIGN.md rule 9). TLS sessions resume
//! only within one process: see [`tls`].

pub mod error;
pub mod options;
pub mod relay;
pub mod session;
pub mod state;
pub mod tls;

pub use error::Error;
pub use options::LoginOptions;
pub use pipit_proto::client::{ClientError, KnownServer, Mode, SmSession};
pub use pipit_proto::jid::Jid;
pub use pipit_proto::sasl::Mechanism;
pub use session::{Report, Session};
pub use state::State;
pub use tls::{TlsBuilder, TlsSettings};

/// XML elements and namespaces, for building and reading stanzas.
pub mod xml {
    pub use pipit_proto::xml::{Element, ns};
}
