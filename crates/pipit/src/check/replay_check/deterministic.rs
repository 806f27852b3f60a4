//! The deterministic TLS client of the `0rtt-replay` check: a [`Deterministic`] family of
//! rustls client configurations whose randomness (a SHA-256 stream of a seed), X25519 key
//! (drawn from the same seed) and clock (fixed) make two clients write the same first
//! flight byte for byte, with a verifier pinned to the certificate the probe's own trust
//! accepted. The replay needs it: only a client holding the original flight's keys can read
//! the server's answer to that flight sent again, and rustls lets no client reuse another's.
//! Also [`follow`], which brings a second client of a family to the tickets the first got.

use std::fmt;
use std::io::Read as _;
use std::sync::{Arc, Mutex, PoisonError};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{ResolvesClientCert, Resumption};
use rustls::crypto::{
    ActiveKeyExchange, CryptoProvider, GetRandomFailed, SecureRandom, SharedSecret,
    SupportedKxGroup, WebPkiSupportedAlgorithms,
};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::time_provider::TimeProvider;
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, NamedGroup, PeerMisbehaved,
    SignatureScheme,
};
use sha2::{Digest as _, Sha256};

use crate::check::tls::CountingStore;

/// A family of TLS 1.3 client configurations that write byte-identical first flights:
/// configurations made with the same label draw the same "random" bytes and the same
/// X25519 key and read the same fixed clock (so the obfuscated ticket age is the same);
/// given stores that hold the same tickets, they resume the same one. They share one
/// verifier, which trusts exactly the certificate the probe's own trust accepted on an
/// earlier connection, and one client-certificate resolver (rustls resumes a ticket only
/// under the verifier and resolver it was issued under).
///
/// A test tool for replaying a flight, never for real logins: its keys and randoms are
/// predictable from the seed.
///
/// Each [`config`](Self::config) leaks its random source and key-exchange group with
/// `Box::leak`: rustls's [`CryptoProvider`] holds them as `&'static dyn`, and they cannot
/// be statics, since their bytes follow from the seed (drawn anew for each run) and the
/// label. The leak is bounded: two objects of a few dozen bytes per configuration, four
/// configurations per run of the check (two for the tickets, two for the flights), and
/// the check runs once per `pipit check`.
pub(super) struct Deterministic {
    /// One secret per family, from the system's randomness.
    seed: [u8; 32],
    verifier: Arc<dyn ServerCertVerifier>,
    resolver: Arc<dyn ResolvesClientCert>,
    time: Arc<dyn TimeProvider>,
}

impl Deterministic {
    /// A family trusting only `chain`'s end-entity certificate, for `name`.
    pub(super) fn new(
        chain: Vec<CertificateDer<'static>>,
        name: ServerName<'static>,
    ) -> Result<Self, String> {
        let mut seed = [0u8; 32];
        getrandom::getrandom(&mut seed).map_err(|e| format!("no system randomness: {e}"))?;
        Ok(Self::with_seed(seed, chain, name))
    }

    /// A family from a given seed (the tests' way: the same seed, the same bytes).
    fn with_seed(
        seed: [u8; 32],
        chain: Vec<CertificateDer<'static>>,
        name: ServerName<'static>,
    ) -> Self {
        let algorithms = rustls::crypto::ring::default_provider().signature_verification_algorithms;
        Deterministic {
            seed,
            verifier: Arc::new(Pinned {
                chain,
                name,
                algorithms,
            }),
            resolver: Arc::new(NoClientCert),
            time: Arc::new(FixedTime(UnixTime::now())),
        }
    }

