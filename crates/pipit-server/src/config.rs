//! Server configuration: a TOML file, overridden by command-line flags.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use pipit_proto::jid::prep_domain;
use pipit_proto::server::ConflictPolicy;
use pipit_proto::xml::Limits;
use serde::Deserialize;

use crate::error::ServerError;
use crate::limits::{self, ConnectionLimits};

/// Settings as written in the TOML file or given as flags; every field optional so
/// that flags can be laid over the file (flags win).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Settings {
    /// Directory for the database and the generated certificate.
    pub data_dir: Option<PathBuf>,
    /// Domains served (virtual hosts); the first is the default.
    pub domains: Option<Vec<String>>,
    /// Address of the STARTTLS c2s listener.
    pub c2s_addr: Option<SocketAddr>,
    /// Address of the Direct TLS (XEP-0368) listener.
    pub direct_tls_addr: Option<SocketAddr>,
    /// PEM certificate chain; with `key`, replaces the generated self-signed one.
    pub cert: Option<PathBuf>,
    /// PEM private key for `cert`.
    pub key: Option<PathBuf>,
    /// Certificates of single domains, chosen by SNI; `cert`/`key` (or the
    /// self-signed one) stay the default for other names and for no SNI.
    pub certificates: Option<Vec<DomainCertificate>>,
    /// `postgres://` URL, or an SQLite file path; default `DATA_DIR/pipit.sqlite3`.
    pub database: Option<String>,
    /// Resource conflict policy: `replace`, `refuse` or `rename`.
    pub conflict_policy: Option<String>,
    /// PBKDF2 iterations for new SCRAM credentials.
    pub scram_iterations: Option<u32>,
    /// Largest stanza accepted, in bytes.
    pub max_stanza_bytes: Option<usize>,
    /// Deepest nesting inside a stanza, the stanza itself counted.
    pub max_stanza_depth: Option<usize>,
    /// Most attributes on one start tag, namespace declarations included.
    pub max_attributes: Option<usize>,
    /// Seconds a client has from connect to a bound resource.
    pub login_timeout_secs: Option<u64>,
    // Abuse protection (`crate::throttle`, `crate::session`): timeouts, slow
    // readers, failed-login throttling.
    /// Seconds a client has to send its stream header after connect, after TLS
    /// and after a SASL success.
    pub stream_open_timeout_secs: Option<u64>,
    /// Seconds a TLS handshake may take.
    pub tls_handshake_timeout_secs: Option<u64>,
    /// Seconds a bound session may be silent before it is pinged; 0: never.
    pub idle_timeout_secs: Option<u64>,
    /// Seconds a pinged session has to answer before its stream ends.
    pub ping_timeout_secs: Option<u64>,
    /// Stanzas routed to a session that may wait behind output its client has
    /// not read, before the stream ends with `<resource-constraint/>`.
    pub max_queued_stanzas: Option<usize>,
    /// Bytes of routed stanzas held for a client that is not reading.
    pub max_queued_bytes: Option<usize>,
    /// Failed logins an address may have before its attempts are delayed.
    pub auth_free_failures: Option<u32>,
    /// Longest delay of a throttled login attempt, in seconds; 0 turns
    /// throttling off.
    pub auth_max_delay_secs: Option<u64>,
    /// Seconds a dropped session with stream management waits to be resumed
    /// (XEP-0198 §5); 0 turns resumption off.
    pub sm_resume_timeout_secs: Option<u64>,
    // Connection and session limits (see `crate::limits`); 0 turns each off.
    /// Connections one address (IPv4, or IPv6 /64) may hold open at once.
    pub max_connections_per_ip: Option<u32>,
    /// New connections one address may open per second once its burst is spent.
    pub connection_rate_per_ip: Option<u32>,
    /// New connections one address may open at once before the rate applies.
    pub connection_burst_per_ip: Option<u32>,
    /// Connections the server holds open in all.
    pub max_connections: Option<u32>,
    /// Resources one account may have bound at once, detached ones included.
    pub max_sessions_per_user: Option<u32>,
    /// Messages kept for an account while it is offline (XEP-0160).
    pub max_offline_messages: Option<usize>,
    /// The most messages one archive query returns (XEP-0313).
    pub mam_max_page: Option<usize>,
    /// Entries a roster may hold: items, and subscription requests waiting for an
    /// answer; 0: no limit.
    pub max_roster_items: Option<usize>,
}

