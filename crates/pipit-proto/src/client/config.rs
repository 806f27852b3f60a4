//! What a client login needs, and what it may remember about a server.

use std::sync::Arc;

use rustls::pki_types::ServerName;

use crate::jid::Jid;
use crate::sasl::Mechanism;

/// How the client sequences its login (DESIGN.md §1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mode {
    /// RFC 6120 §9: every step waits for the server's answer.
    Lockstep,
    /// Header + `<starttls/>` together; after TLS, auth, restart and bind together.
    Pipelined,
    /// As `Pipelined`, and the TLS ClientHello rides with `<starttls/>`.
    Stunt,
    /// TLS from the first byte (XEP-0368); after it, as `Pipelined`.
    Direct,
    /// Direct TLS, then SASL2 (XEP-0388) with inline Bind2 (XEP-0386): no stream
    /// restart, and with a cached config version (XEP-0509) the `<authenticate/>`
    /// rides with the stream header.
    Sasl2,
}

impl Mode {
    /// Every mode, in the order `--mode all` runs them.
    pub const ALL: [Mode; 5] = [
        Mode::Lockstep,
        Mode::Pipelined,
        Mode::Stunt,
        Mode::Direct,
        Mode::Sasl2,
    ];

    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Lockstep => "lockstep",
            Mode::Pipelined => "pipelined",
            Mode::Stunt => "stunt",
            Mode::Direct => "direct",
            Mode::Sasl2 => "sasl2",
        }
    }

    /// Parses a name.
    pub fn from_name(name: &str) -> Option<Mode> {
        Mode::ALL.into_iter().find(|m| m.name() == name)
    }

    /// Whether the connection starts in TLS (Direct TLS port) rather than STARTTLS.
    pub fn direct_tls(self) -> bool {
        matches!(self, Mode::Direct | Mode::Sasl2)
    }
}

/// What the client learned about a server on an earlier login: the grounds on which
/// it may pipeline (DESIGN.md rule 9). Without them it waits for each answer it needs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KnownServer {
    /// The SASL mechanisms offered after TLS.
    pub mechanisms: Vec<String>,
    /// The channel-binding types advertised (XEP-0440).
    pub channel_bindings: Vec<String>,
    /// These credentials succeeded on this server before.
    pub credentials_ok: bool,
    /// The XEP-0509 config version the server advertised: with it, a SASL2
    /// `<authenticate/>` may be pipelined with the stream header.
    pub config_version: Option<String>,
}

/// One login's settings.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// The account (bare JID).
    pub jid: Jid,
    /// Its password.
    pub password: String,
    /// The resource to ask for; a client-chosen resource lets bind pipeline.
    pub resource: String,
    /// The mechanism to use; `None` picks the strongest offered.
    pub mechanism: Option<Mechanism>,
    /// How to sequence the login.
    pub mode: Mode,
    /// TLS settings (roots, versions, the session cache for resumption).
    pub tls: Arc<rustls::ClientConfig>,
    /// The name the certificate must carry (normally the JID's domain).
    pub server_name: ServerName<'static>,
    /// What an earlier login learned, if anything.
    pub known: Option<KnownServer>,
    /// A stable id of this client installation, sent as the SASL2 user-agent id
    /// (XEP-0388 §2.3); FAST tokens are bound to it.
    pub user_agent: Option<String>,
}