    /// A configuration (Direct TLS: ALPN `xmpp-client`, early data enabled) whose
    /// randomness and key share follow from the seed and `label`, resuming through `store`.
    pub(super) fn config(
        &self,
        label: &[u8],
        store: &Arc<CountingStore>,
    ) -> Result<Arc<ClientConfig>, String> {
        let key = block(&self.seed, &[b"x25519 ", label].concat(), 0);
        // Leaked, as rustls wants them `'static`: bounded, see the type's docs.
        let random: &'static SeededRandom = Box::leak(Box::new(SeededRandom {
            seed: block(&self.seed, &[b"random ", label].concat(), 0),
            drawn: Mutex::new(0),
        }));
        let group: &'static SeededX25519 = Box::leak(Box::new(SeededX25519(key)));
        let provider = CryptoProvider {
            kx_groups: vec![group],
            secure_random: random,
            ..rustls::crypto::ring::default_provider()
        };
        let mut config =
            ClientConfig::builder_with_details(Arc::new(provider), Arc::clone(&self.time))
                .with_protocol_versions(&[&rustls::version::TLS13])
                .map_err(|e| format!("cannot make the deterministic TLS client: {e}"))?
                .dangerous()
                .with_custom_certificate_verifier(Arc::clone(&self.verifier))
                .with_no_client_auth();
        config.client_auth_cert_resolver = Arc::clone(&self.resolver);
        config.alpn_protocols = vec![pipit_client::tls::ALPN_XMPP_CLIENT.to_vec()];
        config.resumption = Resumption::store(Arc::clone(store) as _);
        config.enable_early_data = true;
        Ok(Arc::new(config))
    }
}

/// Runs a client on `config` against the recorded `server_side` of a connection (what it
/// writes is dropped): a client made as the recorded one was ends in the same state.
pub(super) fn follow(
    config: Arc<ClientConfig>,
    name: &ServerName<'static>,
    mut server_side: &[u8],
) -> Result<(), String> {
    let mut client =
        rustls::ClientConnection::new(config, name.clone()).map_err(|e| e.to_string())?;
    let mut sink = Vec::new();
    loop {
        while client.wants_write() {
            client.write_tls(&mut sink).map_err(|e| e.to_string())?;
        }
        sink.clear();
        if server_side.is_empty() {
            return Ok(());
        }
        client
            .read_tls(&mut server_side)
            .map_err(|e| e.to_string())?;
        let state = client.process_new_packets().map_err(|e| e.to_string())?;
        let mut plain = vec![0u8; state.plaintext_bytes_to_read()];
        client
            .reader()
            .read_exact(&mut plain)
            .map_err(|e| e.to_string())?;
    }
}

/// Block `n` of the stream for `label`: SHA-256(seed ‖ label ‖ n).
fn block(seed: &[u8; 32], label: &[u8], n: u64) -> [u8; 32] {
    let mut hash = Sha256::new();
    hash.update(seed);
    hash.update(label);
    hash.update(n.to_be_bytes());
    hash.finalize().into()
}

/// Predictable "randomness": the SHA-256 stream of a seed. For [`Deterministic`] only.
struct SeededRandom {
    seed: [u8; 32],
    /// Bytes handed out so far.
    drawn: Mutex<u64>,
}

impl fmt::Debug for SeededRandom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SeededRandom")
    }
}

impl SecureRandom for SeededRandom {
    fn fill(&self, buf: &mut [u8]) -> Result<(), GetRandomFailed> {
        let mut drawn = self.drawn.lock().unwrap_or_else(PoisonError::into_inner);
        for byte in buf {
            *byte = block(&self.seed, b"", *drawn / 32)[(*drawn % 32) as usize];
            *drawn += 1;
        }
        Ok(())
    }
}

/// X25519 with a private key fixed in advance (rustls's own draws it from the system).
/// For [`Deterministic`] only.
struct SeededX25519([u8; 32]);

impl fmt::Debug for SeededX25519 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SeededX25519")
    }
}

impl SupportedKxGroup for SeededX25519 {
    fn start(&self) -> Result<Box<dyn ActiveKeyExchange>, rustls::Error> {
        let secret = x25519_dalek::StaticSecret::from(self.0);
        let public = x25519_dalek::PublicKey::from(&secret).to_bytes();
        Ok(Box::new(ActiveX25519 { secret, public }))
    }

