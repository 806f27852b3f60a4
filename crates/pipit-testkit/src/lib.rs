//! Test helpers shared by Pipit's test suites: a test PKI (one CA, one leaf for
//! `localhost`) and a scripted client that drives rustls from buffers, so tests
//! can put exactly the bytes they want on the wire (stunt buffering included).
//!
//! This is deliberately not a client implementation: it writes what the test
//! says and collects what the server answers.

use std::io::{Read, Write};
use std::sync::{Arc, OnceLock};

use base64::Engine;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// The domain the test certificate is for.
pub const DOMAIN: &str = "localhost";

/// The XML of a `<proceed/>` as the server writes it.
pub const PROCEED: &str = "<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>";

/// `<starttls/>` as a client writes it.
pub const STARTTLS: &str = "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>";

/// A CA and a `localhost` leaf it signed.
pub struct Pki {
    /// The CA certificate.
    pub ca: CertificateDer<'static>,
    /// The leaf certificate.
    pub leaf: CertificateDer<'static>,
    /// The leaf's key, PKCS#8 DER.
    pub leaf_key: Vec<u8>,
    /// PEM forms, for servers that load files.
    pub leaf_pem: String,
    /// The leaf key in PEM.
    pub leaf_key_pem: String,
    /// The CA in PEM.
    pub ca_pem: String,
}

/// The process-wide test PKI (ECDSA P-256).
pub fn pki() -> &'static Pki {
    static PKI: OnceLock<Pki> = OnceLock::new();
    PKI.get_or_init(|| {
        let ca_key = rcgen::KeyPair::generate().expect("key generation");
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = ca_params.self_signed(&ca_key).expect("CA");
        let leaf_key = rcgen::KeyPair::generate().expect("key generation");
        let leaf = rcgen::CertificateParams::new(vec![DOMAIN.to_string()])
            .expect("params")
            .signed_by(&leaf_key, &ca, &ca_key)
            .expect("leaf");
        Pki {
            ca: ca.der().clone(),
            leaf: leaf.der().clone(),
            leaf_key: leaf_key.serialize_der(),
            leaf_pem: leaf.pem(),
            leaf_key_pem: leaf_key.serialize_pem(),
            ca_pem: ca.pem(),
        }
    })
}

/// The most TLS 1.3 early data the test servers take, as Pipit's server.
pub const MAX_EARLY_DATA: u32 = 16 * 1024;

/// The process-wide rustls server configuration of the tests: the test leaf, TLS
/// 1.3 and 1.2, session resumption and 0-RTT as Pipit's server has them (see
/// [`new_server_tls`]). Tests that count on a ticket still being in the store later
/// make their own with [`new_server_tls`]: this one's store is shared by every test
/// of the process.
pub fn server_tls() -> Arc<rustls::ServerConfig> {
    static CONFIG: OnceLock<Arc<rustls::ServerConfig>> = OnceLock::new();
    Arc::clone(CONFIG.get_or_init(|| {
        let mut server = new_server_tls();
        server.session_storage = rustls::server::ServerSessionMemoryCache::new(64 * 1024);
        Arc::new(server)
    }))
}

/// A new rustls server configuration with its own session store: the test leaf, TLS
/// 1.3 and 1.2, resumption from stateful single-use tickets (rustls takes early
/// data only on those, RFC 8446 §8.1), early data up to [`MAX_EARLY_DATA`], and the
/// answer to early data sent before the client's Finished ("0.5-RTT").
pub fn new_server_tls() -> rustls::ServerConfig {
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(pki().leaf_key.clone()));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut server = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(vec![pki().leaf.clone()], key)
        .expect("certificate");
    server.session_storage = rustls::server::ServerSessionMemoryCache::new(1024);
    server.max_early_data_size = MAX_EARLY_DATA;
    server.send_half_rtt_data = true;
    server
}

/// A client configuration trusting the test CA for one TLS version, with TLS 1.3
/// early data enabled; reuse it to resume sessions (its session cache is its own).
pub fn client_tls(version: &'static rustls::SupportedProtocolVersion) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(pki().ca.clone()).expect("CA");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[version])
        .expect("version")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.enable_early_data = true;
    Arc::new(config)
}

enum Tls {
    None,
    /// Stunt buffering: TLS started before `<proceed/>` arrived; server bytes are
    /// plaintext up to its end.
    AwaitProceed(Box<rustls::ClientConnection>),
    Active(Box<rustls::ClientConnection>),
}

/// A scripted client: it turns the plaintext the test gives into wire bytes and
/// collects the server's plaintext in [`text`](Self::text).
pub struct Client {
    tls: Tls,
    pending_plain: Vec<u8>,
    /// Everything the server has said, as text.
    pub text: String,
}

impl Default for Client {
    fn default() -> Self {
        Self::new()
    }
}

impl Client {
    /// A client that has not started TLS.
    pub fn new() -> Self {
        Client {
            tls: Tls::None,
            pending_plain: Vec::new(),
            text: String::new(),
        }
    }

    /// Starts TLS. With `awaiting_proceed` (stunt buffering), server bytes stay
    /// plaintext until `<proceed/>` has been seen.
    pub fn start_tls(&mut self, config: &Arc<rustls::ClientConfig>, awaiting_proceed: bool) {
        let name = DOMAIN.try_into().expect("a valid name");
        let conn =
            Box::new(rustls::ClientConnection::new(Arc::clone(config), name).expect("TLS client"));
        self.tls = if awaiting_proceed {
            Tls::AwaitProceed(conn)
        } else {
            Tls::Active(conn)
        };
    }