impl Settings {
    /// Reads a TOML file.
    pub fn from_file(path: &Path) -> Result<Self, ServerError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ServerError::Config(format!("cannot read {}: {e}", path.display())))?;
        toml::from_str(&text).map_err(|e| ServerError::Config(format!("{}: {e}", path.display())))
    }

    /// Lays `flags` over `self`: every field set in `flags` wins.
    pub fn merge(self, flags: Settings) -> Settings {
        Settings {
            data_dir: flags.data_dir.or(self.data_dir),
            domains: flags.domains.or(self.domains),
            c2s_addr: flags.c2s_addr.or(self.c2s_addr),
            direct_tls_addr: flags.direct_tls_addr.or(self.direct_tls_addr),
            cert: flags.cert.or(self.cert),
            key: flags.key.or(self.key),
            certificates: flags.certificates.or(self.certificates),
            database: flags.database.or(self.database),
            conflict_policy: flags.conflict_policy.or(self.conflict_policy),
            scram_iterations: flags.scram_iterations.or(self.scram_iterations),
            max_stanza_bytes: flags.max_stanza_bytes.or(self.max_stanza_bytes),
            max_stanza_depth: flags.max_stanza_depth.or(self.max_stanza_depth),
            max_attributes: flags.max_attributes.or(self.max_attributes),
            login_timeout_secs: flags.login_timeout_secs.or(self.login_timeout_secs),
            stream_open_timeout_secs: flags
                .stream_open_timeout_secs
                .or(self.stream_open_timeout_secs),
            tls_handshake_timeout_secs: flags
                .tls_handshake_timeout_secs
                .or(self.tls_handshake_timeout_secs),
            idle_timeout_secs: flags.idle_timeout_secs.or(self.idle_timeout_secs),
            ping_timeout_secs: flags.ping_timeout_secs.or(self.ping_timeout_secs),
            max_queued_stanzas: flags.max_queued_stanzas.or(self.max_queued_stanzas),
            max_queued_bytes: flags.max_queued_bytes.or(self.max_queued_bytes),
            auth_free_failures: flags.auth_free_failures.or(self.auth_free_failures),
            auth_max_delay_secs: flags.auth_max_delay_secs.or(self.auth_max_delay_secs),
            sm_resume_timeout_secs: flags.sm_resume_timeout_secs.or(self.sm_resume_timeout_secs),
            max_connections_per_ip: flags.max_connections_per_ip.or(self.max_connections_per_ip),
            connection_rate_per_ip: flags.connection_rate_per_ip.or(self.connection_rate_per_ip),
            connection_burst_per_ip: flags
                .connection_burst_per_ip
                .or(self.connection_burst_per_ip),
            max_connections: flags.max_connections.or(self.max_connections),
            max_sessions_per_user: flags.max_sessions_per_user.or(self.max_sessions_per_user),
            max_offline_messages: flags.max_offline_messages.or(self.max_offline_messages),
            mam_max_page: flags.mam_max_page.or(self.mam_max_page),
            max_roster_items: flags.max_roster_items.or(self.max_roster_items),
        }
    }
}

/// A domain's own certificate: `[[certificates]]` in the TOML file, or
/// `--domain-cert DOMAIN=CERT,KEY`.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct DomainCertificate {
    /// The served domain it is for; clients asking for it by SNI get it.
    pub domain: String,
    /// PEM certificate chain, leaf first; the leaf must name the domain.
    pub cert: PathBuf,
    /// PEM private key of the leaf.
    pub key: PathBuf,
}

impl std::str::FromStr for DomainCertificate {
    type Err = String;

    /// Parses the flag form `DOMAIN=CERT,KEY`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parsed = s.split_once('=').and_then(|(domain, files)| {
            let (cert, key) = files.split_once(',')?;
            fn filled(p: &str) -> Option<&str> {
                (!p.is_empty()).then_some(p)
            }
            Some(DomainCertificate {
                domain: filled(domain)?.to_owned(),
                cert: filled(cert)?.into(),
                key: filled(key)?.into(),
            })
        });
        parsed.ok_or_else(|| format!("{s:?} is not DOMAIN=CERT,KEY"))
    }
}

