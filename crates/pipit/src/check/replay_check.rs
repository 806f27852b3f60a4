//! The 0-RTT replay check (RFC 8446 §8, XEP-0484 §3.4; DESIGN.md rule 7): `0rtt-replay`.
//! A 0-RTT FAST login is sent, then its first flight (the ClientHello and the early-data
//! records) is sent again, byte for byte, on a new TCP connection. The server must not
//! act on it: it rejects the early data at the TLS level (a single-use ticket, RFC 8446
//! §8.1), or it refuses the `<authenticate/>`, whose count it has already seen.
//!
//! To read the server's answer to the replayed flight, the replaying client must hold the
//! flight's keys, so both attempts run a TLS client built to write identical bytes: a
//! [`Deterministic`] family of configurations whose randomness, X25519 key and clock are
//! fixed from one seed. rustls hands out no copy of a ticket, so a second client of the
//! family reads the recorded server side of the connection that got the tickets and so
//! holds the same ones. What each attempt wrote before the server's first byte is
//! recorded on the wire by a [`Tap`] and compared; if the flights differ, the check says
//! it could not run rather than grade something that is not a replay.
//!
//! Connections: 1 gets a token (as `fast-0rtt`), 2 is a TLS 1.3 connection verified with
//! the probe's trust (its certificate is then pinned), 3 gets tickets for the
//! deterministic client, 4 is the original 0-RTT login, 5 the replay. When TLS rejects
//! the replayed early data, the replaying client completes the handshake and sends the
//! same header and `<authenticate/>` again, as a client whose early data was refused
//! would, so the count layer is graded as well. Over Direct TLS only.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use std::io::Read as _;

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
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio::time::timeout;

use super::Target;
use super::fast_checks::{Evidence, Grant, graded, obtain};
use super::flows::silence;
use super::probe::{End, Probe, Waited};
use super::report::{Finding, Verdict};
use super::sasl2::{self, Answer};
use super::tls::CountingStore;
use super::xmpp::Plan;
use super::zero_rtt_checks::{Ticket, early_config, early_flight, early_login, fetch_ticket};

/// `0rtt-replay`: the first flight of a 0-RTT FAST login, sent again byte for byte, must
/// log nobody in. Not offered without Direct TLS, `<fast tls-0rtt='true'/>` or a ticket
/// that allows early data; says it could not run when the original login does not
/// complete in 0-RTT or the replayed flight is not byte-identical.
pub async fn zero_rtt_replay(target: &Target) -> Finding {
    const CHECK: &str = "0rtt-replay";
    let mut evidence = Evidence::default();
    // As fast-0rtt: the token first, so a server that cannot issue one fails here too.
    let grant = match obtain(CHECK, target, &mut evidence, true).await {
        Ok(grant) => grant,
        Err((verdict, detail)) => return evidence.finding(CHECK, graded(verdict, detail)),
    };
    let Some(addr) = target.direct_tls.clone() else {
        let why = "0-RTT is tried over Direct TLS only: no --direct-tls given".to_owned();
        return evidence.finding(CHECK, graded(Verdict::NotOffered, why));
    };
    if !grant.zero_rtt {
        let why = "<fast xmlns='urn:xmpp:fast:0'/> does not say tls-0rtt='true' \
                   (XEP-0484 §3.4)"
            .to_owned();
        return evidence.finding(CHECK, graded(Verdict::NotOffered, why));
    }
    let (verdict, detail) = replayed(&addr, target, &grant, &mut evidence)
        .await
        .unwrap_or_else(|stopped| stopped);
    evidence.finding(CHECK, graded(verdict, detail))
}