    /// Writes `plaintext` as TLS 1.3 early data, to go out with the ClientHello at
    /// the next [`wire`](Self::wire). False (and nothing written) when the session
    /// resumed cannot carry it all.
    pub fn write_early(&mut self, plaintext: &[u8]) -> bool {
        let (Tls::Active(conn) | Tls::AwaitProceed(conn)) = &mut self.tls else {
            return false;
        };
        match conn.early_data() {
            Some(mut early) if early.bytes_left() >= plaintext.len() => {
                early.write_all(plaintext).expect("early data buffered");
                true
            }
            _ => false,
        }
    }

    /// The bytes to put on the wire for `plaintext`, plus any pending TLS records
    /// (a ClientHello, a Finished).
    pub fn wire(&mut self, plaintext: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        match &mut self.tls {
            Tls::None => out.extend_from_slice(plaintext),
            Tls::AwaitProceed(conn) | Tls::Active(conn) => {
                if !plaintext.is_empty() {
                    conn.writer().write_all(plaintext).expect("buffered");
                }
                while conn.wants_write() {
                    conn.write_tls(&mut out).expect("to a Vec");
                }
            }
        }
        out
    }

    /// Handles bytes from the server. Panics on a TLS error from the server.
    pub fn receive(&mut self, mut data: &[u8]) {
        if let Tls::AwaitProceed(_) = &self.tls {
            self.pending_plain.extend_from_slice(data);
            let Some(at) = find(&self.pending_plain, PROCEED.as_bytes()) else {
                return;
            };
            let end = at + PROCEED.len();
            let rest = self.pending_plain.split_off(end);
            self.text
                .push_str(&String::from_utf8_lossy(&self.pending_plain));
            self.pending_plain.clear();
            if let Tls::AwaitProceed(conn) = std::mem::replace(&mut self.tls, Tls::None) {
                self.tls = Tls::Active(conn);
            }
            return self.receive(&rest);
        }
        match &mut self.tls {
            Tls::None => self.text.push_str(&String::from_utf8_lossy(data)),
            Tls::Active(conn) | Tls::AwaitProceed(conn) => {
                while !data.is_empty() {
                    conn.read_tls(&mut data).expect("read_tls");
                    conn.process_new_packets().expect("server TLS is valid");
                    let mut plain = Vec::new();
                    let _ = conn.reader().read_to_end(&mut plain);
                    self.text.push_str(&String::from_utf8_lossy(&plain));
                }
            }
        }
    }

    /// Whether a TLS handshake is still under way.
    pub fn handshaking(&self) -> bool {
        match &self.tls {
            Tls::Active(conn) | Tls::AwaitProceed(conn) => conn.is_handshaking(),
            Tls::None => false,
        }
    }

    /// The TLS connection. Panics when TLS was not started.
    pub fn tls(&self) -> &rustls::ClientConnection {
        match &self.tls {
            Tls::Active(conn) | Tls::AwaitProceed(conn) => conn,
            Tls::None => panic!("TLS not started"),
        }
    }

    /// RFC 9266 `tls-exporter` data, for SCRAM-*-PLUS.
    pub fn exporter(&self) -> Vec<u8> {
        self.tls()
            .export_keying_material([0u8; 32], b"EXPORTER-Channel-Binding", None)
            .expect("exporter after the handshake")
            .to_vec()
    }

    /// Takes the text received so far.
    pub fn take_text(&mut self) -> String {
        std::mem::take(&mut self.text)
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// A client stream header.
pub fn header(with_declaration: bool) -> String {
    format!(
        "{}<stream:stream to='{DOMAIN}' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>",
        if with_declaration {
            "<?xml version='1.0'?>"
        } else {
            ""
        }
    )
}

/// `<auth mechanism='PLAIN'>` for `user` and `password` (RFC 4616).
pub fn plain_auth(user: &str, password: &str) -> String {
    let data = format!("\0{user}\0{password}");
    format!(
        "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{}</auth>",
        base64::engine::general_purpose::STANDARD.encode(data)
    )
}

/// A bind request for `resource`.
pub fn bind(resource: &str) -> String {
    format!(
        "<iq type='set' id='bind1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>{resource}</resource></bind></iq>"
    )
}

/// Initial presence.
pub const PRESENCE: &str = "<presence/>";

/// A chat message.
pub fn message_to(to: &str, body: &str) -> String {
    format!("<message to='{to}' type='chat' id='m1'><body>{body}</body></message>")
}

/// What a pipelining client sends once TLS is up (rule 4): header, PLAIN, the
/// restart header, bind, presence and a message to `to`.
pub fn pipelined_login(
    user: &str,
    password: &str,
    restart_declaration: bool,
    to: &str,
    body: &str,
) -> String {
    format!(
        "{}{}{}{}{PRESENCE}{}",
        header(true),
        plain_auth(user, password),
        header(restart_declaration),
        bind("phone"),
        message_to(to, body)
    )
}

/// A STARTTLS command injection attempt (rule 3): header, `<starttls/>`, then
/// plaintext auth and bind pipelined where TLS must begin.
pub fn starttls_injection(password: &str) -> String {
    format!(
        "{}{STARTTLS}{}{}{}",
        header(false),
        plain_auth("alice", password),
        header(false),
        bind("evil")
    )
}

/// The bytes the server wrote after its `<proceed/>`. Panics without one.
pub fn after_proceed(answer: &[u8]) -> &[u8] {
    let at = find(answer, PROCEED.as_bytes()).expect("the server sent <proceed/>");
    &answer[at + PROCEED.len()..]
}

/// How many times `needle` occurs in `haystack`.
pub fn count(haystack: &str, needle: &str) -> usize {
    haystack.matches(needle).count()
}
