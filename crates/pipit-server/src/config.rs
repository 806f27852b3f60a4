//! Server configuration: a TOML file, overridden by command-line flags.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use pipit_proto::jid::prep_domain;
use pipit_proto::server::ConflictPolicy;
use pipit_proto::xml::Limits;
use serde::Deserialize;

use crate::error::ServerError;

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
    /// `postgres://` URL, or an SQLite file path; default `DATA_DIR/pipit.sqlite3`.
    pub database: Option<String>,
    /// Resource conflict policy: `replace`, `refuse` or `rename`.
    pub conflict_policy: Option<String>,
    /// PBKDF2 iterations for new SCRAM credentials.
    pub scram_iterations: Option<u32>,
    /// Largest stanza accepted, in bytes.
    pub max_stanza_bytes: Option<usize>,
    /// Seconds a client has from connect to a bound resource.
    pub login_timeout_secs: Option<u64>,
    /// Seconds a dropped session with stream management waits to be resumed
    /// (XEP-0198 §5); 0 turns resumption off.
    pub sm_resume_timeout_secs: Option<u64>,
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
            database: flags.database.or(self.database),
            conflict_policy: flags.conflict_policy.or(self.conflict_policy),
            scram_iterations: flags.scram_iterations.or(self.scram_iterations),
            max_stanza_bytes: flags.max_stanza_bytes.or(self.max_stanza_bytes),
            login_timeout_secs: flags.login_timeout_secs.or(self.login_timeout_secs),
            sm_resume_timeout_secs: flags.sm_resume_timeout_secs.or(self.sm_resume_timeout_secs),
        }
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
    /// A certificate and key given by the operator, if any.
    pub cert: Option<(PathBuf, PathBuf)>,
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
    /// How long a detached session waits for resumption (zero: no resumption).
    pub sm_resume_timeout: Duration,
}

/// Default data directory, relative to where `pipit` runs.
pub const DEFAULT_DATA_DIR: &str = "pipit-data";
/// Default iteration count for SCRAM (RFC 7677 §4 recommends at least 4096).
pub const DEFAULT_SCRAM_ITERATIONS: u32 = 4096;
/// Default time a detached session waits for resumption (XEP-0198 §5).
pub const DEFAULT_SM_RESUME_TIMEOUT_SECS: u64 = 300;

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
            database,
            conflict_policy,
            scram_iterations,
            limits,
            login_timeout: Duration::from_secs(settings.login_timeout_secs.unwrap_or(60)),
            sm_resume_timeout: Duration::from_secs(
                settings
                    .sm_resume_timeout_secs
                    .unwrap_or(DEFAULT_SM_RESUME_TIMEOUT_SECS),
            ),
        })
    }
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
}
