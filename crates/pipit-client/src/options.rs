//! Everything a login needs to know.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use pipit_proto::client::{ClientConfig, Mode};
use pipit_proto::jid::{Jid, prep_resource};
use pipit_proto::sasl::Mechanism;
use pipit_proto::xml::Element;
use rustls::pki_types::ServerName;

use crate::error::Error;
use crate::state::State;
use crate::tls::TlsSettings;

/// The resource asked for when none is given.
pub const DEFAULT_RESOURCE: &str = "pipit";
/// How long a login may take, connect to bound resource, by default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// RFC 6120 §14.7: the c2s port for STARTTLS.
pub const STARTTLS_PORT: u16 = 5222;
/// XEP-0368 §2: the customary Direct TLS port.
pub const DIRECT_TLS_PORT: u16 = 5223;

/// One login's settings. Make them with [`LoginOptions::new`], then change fields.
#[derive(Clone)]
#[non_exhaustive]
pub struct LoginOptions {
    /// The account (bare JID).
    pub jid: Jid,
    /// Its password. Never written to the state file.
    pub password: String,
    /// `host:port` of the STARTTLS port [default: the JID's domain, port 5222]. Also
    /// the key under which the state keeps this server's facts, for every mode.
    pub server: String,
    /// `host:port` of the Direct TLS port (XEP-0368) [default: the domain, port 5223].
    /// No DNS SRV lookup is made for either.
    pub direct_tls: String,
    /// How to sequence the login [default: [`Mode::Stunt`]].
    pub mode: Mode,
    /// The SASL mechanism; `None` picks the strongest the server offers.
    pub mechanism: Option<Mechanism>,
    /// The resource to bind [default: `pipit`]; the client chooses it, so bind pipelines.
    pub resource: String,
    /// Trust and the TLS session cache; share one between logins to resume.
    pub tls: TlsSettings,
    /// What earlier logins learned; read before the login, updated after it.
    pub state: State,
    /// Emulate this round-trip time: connect through a [`Relay`](crate::relay::Relay)
    /// and wait one round trip after connecting (see [`crate::relay`]).
    pub emulated_rtt: Option<Duration>,
    /// The longest a login may take, from connect to bound resource; every network
    /// wait of the session after it is bounded by it too.
    pub timeout: Duration,
    /// Stanzas to send as soon as the protocol allows: with a pipelined login they
    /// ride in the same flight as the bind request, otherwise right after binding.
    pub initial_stanzas: Vec<Element>,
    /// The local address to connect from [default: the OS picks]: a load test
    /// spreads its clients over 127.0.0.0/8 to look like many hosts.
    pub local_addr: Option<IpAddr>,
}

impl LoginOptions {
    /// Options for `jid` with the defaults above. A full JID's resource becomes the
    /// resource to bind.
    pub fn new(jid: &str, password: impl Into<String>) -> Result<LoginOptions, Error> {
        let parsed =
            Jid::parse(jid).map_err(|e| Error::Options(format!("{jid:?} is not a JID: {e}")))?;
        if parsed.local().is_none() {
            return Err(Error::Options(format!(
                "{jid:?} is not an account: write it as name@domain"
            )));
        }
        let resource = parsed.resource().unwrap_or(DEFAULT_RESOURCE).to_owned();
        let domain = parsed.domain().to_owned();
        Ok(LoginOptions {
            jid: parsed.to_bare(),
            password: password.into(),
            server: format!("{domain}:{STARTTLS_PORT}"),
            direct_tls: format!("{domain}:{DIRECT_TLS_PORT}"),
            mode: Mode::Stunt,
            mechanism: None,
            resource,
            tls: TlsSettings::new()?,
            state: State::in_memory(),
            emulated_rtt: None,
            timeout: DEFAULT_TIMEOUT,
            initial_stanzas: Vec::new(),
            local_addr: None,
        })
    }

    /// Checks what can be checked before connecting: the account, the resource, the
    /// domain as a TLS server name.
    pub fn validate(&self) -> Result<(), Error> {
        self.core_config().map(|_| ())
    }

    /// The sans-IO core's configuration for this login.
    pub(crate) fn core_config(&self) -> Result<ClientConfig, Error> {
        let jid = self.jid.to_bare();
        if jid.local().is_none() {
            return Err(Error::Options(format!(
                "{jid} is not an account: write it as name@domain"
            )));
        }
        let resource = prep_resource(&self.resource)
            .map_err(|e| Error::Options(format!("resource {:?}: {e}", self.resource)))?;
        let server_name = ServerName::try_from(jid.domain().to_owned())
            .map_err(|e| Error::Options(format!("{} as a TLS server name: {e}", jid.domain())))?;
        Ok(ClientConfig {
            password: self.password.clone(),
            resource,
            mechanism: self.mechanism,
            mode: self.mode,
            tls: Arc::clone(self.tls.rustls_config(self.mode)),
            server_name,
            known: self.state.known(&self.server, &jid),
            user_agent: Some(self.state.user_agent()),
            jid,
        })
    }

    /// The address this login's mode connects to.
    pub fn address(&self) -> &str {
        if self.mode.direct_tls() {
            &self.direct_tls
        } else {
            &self.server
        }
    }
}

impl fmt::Debug for LoginOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoginOptions")
            .field("jid", &self.jid)
            .field("password", &"<redacted>")
            .field("server", &self.server)
            .field("direct_tls", &self.direct_tls)
            .field("mode", &self.mode)
            .field("mechanism", &self.mechanism)
            .field("resource", &self.resource)
            .field("state", &self.state.path())
            .field("emulated_rtt", &self.emulated_rtt)
            .field("timeout", &self.timeout)
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_come_from_the_jid() {
        let o = LoginOptions::new("alice@example.org/laptop", "secret").unwrap();
        assert_eq!(o.jid.to_string(), "alice@example.org");
        assert_eq!(o.resource, "laptop");
        assert_eq!(o.server, "example.org:5222");
        assert_eq!(o.direct_tls, "example.org:5223");
        assert_eq!(o.mode, Mode::Stunt);
        assert_eq!(o.address(), "example.org:5222");
        assert!(!format!("{o:?}").contains("secret"));
    }

    #[test]
    fn a_domain_is_not_an_account() {
        assert!(matches!(
            LoginOptions::new("example.org", "x"),
            Err(Error::Options(_))
        ));
        assert!(matches!(
            LoginOptions::new("a@b@c", "x"),
            Err(Error::Options(_))
        ));
    }

    #[test]
    fn a_bad_resource_is_caught_before_connecting() {
        let mut o = LoginOptions::new("alice@example.org", "x").unwrap();
        assert!(o.validate().is_ok());
        o.resource = String::new();
        assert!(matches!(o.validate(), Err(Error::Options(_))));
    }
}
