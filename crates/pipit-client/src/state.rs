//! What earlier logins learned, per (server address, account): the grounds on which a
//! later login may pipeline (DESIGN.md rule 9). Kept in memory, or in a JSON file.
//!
//! The file holds the server's SASL mechanisms, its channel-binding types, whether
//! these credentials succeeded there, the XEP-0509 config version, the FAST token
//! (XEP-0484) the server issued and whether it takes one in TLS 1.3 early data, and
//! the hash of the server's certificate (RFC 5929 `tls-server-end-point`), what
//! stream management the server takes inline and the session a login left
//! resumable (XEP-0198 §5: its SM-ID and count, no stanza content); it is
//! written readable by its owner only. Never the password, and never a TLS session
//! ticket (see [`crate::tls`]).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use pipit_proto::client::{FastToken, KnownServer, SmSession};
use pipit_proto::jid::Jid;
use serde::{Deserialize, Serialize};

use crate::error::Error;

/// The file format's version.
const VERSION: u32 = 1;

/// A shared handle on the learned facts; clones share them. Logins read it before
/// they start and update it after they succeed.
#[derive(Clone, Debug, Default)]
pub struct State {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Debug, Default)]
struct Inner {
    path: Option<PathBuf>,
    file: StateFile,
}

#[derive(Debug, Serialize, Deserialize)]
struct StateFile {
    version: u32,
    /// This installation's SASL2 user-agent id (XEP-0388 §2.3), made on first use.
    #[serde(default)]
    user_agent: Option<String>,
    servers: Vec<Entry>,
}