    fn name(&self) -> NamedGroup {
        NamedGroup::X25519
    }
}

/// One X25519 exchange of [`SeededX25519`].
struct ActiveX25519 {
    secret: x25519_dalek::StaticSecret,
    public: [u8; 32],
}

impl ActiveKeyExchange for ActiveX25519 {
    fn complete(self: Box<Self>, peer_pub_key: &[u8]) -> Result<SharedSecret, rustls::Error> {
        let peer: [u8; 32] = peer_pub_key
            .try_into()
            .map_err(|_| PeerMisbehaved::InvalidKeyShare)?;
        let shared = self
            .secret
            .diffie_hellman(&x25519_dalek::PublicKey::from(peer));
        // An all-zero secret means a low-order point (RFC 7748 §6.1).
        if !shared.was_contributory() {
            return Err(PeerMisbehaved::InvalidKeyShare.into());
        }
        Ok(SharedSecret::from(&shared.as_bytes()[..]))
    }

    fn pub_key(&self) -> &[u8] {
        &self.public
    }

    fn group(&self) -> NamedGroup {
        NamedGroup::X25519
    }
}

/// A clock that always says the same time.
#[derive(Debug)]
struct FixedTime(UnixTime);

impl TimeProvider for FixedTime {
    fn current_time(&self) -> Option<UnixTime> {
        Some(self.0)
    }
}