/// The resolved configuration, defaults filled in and values checked.
#[derive(Clone, Debug)]
pub struct Config {
    /// Directory for the database and the generated certificate.
    pub data_dir: PathBuf,
    /// Prepared domains; the first is the default.
    pub domains: Vec<String>,
    /// STARTTLS c2s listener.
    pub c2s_addr: SocketAddr,
    /// Direct TLS listener.
    pub direct_tls_addr: SocketAddr,
    /// A certificate and key given by the operator, if any: the default one.
    pub cert: Option<(PathBuf, PathBuf)>,
    /// Certificates of single domains (prepared, each served, each once).
    pub certificates: Vec<DomainCertificate>,
    /// Store location: URL or SQLite path.
    pub database: String,
    /// Resource conflict policy.
    pub conflict_policy: ConflictPolicy,
    /// PBKDF2 iterations for new credentials.
    pub scram_iterations: u32,
    /// XML limits.
    pub limits: Limits,
    /// Time from connect to bound resource.
    pub login_timeout: Duration,
    /// Time for the client's stream header, after connect, TLS or SASL success.
    pub stream_open_timeout: Duration,
    /// Time for a TLS handshake.
    pub tls_handshake_timeout: Duration,
    /// Silence before a bound session is pinged (zero: never).
    pub idle_timeout: Duration,
    /// Time to answer that ping.
    pub ping_timeout: Duration,
    /// Routed stanzas held for a client that is not reading.
    pub max_queued_stanzas: usize,
    /// Bytes of routed stanzas held for a client not reading, past which its
    /// stream ends the same way: a few large stanzas weigh as much as many small.
    pub max_queued_bytes: usize,
    /// Failed-login throttling.
    pub throttle: crate::throttle::Policy,
    /// How long a detached session waits for resumption (zero: no resumption).
    pub sm_resume_timeout: Duration,
    /// Connections admitted per address, per second and in all.
    pub connection_limits: ConnectionLimits,
    /// Resources one account may have bound at once (0: no limit).
    pub max_sessions_per_user: u32,
    /// Messages kept per account while it is offline; 0 keeps none (every
    /// message to an offline account bounces, RFC 6121 §8.5.2.2.1).
    pub max_offline_messages: usize,
    /// The most messages one archive query returns (at least 1).
    pub mam_max_page: usize,
    /// Entries a roster may hold (0: no limit).
    pub max_roster_items: usize,
}

/// Default data directory, relative to where `pipit` runs.
pub const DEFAULT_DATA_DIR: &str = "pipit-data";
/// Default iteration count for SCRAM (RFC 7677 §4 recommends at least 4096).
pub const DEFAULT_SCRAM_ITERATIONS: u32 = 4096;
/// Default time a detached session waits for resumption (XEP-0198 §5).
pub const DEFAULT_SM_RESUME_TIMEOUT_SECS: u64 = 300;
/// Default time for a stream header: one flight, on the slowest mobile link.
pub const DEFAULT_STREAM_OPEN_TIMEOUT_SECS: u64 = 30;
/// Default time for a TLS handshake: two flights and the key exchange.
pub const DEFAULT_TLS_HANDSHAKE_TIMEOUT_SECS: u64 = 30;
/// Default silence before a ping: five minutes, as clients' own keepalives go.
pub const DEFAULT_IDLE_TIMEOUT_SECS: u64 = 300;
/// Default time to answer a ping.
pub const DEFAULT_PING_TIMEOUT_SECS: u64 = 60;
/// Default stanzas held for a client that is not reading: a burst a reading client
/// gets through in a moment, far less memory than a stalled one could cost.
pub const DEFAULT_MAX_QUEUED_STANZAS: usize = 1000;
/// Default bytes held for a client that is not reading: 4 MiB, sixteen stanzas at
/// the default size limit, or a thousand ordinary messages.
pub const DEFAULT_MAX_QUEUED_BYTES: usize = 4 * 1024 * 1024;
/// Default offline queue per account: days of ordinary chat, bounded so that a
/// flood to one absent account cannot fill the disk.
pub const DEFAULT_MAX_OFFLINE_MESSAGES: usize = 1000;
/// Default largest archive page: one query's results are held and written at once.
pub const DEFAULT_MAM_MAX_PAGE: usize = 100;
/// Default roster size: far more contacts than a person keeps, few enough that a
/// roster get stays one modest stanza.
pub const DEFAULT_MAX_ROSTER_ITEMS: usize = 1000;