impl Default for StateFile {
    fn default() -> Self {
        StateFile {
            version: VERSION,
            user_agent: None,
            servers: Vec::new(),
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Entry {
    /// The server address as configured (`host:port` of the STARTTLS port).
    server: String,
    /// The account, bare.
    jid: String,
    mechanisms: Vec<String>,
    channel_bindings: Vec<String>,
    credentials_ok: bool,
    /// XEP-0509 config version, for pipelining SASL2 `<authenticate/>`.
    #[serde(default)]
    config_version: Option<String>,
    /// FAST mechanisms offered (XEP-0484).
    #[serde(default)]
    fast_mechanisms: Vec<String>,
    /// The FAST token: a secret as good as the password for FAST logins, so the file
    /// is written readable by its owner only.
    #[serde(default)]
    fast_token: Option<StoredToken>,
    /// The server takes FAST in TLS 1.3 early data (XEP-0484 `tls-0rtt`).
    #[serde(default)]
    fast_zero_rtt: bool,
    /// RFC 5929 `tls-server-end-point` data of the server's certificate, in hex.
    #[serde(default)]
    end_point_hash: Option<String>,
    /// Bind2 takes an inline stream management `<enable/>` (XEP-0386 §4).
    #[serde(default)]
    sm_inline: bool,
    /// SASL2 takes an inline `<resume/>` (XEP-0198 §5).
    #[serde(default)]
    sm_resume_inline: bool,
    /// The session a login left detached for resumption.
    #[serde(default)]
    sm_session: Option<StoredSmSession>,
    /// XEP-0480 upgrade tasks offered in SASL2.
    #[serde(default)]
    upgrade_tasks: Vec<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct StoredSmSession {
    id: String,
    h: u32,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct StoredToken {
    token: String,
    mechanism: String,
    expiry: String,
    count: u64,
}

impl State {
    /// Facts kept for this process only.
    pub fn in_memory() -> State {
        State::default()
    }

    /// Facts kept in a JSON file: read now if it exists, written after each change.
    pub fn open(path: impl Into<PathBuf>) -> Result<State, Error> {
        let path = path.into();
        let file = match std::fs::read(&path) {
            Ok(data) => parse(&path, &data)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => StateFile::default(),
            Err(e) => return Err(state_error(&path, e)),
        };
        Ok(State {
            inner: Arc::new(Mutex::new(Inner {
                path: Some(path),
                file,
            })),
        })
    }

    /// The file behind this state, if any.
    pub fn path(&self) -> Option<PathBuf> {
        self.lock().path.clone()
    }

    /// What is known about `server` for `jid`.
    pub fn known(&self, server: &str, jid: &Jid) -> Option<KnownServer> {
        let jid = jid.to_bare().to_string();
        self.lock()
            .file
            .servers
            .iter()
            .find(|e| e.server == server && e.jid == jid)
            .map(|e| KnownServer {
                mechanisms: e.mechanisms.clone(),
                channel_bindings: e.channel_bindings.clone(),
                credentials_ok: e.credentials_ok,
                config_version: e.config_version.clone(),
                fast_mechanisms: e.fast_mechanisms.clone(),
                fast_token: e.fast_token.as_ref().map(|t| FastToken {
                    token: t.token.clone(),
                    mechanism: t.mechanism.clone(),
                    expiry: t.expiry.clone(),
                    count: t.count,
                }),
                fast_zero_rtt: e.fast_zero_rtt,
                end_point_hash: e.end_point_hash.as_deref().and_then(from_hex),
                sm_inline: e.sm_inline,
                sm_resume_inline: e.sm_resume_inline,
                sm_session: e.sm_session.as_ref().map(|s| SmSession {
                    id: s.id.clone(),
                    h: s.h,
                }),
                upgrade_tasks: e.upgrade_tasks.clone(),
            })
    }

    /// Records what a login learned, and saves the file.
    pub fn remember(&self, server: &str, jid: &Jid, known: &KnownServer) -> Result<(), Error> {
        let entry = Entry {
            server: server.to_owned(),
            jid: jid.to_bare().to_string(),
            mechanisms: known.mechanisms.clone(),
            channel_bindings: known.channel_bindings.clone(),
            credentials_ok: known.credentials_ok,
            config_version: known.config_version.clone(),
            fast_mechanisms: known.fast_mechanisms.clone(),
            fast_token: known.fast_token.as_ref().map(|t| StoredToken {
                token: t.token.clone(),
                mechanism: t.mechanism.clone(),
                expiry: t.expiry.clone(),
                count: t.count,
            }),
            fast_zero_rtt: known.fast_zero_rtt,
            end_point_hash: known.end_point_hash.as_deref().map(to_hex),
            sm_inline: known.sm_inline,
            sm_resume_inline: known.sm_resume_inline,
            sm_session: known.sm_session.as_ref().map(|s| StoredSmSession {
                id: s.id.clone(),
                h: s.h,
            }),
            upgrade_tasks: known.upgrade_tasks.clone(),
        };
        let mut inner = self.lock();
        let servers = &mut inner.file.servers;
        match servers
            .iter_mut()
            .find(|e| e.server == entry.server && e.jid == entry.jid)
        {
            Some(old) => *old = entry,
            None => servers.push(entry),
        }
        inner.save()
    }

    /// This installation's stable SASL2 user-agent id: 16 random bytes as hex, made
    /// on first use and kept with the rest (the server records it per session).
    pub fn user_agent(&self) -> String {
        let mut inner = self.lock();
        if let Some(id) = &inner.file.user_agent {
            return id.clone();
        }
        let mut bytes = [0u8; 16];
        // Without OS randomness there is no TLS either; an all-zero id only costs
        // the server a way to tell installations apart.
        let _ = getrandom::getrandom(&mut bytes);
        let id: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        inner.file.user_agent = Some(id.clone());
        // Saved with the next successful login.
        id
    }

    /// Records the session this login leaves: detached and resumable (`Some`), or
    /// over (`None`), and saves the file.
    pub fn remember_session(
        &self,
        server: &str,
        jid: &Jid,
        session: Option<SmSession>,
    ) -> Result<(), Error> {
        let jid = jid.to_bare().to_string();
        let mut inner = self.lock();
        let Some(entry) = inner
            .file
            .servers
            .iter_mut()
            .find(|e| e.server == server && e.jid == jid)
        else {
            return Ok(());
        };
        entry.sm_session = session.map(|s| StoredSmSession { id: s.id, h: s.h });
        inner.save()
    }

    /// The credentials failed: no longer grounds to pipeline (rule 9). The server
    /// facts stay.
    pub fn forget_credentials(&self, server: &str, jid: &Jid) -> Result<(), Error> {
        let jid = jid.to_bare().to_string();
        let mut inner = self.lock();
        let mut changed = false;
        for e in inner.file.servers.iter_mut() {
            if e.server == server && e.jid == jid && e.credentials_ok {
                e.credentials_ok = false;
                changed = true;
            }
        }
        if changed { inner.save() } else { Ok(()) }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // The data stays consistent whatever a panicking holder did: each change is
        // one assignment.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Inner {
    /// Writes the file whole (to a temporary file, then renamed over it).
    fn save(&self) -> Result<(), Error> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let mut json = serde_json::to_vec_pretty(&self.file)
            .map_err(|e| state_error(path, std::io::Error::other(e)))?;
        json.push(b'\n');
        let mut tmp = path.clone().into_os_string();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        write_private(&tmp, &json).map_err(|e| state_error(&tmp, e))?;
        std::fs::rename(&tmp, path).map_err(|e| state_error(path, e))
    }
}

/// Writes a file only its owner can read: it may hold FAST tokens.
#[cfg(unix)]
fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?
        .write_all(data)
}

#[cfg(not(unix))]
fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    std::fs::write(path, data)
}

fn parse(path: &Path, data: &[u8]) -> Result<StateFile, Error> {
    let file: StateFile = serde_json::from_slice(data).map_err(|e| Error::State {
        path: path.to_owned(),
        message: format!("not a Pipit state file: {e}"),
    })?;
    if file.version != VERSION {
        return Err(Error::State {
            path: path.to_owned(),
            message: format!(
                "format version {} (this client reads {VERSION})",
                file.version
            ),
        });
    }
    Ok(file)
}

fn state_error(path: &Path, e: std::io::Error) -> Error {
    Error::State {
        path: path.to_owned(),
        message: e.to_string(),
    }
}

fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `None` for anything but an even number of hex digits.
fn from_hex(hex: &str) -> Option<Vec<u8>> {
    let pairs = hex.as_bytes().chunks_exact(2);
    if !pairs.remainder().is_empty() || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    pairs
        .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alice() -> Jid {
        Jid::parse("alice@example.org").unwrap()
    }

    fn facts() -> KnownServer {
        KnownServer {
            mechanisms: vec!["SCRAM-SHA-256".into(), "PLAIN".into()],
            channel_bindings: vec!["tls-exporter".into()],
            credentials_ok: true,
            config_version: Some("v1".into()),
            fast_mechanisms: vec!["HT-SHA-256-EXPR".into()],
            fast_token: None,
            fast_zero_rtt: true,
            end_point_hash: Some(vec![0x00, 0xab, 0xff]),
            sm_inline: true,
            sm_resume_inline: true,
            sm_session: Some(SmSession {
                id: "sm-1".into(),
                h: 7,
            }),
            upgrade_tasks: vec!["UPGR-SCRAM-SHA-256".into()],
        }
    }

    #[test]
    fn hex_round_trips_and_rejects_junk() {
        assert_eq!(to_hex(&[0x00, 0xab, 0xff]), "00abff");
        assert_eq!(from_hex("00abff"), Some(vec![0x00, 0xab, 0xff]));
        assert_eq!(from_hex("0ab"), None);
        assert_eq!(from_hex("zz"), None);
        assert_eq!(from_hex("é0"), None);
        assert_eq!(from_hex("+f"), None);
    }

    #[test]
    fn facts_survive_a_reopen_and_are_keyed_by_server_and_account() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        let state = State::open(&path).unwrap();
        assert_eq!(state.known("example.org:5222", &alice()), None);
        state
            .remember("example.org:5222", &alice(), &facts())
            .unwrap();

        let again = State::open(&path).unwrap();
        assert_eq!(again.known("example.org:5222", &alice()), Some(facts()));
        assert_eq!(again.known("other.org:5222", &alice()), None);
        let bob = Jid::parse("bob@example.org").unwrap();
        assert_eq!(again.known("example.org:5222", &bob), None);
        // A full JID finds its account's facts.
        let phone = alice().with_resource("phone").unwrap();
        assert_eq!(again.known("example.org:5222", &phone), Some(facts()));
    }

    #[test]
    fn the_session_left_is_replaced_or_cleared() {
        let state = State::in_memory();
        state
            .remember("example.org:5222", &alice(), &facts())
            .unwrap();
        let later = SmSession {
            id: "sm-1".into(),
            h: 12,
        };
        state
            .remember_session("example.org:5222", &alice(), Some(later.clone()))
            .unwrap();
        let known = state.known("example.org:5222", &alice()).unwrap();
        assert_eq!(known.sm_session, Some(later));
        state
            .remember_session("example.org:5222", &alice(), None)
            .unwrap();
        let known = state.known("example.org:5222", &alice()).unwrap();
        assert_eq!(known.sm_session, None);
        assert_eq!(known.mechanisms, facts().mechanisms, "the rest stays");
    }

    #[test]
    fn failed_credentials_are_no_longer_grounds() {
        let state = State::in_memory();
        state
            .remember("example.org:5222", &alice(), &facts())
            .unwrap();
        state
            .forget_credentials("example.org:5222", &alice())
            .unwrap();
        let known = state.known("example.org:5222", &alice()).unwrap();
        assert!(!known.credentials_ok);
        assert_eq!(known.mechanisms, facts().mechanisms);
    }

    #[test]
    fn a_corrupt_or_foreign_file_is_an_error_not_a_guess() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        std::fs::write(&path, "{ not json").unwrap();
        assert!(matches!(State::open(&path), Err(Error::State { .. })));
        std::fs::write(&path, r#"{"version": 9, "servers": []}"#).unwrap();
        let err = State::open(&path).unwrap_err();
        assert!(err.to_string().contains("version 9"), "{err}");
    }
}