/// A verifier that trusts one end-entity certificate for one name: the one the probe's
/// trust (`--ca`, `--insecure` or the system's) accepted on an earlier connection. The
/// handshake signatures are still checked.
#[derive(Debug)]
struct Pinned {
    chain: Vec<CertificateDer<'static>>,
    name: ServerName<'static>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if self.chain.first().map(|c| c.as_ref()) != Some(end_entity.as_ref()) {
            return Err(CertificateError::ApplicationVerificationFailure.into());
        }
        if server_name != &self.name {
            return Err(CertificateError::NotValidForName.into());
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// No client certificate: one resolver shared by a [`Deterministic`] family.
#[derive(Debug)]
struct NoClientCert;

impl ResolvesClientCert for NoClientCert {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        None
    }

    fn has_certs(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;

    fn server_name() -> ServerName<'static> {
        ServerName::try_from("localhost").unwrap()
    }

    /// Moves every record `from` wants to send into `to`; returns the bytes moved.
    fn send<A, B>(
        from: &mut rustls::ConnectionCommon<A>,
        to: &mut rustls::ConnectionCommon<B>,
    ) -> Vec<u8> {
        let mut wire = Vec::new();
        while from.wants_write() {
            from.write_tls(&mut wire).unwrap();
        }
        let mut rest = &wire[..];
        while !rest.is_empty() {
            to.read_tls(&mut rest).unwrap();
            to.process_new_packets().unwrap();
        }
        wire
    }

    /// A server as Pipit's (single-use tickets, early data) for the test certificate.
    fn server_config() -> Arc<rustls::ServerConfig> {
        let mut config = pipit_testkit::new_server_tls();
        config.alpn_protocols = vec![pipit_client::tls::ALPN_XMPP_CLIENT.to_vec()];
        Arc::new(config)
    }

    /// A client of `family` resuming from `store` with `early` written as early data, and
    /// its first flight.
    fn first_flight(
        family: &Deterministic,
        label: &[u8],
        store: &Arc<CountingStore>,
        early: &[u8],
    ) -> (rustls::ClientConnection, Vec<u8>) {
        let config = family.config(label, store).unwrap();
        let mut client = rustls::ClientConnection::new(config, server_name()).unwrap();
        client
            .early_data()
            .expect("a ticket that allows early data")
            .write_all(early)
            .unwrap();
        let mut wire = Vec::new();
        while client.wants_write() {
            client.write_tls(&mut wire).unwrap();
        }
        (client, wire)
    }

    /// Feeds a first flight to a new server connection; returns it and the early data
    /// it took.
    fn serve(
        config: &Arc<rustls::ServerConfig>,
        flight: &[u8],
    ) -> (rustls::ServerConnection, Vec<u8>) {
        let mut server = rustls::ServerConnection::new(Arc::clone(config)).unwrap();
        let mut rest = flight;
        while !rest.is_empty() {
            server.read_tls(&mut rest).unwrap();
            server.process_new_packets().unwrap();
        }
        let mut early = Vec::new();
        if let Some(mut data) = server.early_data() {
            data.read_to_end(&mut early).unwrap();
        }
        (server, early)
    }

    /// Two stores holding the same tickets, as connection 3 and `follow` leave them.
    fn two_stores(
        family: &Deterministic,
        config: &Arc<rustls::ServerConfig>,
    ) -> [Arc<CountingStore>; 2] {
        let stores = [CountingStore::new(), CountingStore::new()];
        let client_config = family.config(b"ticket", &stores[0]).unwrap();
        let mut client = rustls::ClientConnection::new(client_config, server_name()).unwrap();
        let mut server = rustls::ServerConnection::new(Arc::clone(config)).unwrap();
        let mut server_side = Vec::new();
        loop {
            let to_server = send(&mut client, &mut server);
            let to_client = send(&mut server, &mut client);
            if to_server.is_empty() && to_client.is_empty() {
                break;
            }
            server_side.extend(to_client);
        }
        let client_config = family.config(b"ticket", &stores[1]).unwrap();
        follow(client_config, &server_name(), &server_side).unwrap();
        assert!(stores[0].early_tickets() > 0);
        assert_eq!(stores[0].tickets(), stores[1].tickets());
        stores
    }

    #[test]
    fn the_deterministic_client_writes_the_same_first_flight_twice() {
        let pki = pipit_testkit::pki();
        let config = server_config();
        let family = Deterministic::with_seed([7; 32], vec![pki.leaf.clone()], server_name());
        let [one, two] = two_stores(&family, &config);

        let early = b"<stream:stream to='localhost'>";
        let (mut original, flight) = first_flight(&family, b"flight", &one, early);
        let (mut replay, again) = first_flight(&family, b"flight", &two, early);
        assert!(flight.len() > 300, "a ClientHello and early data");
        assert_eq!(flight, again, "the same label and ticket, the same bytes");
        let (_, other) = first_flight(&family, b"another", &one, early);
        assert_ne!(flight, other, "the seed and label decide the bytes");

        // The original is resumed and its early data taken.
        let (mut server, taken) = serve(&config, &flight);
        assert_eq!(taken, early);
        send(&mut server, &mut original);
        assert!(original.is_early_data_accepted() && !original.is_handshaking());
        // The replay: the ticket is used up, so the server does a full handshake and
        // skips the early data, and the replaying client can follow it to the end.
        let (mut server, taken) = serve(&config, &again);
        assert!(taken.is_empty());
        send(&mut server, &mut replay);
        assert!(!replay.is_early_data_accepted() && !replay.is_handshaking());
        send(&mut replay, &mut server);
        assert!(!server.is_handshaking());
    }

    #[test]
    fn the_pinned_verifier_trusts_one_certificate_for_one_name() {
        let pki = pipit_testkit::pki();
        let family = Deterministic::with_seed([1; 32], vec![pki.leaf.clone()], server_name());
        let now = UnixTime::now();
        let verify = |cert: &CertificateDer<'_>, name: &ServerName<'_>| {
            family
                .verifier
                .verify_server_cert(cert, &[], name, &[], now)
        };
        assert!(verify(&pki.leaf, &server_name()).is_ok());
        assert!(verify(&pki.ca, &server_name()).is_err());
        let other = ServerName::try_from("example.org").unwrap();
        assert!(verify(&pki.leaf, &other).is_err());
    }
}