/// A timeout setting: `default` seconds when unset; zero is refused, since it
/// would end every connection at once.
fn at_least_a_second(key: &str, secs: Option<u64>, default: u64) -> Result<Duration, ServerError> {
    match secs.unwrap_or(default) {
        0 => Err(ServerError::Config(format!(
            "{key} must be at least 1 second"
        ))),
        secs => Ok(Duration::from_secs(secs)),
    }
}

/// The failed-login throttle's numbers: the account gets twice the address's free
/// failures (its owner's typos count there too).
fn throttle_policy(free: Option<u32>, max_delay_secs: Option<u64>) -> crate::throttle::Policy {
    let defaults = crate::throttle::Policy::default();
    let ip_free = free.unwrap_or(defaults.ip_free);
    crate::throttle::Policy {
        ip_free,
        account_free: ip_free.saturating_mul(2),
        max_delay: max_delay_secs.map_or(defaults.max_delay, Duration::from_secs),
        ..defaults
    }
}

impl Config {
    /// Resolves settings into a configuration.
    pub fn resolve(settings: Settings) -> Result<Config, ServerError> {
        let data_dir = settings.data_dir.unwrap_or_else(|| DEFAULT_DATA_DIR.into());
        let raw_domains = settings.domains.unwrap_or_else(|| vec!["localhost".into()]);
        if raw_domains.is_empty() {
            return Err(ServerError::Config("at least one domain is needed".into()));
        }
        let mut domains = Vec::new();
        for d in &raw_domains {
            let prepped = prep_domain(d)
                .map_err(|e| ServerError::Config(format!("domain {d:?} is not valid: {e}")))?;
            if !domains.contains(&prepped) {
                domains.push(prepped);
            }
        }
        let cert = match (settings.cert, settings.key) {
            (Some(c), Some(k)) => Some((c, k)),
            (None, None) => None,
            _ => {
                return Err(ServerError::Config(
                    "--cert and --key must be given together".into(),
                ));
            }
        };
        let certificates = domain_certificates(settings.certificates, &domains)?;
        let conflict_policy = match settings.conflict_policy {
            None => ConflictPolicy::default(),
            Some(p) => ConflictPolicy::from_name(&p).ok_or_else(|| {
                ServerError::Config(format!(
                    "conflict policy {p:?} is not one of replace, refuse, rename"
                ))
            })?,
        };
        let scram_iterations = settings
            .scram_iterations
            .unwrap_or(DEFAULT_SCRAM_ITERATIONS);
        if scram_iterations < 4096 {
            return Err(ServerError::Config(
                "scram-iterations must be at least 4096 (RFC 7677 §4)".into(),
            ));
        }
        let mut limits = Limits::default();
        if let Some(max) = settings.max_stanza_bytes {
            limits.max_element_bytes = max;
        }
        // A stanza is at least two deep with a payload; a stream header has
        // attributes of its own (to, from, version, xml:lang, xmlns and the prefix).
        for (key, value, least, slot) in [
            (
                "max-stanza-depth",
                settings.max_stanza_depth,
                2,
                &mut limits.max_depth,
            ),
            (
                "max-attributes",
                settings.max_attributes,
                8,
                &mut limits.max_attributes,
            ),
        ] {
            match value {
                Some(n) if n < least => {
                    return Err(ServerError::Config(format!(
                        "{key} must be at least {least}"
                    )));
                }
                Some(n) => *slot = n,
                None => {}
            }
        }
        let database = settings.database.unwrap_or_else(|| {
            data_dir
                .join("pipit.sqlite3")
                .to_string_lossy()
                .into_owned()
        });
        Ok(Config {
            data_dir,
            domains,
            c2s_addr: settings.c2s_addr.unwrap_or(([127, 0, 0, 1], 5222).into()),
            direct_tls_addr: settings
                .direct_tls_addr
                .unwrap_or(([127, 0, 0, 1], 5223).into()),
            cert,
            certificates,
            database,
            conflict_policy,
            scram_iterations,
            limits,
            login_timeout: Duration::from_secs(settings.login_timeout_secs.unwrap_or(60)),
            stream_open_timeout: at_least_a_second(
                "stream-open-timeout-secs",
                settings.stream_open_timeout_secs,
                DEFAULT_STREAM_OPEN_TIMEOUT_SECS,
            )?,
            tls_handshake_timeout: at_least_a_second(
                "tls-handshake-timeout-secs",
                settings.tls_handshake_timeout_secs,
                DEFAULT_TLS_HANDSHAKE_TIMEOUT_SECS,
            )?,
            idle_timeout: Duration::from_secs(
                settings
                    .idle_timeout_secs
                    .unwrap_or(DEFAULT_IDLE_TIMEOUT_SECS),
            ),
            ping_timeout: at_least_a_second(
                "ping-timeout-secs",
                settings.ping_timeout_secs,
                DEFAULT_PING_TIMEOUT_SECS,
            )?,
            max_queued_stanzas: settings
                .max_queued_stanzas
                .unwrap_or(DEFAULT_MAX_QUEUED_STANZAS)
                .max(1),
            max_queued_bytes: settings
                .max_queued_bytes
                .unwrap_or(DEFAULT_MAX_QUEUED_BYTES)
                .max(1),
            throttle: throttle_policy(settings.auth_free_failures, settings.auth_max_delay_secs),
            sm_resume_timeout: Duration::from_secs(
                settings
                    .sm_resume_timeout_secs
                    .unwrap_or(DEFAULT_SM_RESUME_TIMEOUT_SECS),
            ),
            connection_limits: ConnectionLimits {
                per_address: settings
                    .max_connections_per_ip
                    .unwrap_or(limits::DEFAULT_MAX_CONNECTIONS_PER_IP),
                rate_per_sec: settings
                    .connection_rate_per_ip
                    .unwrap_or(limits::DEFAULT_CONNECTION_RATE_PER_IP),
                burst: settings
                    .connection_burst_per_ip
                    .unwrap_or(limits::DEFAULT_CONNECTION_BURST_PER_IP),
                total: settings
                    .max_connections
                    .unwrap_or(limits::DEFAULT_MAX_CONNECTIONS),
            },
            max_sessions_per_user: settings
                .max_sessions_per_user
                .unwrap_or(limits::DEFAULT_MAX_SESSIONS_PER_USER),
            max_offline_messages: settings
                .max_offline_messages
                .unwrap_or(DEFAULT_MAX_OFFLINE_MESSAGES),
            mam_max_page: match settings.mam_max_page.unwrap_or(DEFAULT_MAM_MAX_PAGE) {
                0 => {
                    return Err(ServerError::Config(
                        "mam-max-page must be at least 1".into(),
                    ));
                }
                n => n,
            },
            max_roster_items: settings
                .max_roster_items
                .unwrap_or(DEFAULT_MAX_ROSTER_ITEMS),
        })
    }
}