/// Connections 2 to 5 (see the module docs). The error is the grade of what stopped the
/// check before the classifier could grade the replay.
async fn replayed(
    addr: &str,
    target: &Target,
    grant: &Grant,
    evidence: &mut Evidence,
) -> Result<(Verdict, String), (Verdict, String)> {
    // Connection 2: the probe's trust decides which certificate the replaying client pins.
    let store = CountingStore::new();
    let trusted = early_config(target, Some(Arc::clone(&store)))
        .map_err(|e| (Verdict::Fail, e.to_string()))?;
    const VERIFIED: &str = "TLS 1.3 with the certificate verified, for the replaying client to pin";
    let seen = fetch_ticket(addr, target, grant, evidence, (&trusted, &store), VERIFIED)
        .await
        .map_err(|(verdict, why)| (verdict, format!("connection 2 ({VERIFIED}): {why}")))?;
    let family =
        Deterministic::new(seen.chain, target.server_name.clone()).map_err(not_runnable)?;
    let [original_store, replay_store] = tickets(addr, target, grant, &family, evidence).await?;
    let ticket = Ticket {
        config: family
            .config(b"flight", &original_store)
            .map_err(not_runnable)?,
        cb_data: seen.cb_data,
    };
    let original = original(addr, target, grant, &ticket, evidence).await?;
    let ticket = Ticket {
        config: family
            .config(b"flight", &replay_store)
            .map_err(not_runnable)?,
        ..ticket
    };
    let (layers, length) = replay(addr, target, grant, &ticket, &original, evidence).await?;
    let (verdict, detail) = grade(&layers.0, layers.1.as_ref());
    Ok((
        verdict,
        format!(
            "{detail} [the replayed first flight: {} bytes, byte-identical to the original \
             0-RTT login's, which was bound]",
            length
        ),
    ))
}

/// Connection 3: the deterministic client gets tickets, through a tap; a second client
/// made the same way then reads the server's side of it and so holds the same tickets
/// (rustls hands out no copy of a ticket). Returns the two stores: one for the original,
/// one for the replay.
async fn tickets(
    addr: &str,
    target: &Target,
    grant: &Grant,
    family: &Deterministic,
    evidence: &mut Evidence,
) -> Result<[Arc<CountingStore>; 2], (Verdict, String)> {
    const WHAT: &str = "TLS 1.3 with the deterministic client, through a relay that records \
                        it, for tickets";
    let context =
        |(verdict, why): (Verdict, String)| (verdict, format!("connection 3 ({WHAT}): {why}"));
    let tap = Tap::open(addr, target.timeout)
        .await
        .map_err(|why| context((Verdict::Fail, why)))?;
    let stores = [CountingStore::new(), CountingStore::new()];
    let config = family.config(b"ticket", &stores[0]).map_err(not_runnable)?;
    fetch_ticket(
        &tap.addr,
        target,
        grant,
        evidence,
        (&config, &stores[0]),
        WHAT,
    )
    .await
    .map_err(context)?;
    let server_side = tap.recording().to_client;
    drop(tap);
    let config = family.config(b"ticket", &stores[1]).map_err(not_runnable)?;
    follow(config, &target.server_name, &server_side).map_err(|why| {
        not_runnable(format!(
            "a second deterministic client could not follow connection 3: {why}"
        ))
    })?;
    let (original, replay) = (stores[0].tickets(), stores[1].tickets());
    if original != replay {
        return Err(not_runnable(format!(
            "a second deterministic client following connection 3 got {replay} ticket(s), \
             the first {original}"
        )));
    }
    Ok(stores)
}

