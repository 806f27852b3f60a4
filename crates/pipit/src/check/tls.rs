//! TLS client configurations for the probe: what to trust, which versions, ALPN, and a
//! session store that counts what the server issued, so a failed resumption can say why.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use pipit_client::tls::ALPN_XMPP_CLIENT;
use pipit_client::{TlsBuilder, TlsSettings};
use rustls::client::{
    ClientSessionMemoryCache, ClientSessionStore, Resumption, Tls12ClientSessionValue,
    Tls13ClientSessionValue,
};
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, NamedGroup, SupportedProtocolVersion};

/// What the probe trusts: `--ca FILE`, `--insecure`, or the system bundle, decided
/// once by the client library so that the probe and `pipit login` agree.
#[derive(Clone, Debug)]
pub struct Trust(TlsBuilder);

impl Trust {
    /// `--ca FILE` (only that), `--insecure`, or the system bundle.
    pub fn load(ca: Option<&Path>, insecure: bool) -> anyhow::Result<Trust> {
        let mut builder = TlsSettings::builder();
        if insecure {
            builder = builder.dangerous_accept_any_certificate();
        } else if let Some(path) = ca {
            builder = builder.without_public_roots().add_ca_file(path)?;
        }
        Ok(Trust(builder))
    }

    /// One line for the report header.
    pub fn describe(&self) -> String {
        self.0.describe()
    }

    /// Whether certificates go unverified (`--insecure`).
    pub fn is_insecure(&self) -> bool {
        self.0.is_insecure()
    }

    /// A client configuration for `versions`, with ALPN `xmpp-client` (XEP-0368) when
    /// `direct`, resuming sessions only through `store` (shared by every connection that
    /// uses the configuration).
    pub fn config(
        &self,
        versions: &[&'static SupportedProtocolVersion],
        direct: bool,
        store: Option<Arc<CountingStore>>,
    ) -> anyhow::Result<Arc<ClientConfig>> {
        let mut config = self.0.client_config(versions)?;
        if direct {
            config.alpn_protocols = vec![ALPN_XMPP_CLIENT.to_vec()];
        }
        // Without a store, no resumption: every check then sees a first-time client.
        config.resumption = match store {
            Some(store) => Resumption::store(store),
            None => Resumption::disabled(),
        };
        Ok(Arc::new(config))
    }
}

/// rustls's in-memory session cache, counting the TLS 1.3 tickets and TLS 1.2 sessions
/// it is given.
#[derive(Debug)]
pub struct CountingStore {
    inner: ClientSessionMemoryCache,
    tickets: AtomicUsize,
    early_tickets: AtomicUsize,
    sessions: AtomicUsize,
}

impl CountingStore {
    /// An empty store.
    pub fn new() -> Arc<Self> {
        Arc::new(CountingStore {
            inner: ClientSessionMemoryCache::new(32),
            tickets: AtomicUsize::new(0),
            early_tickets: AtomicUsize::new(0),
            sessions: AtomicUsize::new(0),
        })
    }

    /// TLS 1.3 tickets received so far.
    pub fn tickets(&self) -> usize {
        self.tickets.load(Ordering::Relaxed)
    }

    /// TLS 1.3 tickets received so far that allow early data (max_early_data_size > 0).
    pub fn early_tickets(&self) -> usize {
        self.early_tickets.load(Ordering::Relaxed)
    }

    /// TLS 1.2 sessions stored so far (by id or ticket).
    pub fn sessions(&self) -> usize {
        self.sessions.load(Ordering::Relaxed)
    }
}

impl ClientSessionStore for CountingStore {
    fn set_kx_hint(&self, server_name: ServerName<'static>, group: NamedGroup) {
        self.inner.set_kx_hint(server_name, group);
    }

    fn kx_hint(&self, server_name: &ServerName<'_>) -> Option<NamedGroup> {
        self.inner.kx_hint(server_name)
    }

    fn set_tls12_session(&self, server_name: ServerName<'static>, value: Tls12ClientSessionValue) {
        self.sessions.fetch_add(1, Ordering::Relaxed);
        self.inner.set_tls12_session(server_name, value);
    }

    fn tls12_session(&self, server_name: &ServerName<'_>) -> Option<Tls12ClientSessionValue> {
        self.inner.tls12_session(server_name)
    }

    fn remove_tls12_session(&self, server_name: &ServerName<'static>) {
        self.inner.remove_tls12_session(server_name);
    }

    fn insert_tls13_ticket(
        &self,
        server_name: ServerName<'static>,
        value: Tls13ClientSessionValue,
    ) {
        self.tickets.fetch_add(1, Ordering::Relaxed);
        if value.max_early_data_size() > 0 {
            self.early_tickets.fetch_add(1, Ordering::Relaxed);
        }
        self.inner.insert_tls13_ticket(server_name, value);
    }

    fn take_tls13_ticket(
        &self,
        server_name: &ServerName<'static>,
    ) -> Option<Tls13ClientSessionValue> {
        self.inner.take_tls13_ticket(server_name)
    }
}
