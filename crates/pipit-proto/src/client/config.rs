//! What a client login needs, and what it may remember about a server.

use std::sync::Arc;

use rustls::pki_types::ServerName;

use crate::client::sm::SmSession;
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
    /// As `Sasl2`, authenticating with a FAST token (XEP-0484) an earlier login got:
    /// no password, and a single message.
    Fast,
    /// As `Fast`, with the stream header and the FAST `<authenticate/>` in TLS 1.3
    /// early data (0-RTT), in the first flight with the ClientHello: a session
    /// resumed from a ticket that allows early data, a cached token, and a server
    /// that said `tls-0rtt` (XEP-0484 §3.1). Stanzas wait for the handshake. Without
    /// those grounds, or when the server refuses the early data, it is `Fast`.
    Fast0Rtt,
    /// XEP-0198 resumption inline in SASL2: the `<resume/>` of a session an
    /// earlier login left detached rides in `<authenticate/>`, with a Bind2
    /// request as the fallback. Authenticates as `Fast0Rtt` does where it can
    /// (early data, else a token), else with the password as `Sasl2`.
    SmResume,
}

impl Mode {
    /// Every mode, in the order `--mode all` runs them.
    /// `Fast0Rtt` late: the logins before it leave the token and the session
    /// ticket; `SmResume` last, resuming the session `Fast0Rtt` leaves detached.
    pub const ALL: [Mode; 8] = [
        Mode::Lockstep,
        Mode::Pipelined,
        Mode::Stunt,
        Mode::Direct,
        Mode::Sasl2,
        Mode::Fast,
        Mode::Fast0Rtt,
        Mode::SmResume,
    ];

    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Lockstep => "lockstep",
            Mode::Pipelined => "pipelined",
            Mode::Stunt => "stunt",
            Mode::Direct => "direct",
            Mode::Sasl2 => "sasl2",
            Mode::Fast => "fast",
            Mode::Fast0Rtt => "fast-0rtt",
            Mode::SmResume => "sm-resume",
        }
    }

    /// Parses a name.
    pub fn from_name(name: &str) -> Option<Mode> {
        Mode::ALL.into_iter().find(|m| m.name() == name)
    }

    /// Whether the connection starts in TLS (Direct TLS port) rather than STARTTLS.
    pub fn direct_tls(self) -> bool {
        matches!(
            self,
            Mode::Direct | Mode::Sasl2 | Mode::Fast | Mode::Fast0Rtt | Mode::SmResume
        )
    }

    /// Whether the login speaks SASL2 rather than RFC 6120 SASL.
    pub fn sasl2(self) -> bool {
        matches!(
            self,
            Mode::Sasl2 | Mode::Fast | Mode::Fast0Rtt | Mode::SmResume
        )
    }

    /// Whether the login authenticates with a FAST token rather than the password.
    pub fn fast(self) -> bool {
        matches!(self, Mode::Fast | Mode::Fast0Rtt)
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
    /// The FAST mechanisms offered inside SASL2 (XEP-0484 §3.1).
    pub fast_mechanisms: Vec<String>,
    /// The FAST token the server issued to this client, if any.
    pub fast_token: Option<FastToken>,
    /// The server takes a FAST authentication in TLS 1.3 early data (XEP-0484 §3.1
    /// `tls-0rtt`).
    pub fast_zero_rtt: bool,
    /// RFC 5929 `tls-server-end-point` data for the server's certificate, from the
    /// last handshake: a 0-RTT login binds its FAST token to it before the resumed
    /// handshake (which does not send the certificate again) has even begun.
    pub end_point_hash: Option<Vec<u8>>,
    /// Bind2 takes an inline `<enable/>` of stream management (XEP-0386 §4).
    pub sm_inline: bool,
    /// SASL2 takes an inline `<resume/>` (XEP-0198 §5 with XEP-0388).
    pub sm_resume_inline: bool,
    /// The resumable session the last login left, if any (XEP-0198 §5).
    pub sm_session: Option<SmSession>,
    /// The XEP-0480 upgrade tasks offered in SASL2's features.
    pub upgrade_tasks: Vec<String>,
}

/// A FAST token (XEP-0484 §3.3): a secret as good as the password for one mechanism,
/// so whoever keeps it must protect it like one.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct FastToken {
    /// The token string.
    pub token: String,
    /// The HT mechanism it is for.
    pub mechanism: String,
    /// The expiry the server gave (XEP-0082 date-time).
    pub expiry: String,
    /// The last `count` used with it (XEP-0484 §3.4: strictly increasing).
    pub count: u64,
}

impl std::fmt::Debug for FastToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FastToken")
            .field("mechanism", &self.mechanism)
            .field("expiry", &self.expiry)
            .field("count", &self.count)
            .finish_non_exhaustive()
    }
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