/// Prepares the domain of each per-domain certificate and checks it against the
/// served domains: a certificate for a domain not served would never be asked for.
fn domain_certificates(
    given: Option<Vec<DomainCertificate>>,
    domains: &[String],
) -> Result<Vec<DomainCertificate>, ServerError> {
    let mut certificates: Vec<DomainCertificate> = Vec::new();
    for mut entry in given.unwrap_or_default() {
        let d = &entry.domain;
        let prepped = prep_domain(d).map_err(|e| {
            ServerError::Config(format!("certificate domain {d:?} is not valid: {e}"))
        })?;
        if !domains.contains(&prepped) {
            return Err(ServerError::Config(format!(
                "a certificate is configured for {prepped:?}, which is not served; add it \
                 to domains or remove the certificate (served: {})",
                domains.join(", ")
            )));
        }
        // SNI carries IDNs as A-labels (RFC 6066 §3); the served domain is stored as
        // prepared Unicode, so the two could not be matched.
        if !prepped.is_ascii() {
            return Err(ServerError::Config(format!(
                "a certificate for the internationalized domain {prepped:?} is not supported \
                 yet; let the default certificate cover it"
            )));
        }
        if certificates.iter().any(|c| c.domain == prepped) {
            return Err(ServerError::Config(format!(
                "two certificates are configured for {prepped:?}; keep one"
            )));
        }
        entry.domain = prepped;
        certificates.push(entry);
    }
    Ok(certificates)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_serve_localhost_on_loopback() {
        let config = Config::resolve(Settings::default()).unwrap();
        assert_eq!(config.domains, ["localhost"]);
        assert_eq!(config.c2s_addr.to_string(), "127.0.0.1:5222");
        assert_eq!(config.direct_tls_addr.to_string(), "127.0.0.1:5223");
        assert_eq!(config.scram_iterations, 4096);
        assert!(config.database.ends_with("pipit.sqlite3"));
        assert_eq!(config.sm_resume_timeout, Duration::from_secs(300));
    }

    #[test]
    fn abuse_protection_defaults_and_keys() {
        let config = Config::resolve(Settings::default()).unwrap();
        assert_eq!(config.stream_open_timeout, Duration::from_secs(30));
        assert_eq!(config.idle_timeout, Duration::from_secs(300));
        assert_eq!(config.max_queued_stanzas, 1000);
        assert_eq!(config.max_queued_bytes, 4 * 1024 * 1024);
        assert_eq!(config.throttle, crate::throttle::Policy::default());
        let file: Settings = toml::from_str(
            "stream-open-timeout-secs = 5\ntls-handshake-timeout-secs = 6\n\
             idle-timeout-secs = 0\nping-timeout-secs = 7\nmax-queued-stanzas = 8\n\
             max-queued-bytes = 1000\n\
             auth-free-failures = 2\nauth-max-delay-secs = 9\n",
        )
        .unwrap();
        let config = Config::resolve(file).unwrap();
        assert_eq!(config.tls_handshake_timeout, Duration::from_secs(6));
        assert_eq!(config.idle_timeout, Duration::ZERO);
        assert_eq!(config.ping_timeout, Duration::from_secs(7));
        assert_eq!(config.max_queued_stanzas, 8);
        assert_eq!(config.max_queued_bytes, 1000);
        let file: Settings = toml::from_str("max-stanza-depth = 6\nmax-attributes = 9\n").unwrap();
        let limited = Config::resolve(file).unwrap().limits;
        assert_eq!((limited.max_depth, limited.max_attributes), (6, 9));
        let defaults = Config::resolve(Settings::default()).unwrap().limits;
        assert_eq!((defaults.max_depth, defaults.max_attributes), (32, 64));
        let err = Config::resolve(toml::from_str("max-stanza-depth = 1\n").unwrap())
            .unwrap_err()
            .to_string();
        assert!(err.contains("max-stanza-depth must be at least 2"), "{err}");
        assert_eq!(
            (config.throttle.ip_free, config.throttle.account_free),
            (2, 4)
        );
        assert_eq!(config.throttle.max_delay, Duration::from_secs(9));
        let zero = Settings {
            ping_timeout_secs: Some(0),
            ..Settings::default()
        };
        let err = Config::resolve(zero).unwrap_err().to_string();
        assert!(err.contains("ping-timeout-secs"), "{err}");
    }

    #[test]
    fn flags_win_over_the_file() {
        let file: Settings =
            toml::from_str("domains = ['a.example', 'B.example']\nc2s-addr = '127.0.0.1:1'\n")
                .unwrap();
        let flags = Settings {
            c2s_addr: Some("127.0.0.1:0".parse().unwrap()),
            ..Settings::default()
        };
        let config = Config::resolve(file.merge(flags)).unwrap();
        assert_eq!(config.domains, ["a.example", "b.example"]);
        assert_eq!(config.c2s_addr.port(), 0);
    }

    #[test]
    fn bad_values_are_explained() {
        let unknown = toml::from_str::<Settings>("colour = 'blue'").unwrap_err();
        assert!(unknown.to_string().contains("colour"));
        let policy = Settings {
            conflict_policy: Some("fight".into()),
            ..Settings::default()
        };
        let err = Config::resolve(policy).unwrap_err().to_string();
        assert!(err.contains("replace, refuse, rename"), "{err}");
        let half = Settings {
            cert: Some("c.pem".into()),
            ..Settings::default()
        };
        assert!(Config::resolve(half).is_err());
    }

    #[test]
    fn per_domain_certificates_are_read_from_the_file() {
        let file: Settings = toml::from_str(
            "domains = ['a.test', 'b.test']\n\
             cert = 'default.pem'\nkey = 'default.key'\n\
             [[certificates]]\ndomain = 'A.test'\ncert = 'a.pem'\nkey = 'a.key'\n",
        )
        .unwrap();
        let config = Config::resolve(file).unwrap();
        assert_eq!(
            config.certificates,
            [DomainCertificate {
                domain: "a.test".into(),
                cert: "a.pem".into(),
                key: "a.key".into(),
            }]
        );
        assert_eq!(
            config.cert,
            Some(("default.pem".into(), "default.key".into()))
        );
    }

    #[test]
    fn the_flag_form_is_domain_cert_key() {
        let parsed: DomainCertificate = "b.test=/etc/b.pem,/etc/b.key".parse().unwrap();
        assert_eq!(parsed.domain, "b.test");
        assert_eq!(parsed.key, Path::new("/etc/b.key"));
        for bad in ["b.test", "b.test=/etc/b.pem", "=c,k", "b.test=,k"] {
            let err = bad.parse::<DomainCertificate>().unwrap_err();
            assert!(err.contains("DOMAIN=CERT,KEY"), "{err}");
        }
    }

    #[test]
    fn certificates_for_unserved_or_repeated_domains_are_refused() {
        let with = |domains: &[&str]| Settings {
            domains: Some(vec!["a.test".into()]),
            certificates: Some(
                domains
                    .iter()
                    .map(|d| format!("{d}=c.pem,k.pem").parse().unwrap())
                    .collect(),
            ),
            ..Settings::default()
        };
        let err = Config::resolve(with(&["b.test"])).unwrap_err().to_string();
        assert!(err.contains("\"b.test\", which is not served"), "{err}");
        assert!(err.contains("served: a.test"), "{err}");
        let err = Config::resolve(with(&["a.test", "A.TEST"]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("two certificates"), "{err}");
    }

    #[test]
    fn connection_limits_have_defaults_and_keys_and_zero_turns_them_off() {
        let config = Config::resolve(Settings::default()).unwrap();
        assert_eq!(config.connection_limits, ConnectionLimits::default());
        assert_eq!(config.max_sessions_per_user, 10);
        let file: Settings = toml::from_str(
            "max-connections-per-ip = 0\nconnection-rate-per-ip = 0\n\
             connection-burst-per-ip = 5\nmax-connections = 0\nmax-sessions-per-user = 3\n",
        )
        .unwrap();
        let config = Config::resolve(file).unwrap();
        assert_eq!(
            config.connection_limits,
            ConnectionLimits {
                burst: 5,
                ..ConnectionLimits::UNLIMITED
            }
        );
        assert_eq!(config.max_sessions_per_user, 3);
    }

    #[test]
    fn storage_bounds_have_defaults_and_keys() {
        let config = Config::resolve(Settings::default()).unwrap();
        assert_eq!(config.max_offline_messages, 1000);
        assert_eq!(config.mam_max_page, 100);
        let file: Settings =
            toml::from_str("max-offline-messages = 0\nmam-max-page = 7\n").unwrap();
        let config = Config::resolve(file).unwrap();
        assert_eq!((config.max_offline_messages, config.mam_max_page), (0, 7));
        let zero: Settings = toml::from_str("mam-max-page = 0\n").unwrap();
        let err = Config::resolve(zero).unwrap_err().to_string();
        assert!(err.contains("mam-max-page must be at least 1"), "{err}");
    }

    #[test]
    fn the_roster_size_has_a_default_a_key_and_a_flag() {
        let config = Config::resolve(Settings::default()).unwrap();
        assert_eq!(config.max_roster_items, 1000);
        let file: Settings = toml::from_str("max-roster-items = 0\n").unwrap();
        assert_eq!(Config::resolve(file.clone()).unwrap().max_roster_items, 0);
        let flags = Settings {
            max_roster_items: Some(5),
            ..Settings::default()
        };
        let config = Config::resolve(file.merge(flags)).unwrap();
        assert_eq!(config.max_roster_items, 5);
    }
}