/// Runs a client on `config` against the recorded `server_side` of a connection (what it
/// writes is dropped): a client made as the recorded one was ends in the same state.
fn follow(
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

/// A grade for what stopped the check before it could replay anything.
fn not_runnable(why: String) -> (Verdict, String) {
    (Verdict::NotOffered, format!("could not run: {why}"))
}

/// Connection 4: the original 0-RTT login, through a tap. Returns its first flight.
async fn original(
    addr: &str,
    target: &Target,
    grant: &Grant,
    ticket: &Ticket,
    evidence: &mut Evidence,
) -> Result<Vec<u8>, (Verdict, String)> {
    const WHAT: &str = "the original: header + the token login in early data";
    let (tap, mut probe) = tapped(addr, target, WHAT, evidence).await?;
    let result = early_login(&mut probe, target, grant, ticket).await;
    let flight = tap.first_flight();
    evidence.add(probe, WHAT).await;
    drop(tap);
    match result {
        Ok((Verdict::Pass, _, _)) => Ok(flight),
        Ok((_, why, _)) | Err(why) => Err(not_runnable(format!(
            "the original 0-RTT login (connection 4) did not complete, so there is nothing \
             to replay (fast-0rtt grades it): {why}"
        ))),
    }
}

/// Connection 5: the original's first flight again, through a tap. Returns what the two
/// layers did with it and its length, once it is known to be byte-identical to `original`.
async fn replay(
    addr: &str,
    target: &Target,
    grant: &Grant,
    ticket: &Ticket,
    original: &[u8],
    evidence: &mut Evidence,
) -> Result<((TlsLayer, Option<CountLayer>), usize), (Verdict, String)> {
    const WHAT: &str = "the replay: the same ClientHello and early data again";
    let (tap, mut probe) = tapped(addr, target, WHAT, evidence).await?;
    let result = replay_on(&mut probe, target, grant, ticket).await;
    let flight = tap.first_flight();
    let same = same_flight(original, &flight);
    probe.note(&match &same {
        Ok(()) => format!(
            "the first flight, as the relay saw it, is connection 4's byte for byte ({} bytes)",
            flight.len()
        ),
        Err(why) => format!("the first flight is not connection 4's: {why}"),
    });
    evidence.add(probe, WHAT).await;
    drop(tap);
    if let Err(why) = same {
        return Err(not_runnable(format!(
            "the replaying client's first flight is not the original's ({why}), so it \
             would not be a replay"
        )));
    }
    result
        .map(|layers| (layers, flight.len()))
        .map_err(not_runnable)
}

/// A tap to `addr` and a probe connected through it; a failure goes into `evidence`.
async fn tapped(
    addr: &str,
    target: &Target,
    what: &str,
    evidence: &mut Evidence,
) -> Result<(Tap, Probe), (Verdict, String)> {
    let opened = match Tap::open(addr, target.timeout).await {
        Ok(tap) => Probe::connect(&tap.addr, target.timeout)
            .await
            .map(|probe| (tap, probe)),
        Err(why) => Err(why),
    };
    match opened {
        Ok((tap, mut probe)) => {
            probe.note(&format!(
                "a relay on this machine to {addr}, which records what the probe writes \
                 before the server's first byte"
            ));
            Ok((tap, probe))
        }
        Err(why) => {
            evidence.add_failed(None, what, &why).await;
            Err((Verdict::Fail, why))
        }
    }
}

/// The body of [`replay`]: the ClientHello with the same early data; if TLS rejects it,
/// the handshake's end and the same header and `<authenticate/>` again. An error means
/// the replaying client itself failed.
async fn replay_on(
    probe: &mut Probe,
    target: &Target,
    grant: &Grant,
    ticket: &Ticket,
) -> Result<(TlsLayer, Option<CountLayer>), String> {
    let plan = Plan::new(&target.account);
    probe.start_tls(&ticket.config, &target.server_name, false)?;
    let (what, early) = early_flight(target, grant, &ticket.cb_data);
    let mark = probe.mark();
    if !probe
        .early(&format!("the same again: {what}"), early.as_bytes())
        .await
    {
        return Err("the replaying client could not send early data with its ticket".into());
    }
    let waited = probe
        .wait(|p| {
            let progress = sasl2::progress(p.since(mark), &plan);
            progress.answer.is_some()
                || progress.stream_error.is_some()
                || (!p.handshaking() && !p.tls().is_some_and(|c| c.is_early_data_accepted()))
        })
        .await;
    if probe.handshaking() {
        return match probe.end() {
            Some(End::Tls(rustls::Error::InvalidCertificate(e))) => Err(format!(
                "the server showed another certificate than on connection 2 ({e:?})"
            )),
            Some(end) => Ok((TlsLayer::Ended(end.to_string()), None)),
            None => Ok((TlsLayer::Silent(silence(probe, waited)), None)),
        };
    }
    if probe.tls().is_some_and(|c| c.is_early_data_accepted()) {
        let count = count_layer(probe, mark, &plan, waited);
        return Ok((TlsLayer::Accepted, Some(count)));
    }
    // Rejected: a client sends its early data again after the handshake (RFC 8446 §4.2.10).
    let mark = probe.mark();
    probe
        .send(
            &format!("the same again after the handshake (the early data was rejected): {what}"),
            &early,
        )
        .await;
    let waited = probe
        .wait(|p| {
            let progress = sasl2::progress(p.since(mark), &plan);
            progress.answer.is_some() || progress.stream_error.is_some()
        })
        .await;
    Ok((
        TlsLayer::Rejected,
        Some(count_layer(probe, mark, &plan, waited)),
    ))
}

/// What the server answered to the `<authenticate/>` sent after `mark`.
fn count_layer(probe: &Probe, mark: usize, plan: &Plan, waited: Waited) -> CountLayer {
    let progress = sasl2::progress(probe.since(mark), plan);
    match progress.answer {
        Some(Ok(Answer::Success(success))) => CountLayer::LoggedIn(
            success
                .identity
                .map(|id| format!(" as {id}"))
                .unwrap_or_default(),
        ),
        Some(Ok(Answer::Failure(failure))) => CountLayer::Refused(failure.conditions),
        Some(Ok(other)) => CountLayer::Unclear(format!("{other:?} instead of an answer")),
        Some(Err(why)) => CountLayer::Unclear(why),
        None => CountLayer::Unclear(match progress.stream_error {
            Some(err) => format!("stream error {err}"),
            None => silence(probe, waited),
        }),
    }
}

/// What TLS did with the replayed flight.
#[derive(Clone, Debug, PartialEq, Eq)]
enum TlsLayer {
    /// The server took the early data (RFC 8446 §4.2.10): the count decides.
    Accepted,
    /// It completed a handshake without it: the early data was skipped unread.
    Rejected,
    /// It ended the connection before a handshake completed (an alert, a close): why.
    Ended(String),
    /// It said nothing: why.
    Silent(String),
}

/// What the server answered to the replayed `<authenticate/>`: in early data when TLS
/// accepted it, else sent again after the handshake.
#[derive(Clone, Debug, PartialEq, Eq)]
enum CountLayer {
    /// `<success/>`, with " as JID" when it named one.
    LoggedIn(String),
    /// `<failure/>`, with its conditions.
    Refused(String),
    /// Neither: why.
    Unclear(String),
}

/// The grade: a pass when the server did not act on the replayed login, saying which
/// layer refused it; a fail when it logged in, or when it took the early data and left
/// it unclear whether it acted on it.
fn grade(tls: &TlsLayer, count: Option<&CountLayer>) -> (Verdict, String) {
    const REJECTED: &str = "TLS rejected the replayed early data (its ticket is single-use, \
                            RFC 8446 §8.1) and the handshake completed without it";
    const AGAIN: &str = "the same <authenticate/> sent again after the handshake";
    match (tls, count) {
        (TlsLayer::Accepted, Some(CountLayer::LoggedIn(who))) => (
            Verdict::Fail,
            format!(
                "SECURITY: the server accepted the replayed early data and logged the replayed \
                 <authenticate/> (FAST count 1, already used) in{who}: whoever records a 0-RTT \
                 login can log in again (RFC 8446 §8, XEP-0484 §3.4)"
            ),
        ),
        (TlsLayer::Accepted, Some(CountLayer::Refused(conditions))) => (
            Verdict::Pass,
            format!(
                "refused by the count: TLS accepted the replayed early data, and the replayed \
                 <authenticate/> got <failure/> {conditions} (count 1 was already used, \
                 XEP-0484 §3.4)"
            ),
        ),
        (TlsLayer::Accepted, Some(CountLayer::Unclear(why))) => (
            Verdict::Fail,
            format!(
                "the server accepted the replayed early data but did not refuse the replayed \
                 <authenticate/>: {why}"
            ),
        ),
        (TlsLayer::Accepted, None) => (
            Verdict::Fail,
            "the server accepted the replayed early data but did not answer the replayed \
             <authenticate/>"
                .into(),
        ),
        (TlsLayer::Rejected, Some(CountLayer::Refused(conditions))) => (
            Verdict::Pass,
            format!(
                "refused by TLS and by the count: {REJECTED}; {AGAIN} got <failure/> \
                 {conditions} (count 1 was already used, XEP-0484 §3.4)"
            ),
        ),
        (TlsLayer::Rejected, Some(CountLayer::LoggedIn(who))) => (
            Verdict::Pass,
            format!(
                "refused by TLS: {REJECTED}; but {AGAIN} logged in{who}, so the count, which \
                 no layer else checks, is not (fast-replay-refused grades that)"
            ),
        ),
        (TlsLayer::Rejected, Some(CountLayer::Unclear(why))) => (
            Verdict::Pass,
            format!("refused by TLS: {REJECTED}; {AGAIN} got no answer: {why}"),
        ),
        (TlsLayer::Rejected, None) => (Verdict::Pass, format!("refused by TLS: {REJECTED}")),
        (TlsLayer::Ended(why), _) => (
            Verdict::Pass,
            format!("refused by TLS: the server ended the replayed handshake: {why}"),
        ),
        (TlsLayer::Silent(why), _) => (
            Verdict::Fail,
            format!("the server neither answered nor refused the replayed first flight: {why}"),
        ),
    }
}

/// Whether the replay's first flight is the original's, byte for byte; or how they differ.
fn same_flight(original: &[u8], replay: &[u8]) -> Result<(), String> {
    if original.is_empty() {
        return Err("nothing was recorded of the original".into());
    }
    match original.iter().zip(replay).position(|(a, b)| a != b) {
        None if original.len() == replay.len() => Ok(()),
        None => Err(format!(
            "{} bytes, the original {}",
            replay.len(),
            original.len()
        )),
        Some(at) => Err(format!("they differ from byte {at} on")),
    }
}

/// A relay on this machine between a probe and the server, which records both sides
/// (up to [`MAX_RECORDED`] bytes each) and where the server's first byte came: what the
/// probe wrote before it is its first flight, as it went on the wire. The probe writes
/// that flight with one write and the relay reads the probe's side first, so the
/// server's answer cannot cut it short. Ends with the connection, or when dropped.
struct Tap {
    /// Where the probe connects.
    addr: String,
    recording: Arc<Mutex<Recording>>,
    task: JoinHandle<()>,
}

/// Most bytes a [`Tap`] keeps of each side; a login needs a few kilobytes.
const MAX_RECORDED: usize = 1 << 20;

/// What a [`Tap`] saw.
#[derive(Clone, Debug, Default)]
struct Recording {
    /// What the probe wrote.
    to_server: Vec<u8>,
    /// How much of it came before the server's first byte, once the server spoke.
    first: Option<usize>,
    /// What the server wrote.
    to_client: Vec<u8>,
}

impl Recording {
    /// The probe wrote `bytes`.
    fn client_wrote(&mut self, bytes: &[u8]) {
        keep(&mut self.to_server, bytes);
    }

    /// The server wrote `bytes`: the probe's first flight, if not yet, is complete.
    fn server_wrote(&mut self, bytes: &[u8]) {
        self.first.get_or_insert(self.to_server.len());
        keep(&mut self.to_client, bytes);
    }
}

/// Appends `bytes` to `kept` up to [`MAX_RECORDED`].
fn keep(kept: &mut Vec<u8>, bytes: &[u8]) {
    let room = MAX_RECORDED.saturating_sub(kept.len());
    kept.extend_from_slice(&bytes[..bytes.len().min(room)]);
}

impl Tap {
    /// Connects to `server`, then listens on the loopback interface for one probe.
    async fn open(server: &str, limit: Duration) -> Result<Tap, String> {
        let upstream = match timeout(limit, TcpStream::connect(server)).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => return Err(format!("cannot connect to {server}: {e}")),
            Err(_) => {
                return Err(format!(
                    "cannot connect to {server}: no answer within {} s",
                    limit.as_secs()
                ));
            }
        };
        let listen = |e: std::io::Error| format!("cannot listen on the loopback interface: {e}");
        let listener = TcpListener::bind("127.0.0.1:0").await.map_err(listen)?;
        let addr = listener.local_addr().map_err(listen)?.to_string();
        let recording = Arc::default();
        let task = tokio::spawn(relay(listener, upstream, Arc::clone(&recording), limit));
        Ok(Tap {
            addr,
            recording,
            task,
        })
    }

    /// What the tap saw so far.
    fn recording(&self) -> Recording {
        self.recording
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// What the probe wrote before the server's first byte (all it wrote, if the server
    /// has sent nothing yet).
    fn first_flight(&self) -> Vec<u8> {
        let mut recording = self.recording();
        if let Some(first) = recording.first {
            recording.to_server.truncate(first);
        }
        recording.to_server
    }
}

impl Drop for Tap {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The tap's relay: copies and records both ways until either side ends.
async fn relay(
    listener: TcpListener,
    mut upstream: TcpStream,
    recording: Arc<Mutex<Recording>>,
    limit: Duration,
) {
    let Ok(Ok((mut client, _))) = timeout(limit, listener.accept()).await else {
        return;
    };
    drop(listener);
    // Each flight leaves at once, as the probe's own sockets do (DESIGN.md §4).
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    let record = |from_server: bool, bytes: &[u8]| {
        let mut recording = recording.lock().unwrap_or_else(PoisonError::into_inner);
        if from_server {
            recording.server_wrote(bytes);
        } else {
            recording.client_wrote(bytes);
        }
    };
    let mut from_client = vec![0u8; 16 * 1024];
    let mut from_server = vec![0u8; 16 * 1024];
    loop {
        tokio::select! {
            biased;
            read = client.read(&mut from_client) => {
                let Ok(n @ 1..) = read else { return };
                record(false, &from_client[..n]);
                if upstream.write_all(&from_client[..n]).await.is_err() {
                    return;
                }
            }
            read = upstream.read(&mut from_server) => {
                let Ok(n @ 1..) = read else { return };
                record(true, &from_server[..n]);
                if client.write_all(&from_server[..n]).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// A family of TLS 1.3 client configurations that write byte-identical first flights:
/// configurations made with the same label draw the same "random" bytes and the same
/// X25519 key and read the same fixed clock (so the obfuscated ticket age is the same);
/// given stores that hold the same tickets, they resume the same one. They share one
/// verifier, which trusts exactly the certificate the probe's own trust accepted on an
/// earlier connection, and one client-certificate resolver (rustls resumes a ticket only
/// under the verifier and resolver it was issued under).
///
/// A test tool for replaying a flight, never for real logins: its keys and randoms are
/// predictable from the seed, and each configuration leaks its small random source and
/// key-exchange group (rustls wants them `'static`), four per `pipit check`.
struct Deterministic {
    /// One secret per family, from the system's randomness.
    seed: [u8; 32],
    verifier: Arc<dyn ServerCertVerifier>,
    resolver: Arc<dyn ResolvesClientCert>,
    time: Arc<dyn TimeProvider>,
}

impl Deterministic {
    /// A family trusting only `chain`'s end-entity certificate, for `name`.
    fn new(chain: Vec<CertificateDer<'static>>, name: ServerName<'static>) -> Result<Self, String> {
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
    fn config(
        &self,
        label: &[u8],
        store: &Arc<CountingStore>,
    ) -> Result<Arc<ClientConfig>, String> {
        let key = block(&self.seed, &[b"x25519 ", label].concat(), 0);
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

    fn refused() -> CountLayer {
        CountLayer::Refused("<not-authorized/>".into())
    }

    #[test]
    fn a_replayed_login_that_logs_in_fails() {
        let (verdict, detail) = grade(
            &TlsLayer::Accepted,
            Some(&CountLayer::LoggedIn(" as a@b/c".into())),
        );
        assert_eq!(verdict, Verdict::Fail);
        assert!(detail.starts_with("SECURITY:"), "{detail}");
        assert!(detail.contains("in as a@b/c"), "{detail}");
    }

    #[test]
    fn each_layer_that_refuses_is_named() {
        let (verdict, detail) = grade(&TlsLayer::Rejected, Some(&refused()));
        assert_eq!(verdict, Verdict::Pass);
        assert!(
            detail.starts_with("refused by TLS and by the count:")
                && detail.contains("got <failure/> <not-authorized/>"),
            "{detail}"
        );
        let (verdict, detail) = grade(&TlsLayer::Accepted, Some(&refused()));
        assert_eq!(verdict, Verdict::Pass);
        assert!(detail.starts_with("refused by the count:"), "{detail}");
        let (verdict, detail) = grade(&TlsLayer::Ended("TLS alert".into()), None);
        assert_eq!(verdict, Verdict::Pass);
        assert!(detail.starts_with("refused by TLS:"), "{detail}");
    }

    #[test]
    fn tls_alone_refusing_passes_and_says_the_count_did_not() {
        let (verdict, detail) = grade(
            &TlsLayer::Rejected,
            Some(&CountLayer::LoggedIn(String::new())),
        );
        assert_eq!(verdict, Verdict::Pass);
        assert!(
            detail.starts_with("refused by TLS:") && detail.contains("fast-replay-refused"),
            "{detail}"
        );
        let (verdict, _) = grade(
            &TlsLayer::Rejected,
            Some(&CountLayer::Unclear("no answer".into())),
        );
        assert_eq!(verdict, Verdict::Pass);
    }

    #[test]
    fn accepted_early_data_without_a_refusal_or_silence_fails() {
        for count in [
            None,
            Some(CountLayer::Unclear("no answer within 1 s".into())),
        ] {
            let (verdict, _) = grade(&TlsLayer::Accepted, count.as_ref());
            assert_eq!(verdict, Verdict::Fail, "{count:?}");
        }
        let (verdict, _) = grade(&TlsLayer::Silent("no answer".into()), None);
        assert_eq!(verdict, Verdict::Fail);
    }

    #[test]
    fn flights_are_compared_byte_for_byte() {
        assert_eq!(same_flight(b"abc", b"abc"), Ok(()));
        assert!(same_flight(b"abc", b"abd").unwrap_err().contains("byte 2"));
        assert!(same_flight(b"abc", b"ab").unwrap_err().contains("2 bytes"));
        assert!(same_flight(b"", b"").is_err());
    }

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
