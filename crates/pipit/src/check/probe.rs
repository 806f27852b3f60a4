//! A scripted connection: it writes whole flights, then reads until a condition on what
//! the server said holds, the server ends the connection, or the timeout passes.
//!
//! TLS is driven from buffers (rustls `read_tls` / `process_new_packets` / `write_tls`),
//! so the probe decides exactly which bytes share a write: a ClientHello right behind
//! `<starttls/>` (stunt buffering), or a login buffered behind a ClientHello. Server bytes
//! go through the same layer changes as on the server side: XML up to `<proceed/>`, the
//! rest to TLS (or, when no TLS was started, kept raw as evidence), and a fresh parser
//! after an RFC 6120 `<success/>` (a SASL2 one restarts nothing, XEP-0388 §2.6.1).
//!
//! Round trips: connecting counts as one; every wait that follows a write counts one more.

use std::fmt;
use std::io::{Read as _, Write as _};
use std::sync::Arc;
use std::time::Duration;

use pipit_proto::xml::{Element, Limits, StreamEvent, StreamParser, ns};
use rustls::ClientConnection;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout, timeout_at};

use super::transcript::{Transcript, printable};

/// Most events one connection may collect; a server sending more is cut off.
const MAX_EVENTS: usize = 10_000;
/// Most bytes one connection may receive; a login needs a few kilobytes.
const MAX_BYTES: usize = 8 * 1024 * 1024;
/// Most raw bytes kept from after `<proceed/>` when the probe started no TLS.
const MAX_RAW: usize = 16 * 1024;
/// Bytes kept from the start of a TLS session, shown when the handshake fails.
const TLS_HEAD: usize = 512;
/// How long closing politely may take.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

/// What the server said, in order.
#[derive(Debug)]
pub enum Received {
    /// A stream header (a fresh one, or one inside the open stream after a restart).
    Header,
    /// A top-level element.
    Element(Element),
}

/// Why a connection can say no more.
#[derive(Debug)]
pub enum End {
    /// The server closed the TCP connection (or sent a TLS close_notify).
    Closed,
    /// The server sent `</stream:stream>`.
    StreamClosed,
    /// TLS failed.
    Tls(rustls::Error),
    /// The server's XML is not well-formed (or breaks the parser's limits).
    Xml(String),
    /// A socket error.
    Io(String),
    /// The server sent far more than a login can need.
    Flood,
}

impl fmt::Display for End {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            End::Closed => write!(f, "the server closed the connection"),
            End::StreamClosed => write!(f, "the server closed the stream"),
            End::Tls(e) => write!(f, "TLS failed: {e}"),
            End::Xml(e) => write!(f, "the server sent bad XML: {e}"),
            End::Io(e) => write!(f, "socket error: {e}"),
            End::Flood => write!(
                f,
                "the server sent over {MAX_EVENTS} elements or {} MiB",
                MAX_BYTES >> 20
            ),
        }
    }
}

/// How a wait finished.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Waited {
    /// The condition holds.
    Done,
    /// The timeout passed first.
    TimedOut,
    /// The connection ended first.
    Ended,
}

/// What the server's bytes are, and where they go.
enum Layer {
    /// Plaintext XML.
    Plain,
    /// Stunt buffering: TLS started before `<proceed/>`; server bytes are XML until it.
    AwaitProceed(Box<ClientConnection>),
    /// `<proceed/>` arrived and no TLS was started: later bytes are kept raw, never parsed.
    AfterProceed,
    /// TLS; the decrypted bytes are XML.
    Tls(Box<ClientConnection>),
}

/// One scripted connection.
pub struct Probe {
    stream: TcpStream,
    layer: Layer,
    parser: StreamParser,
    received: Vec<Received>,
    after_proceed: Vec<u8>,
    end: Option<End>,
    round_trips: u32,
    /// A flight was written since the last wait began.
    wrote: bool,
    timeout: Duration,
    transcript: Transcript,
    tls_head: Vec<u8>,
    /// TLS records were written since TLS started (the first are the ClientHello).
    tls_wrote: bool,
    /// Data was written into TLS during the handshake and waits for it to complete.
    held: bool,
    /// Bytes received so far.
    bytes_in: usize,
}

impl Probe {
    /// Connects (TCP_NODELAY on: each flight leaves at once), within `limit`.
    pub async fn connect(addr: &str, limit: Duration) -> Result<Probe, String> {
        let stream = match timeout(limit, TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => return Err(format!("cannot connect to {addr}: {e}")),
            Err(_) => {
                return Err(format!(
                    "cannot connect to {addr}: no answer within {} s",
                    limit.as_secs()
                ));
            }
        };
        stream
            .set_nodelay(true)
            .map_err(|e| format!("cannot set TCP_NODELAY: {e}"))?;
        let mut transcript = Transcript::default();
        transcript.note(&format!("connected to {addr}"));
        Ok(Probe {
            stream,
            layer: Layer::Plain,
            parser: new_parser(),
            received: Vec::new(),
            after_proceed: Vec::new(),
            end: None,
            round_trips: 1,
            wrote: false,
            timeout: limit,
            transcript,
            tls_head: Vec::new(),
            tls_wrote: false,
            held: false,
            bytes_in: 0,
        })
    }

    /// Starts TLS. With `stunt`, before `<proceed/>` arrived (the ClientHello goes out
    /// with the next write); otherwise after it, or at once on a Direct TLS connection.
    pub fn start_tls(
        &mut self,
        config: &Arc<rustls::ClientConfig>,
        name: &ServerName<'static>,
        stunt: bool,
    ) -> Result<(), String> {
        let conn = ClientConnection::new(Arc::clone(config), name.clone())
            .map_err(|e| format!("cannot start TLS: {e}"))?;
        let conn = Box::new(conn);
        self.tls_wrote = false;
        self.held = false;
        match std::mem::replace(&mut self.layer, Layer::Plain) {
            Layer::Plain if stunt => self.layer = Layer::AwaitProceed(conn),
            Layer::Plain | Layer::AfterProceed => {
                self.layer = Layer::Tls(conn);
                self.parser = new_parser();
                let early = std::mem::take(&mut self.after_proceed);
                if !early.is_empty() {
                    self.ingest_tls(&early);
                }
            }
            other => {
                self.layer = other;
                return Err("TLS is already started".into());
            }
        }
        Ok(())
    }

    /// Writes one flight: `plain` as is, then `secret` through TLS when TLS is started
    /// (buffered by rustls until the handshake completes) with every pending TLS record,
    /// or as is otherwise. `what` describes it for the transcript.
    pub async fn flight(&mut self, what: &str, plain: &[u8], tls: &[u8]) {
        if self.end.is_some() {
            return;
        }
        let mut wire = plain.to_vec();
        let mut what = what.to_owned();
        match &mut self.layer {
            Layer::AwaitProceed(conn) | Layer::Tls(conn) => {
                if self.tls_wrote && !conn.is_handshaking() && conn.wants_write() {
                    what = format!("the end of the TLS handshake + {what}");
                }
                if !tls.is_empty() {
                    let buffered = conn.writer().write_all(tls);
                    if let Err(e) = buffered {
                        self.end = Some(End::Io(format!("TLS buffer: {e}")));
                        return;
                    }
                }
                let hello = !self.tls_wrote && conn.wants_write();
                drain_tls(conn, &mut wire);
                self.tls_wrote = true;
                if conn.is_handshaking() && !tls.is_empty() {
                    self.held = true;
                    let sent = if hello {
                        "ClientHello"
                    } else {
                        "handshake records"
                    };
                    what =
                        format!("{what} [the TLS data waits for the handshake; sent now: {sent}]");
                }
            }
            Layer::Plain | Layer::AfterProceed => wire.extend_from_slice(tls),
        }
        self.transcript.client(&what, wire.len());
        self.write(&wire).await;
    }

    /// Writes the first flight of a TLS connection just started: the ClientHello with
    /// `data` as TLS 1.3 early data (RFC 8446 §2.3). False, with nothing written, when
    /// rustls holds no ticket that allows early data or the ticket allows less than
    /// `data`.
    pub async fn early(&mut self, what: &str, data: &[u8]) -> bool {
        let Layer::Tls(conn) = &mut self.layer else {
            return false;
        };
        if self.tls_wrote || self.end.is_some() {
            return false;
        }
        let Some(mut early) = conn.early_data() else {
            return false;
        };
        if early.bytes_left() < data.len() || early.write_all(data).is_err() {
            return false;
        }
        let mut wire = Vec::new();
        drain_tls(conn, &mut wire);
        self.tls_wrote = true;
        self.transcript
            .client(&format!("ClientHello + early data: {what}"), wire.len());
        self.write(&wire).await;
        true
    }

    /// Writes `xml` through TLS if it is started, as plaintext otherwise.
    pub async fn send(&mut self, what: &str, xml: &str) {
        match self.layer {
            Layer::Tls(_) | Layer::AwaitProceed(_) => self.flight(what, b"", xml.as_bytes()).await,
            Layer::Plain | Layer::AfterProceed => self.flight(what, xml.as_bytes(), b"").await,
        }
    }

    /// Reads until `done` holds, the connection ends, or the timeout passes. Pending TLS
    /// records (a Finished, a TLS 1.2 key exchange) are written only when `done` does not
    /// hold yet, so that they share the next flight when they can.
    pub async fn wait(&mut self, done: impl Fn(&Probe) -> bool) -> Waited {
        let deadline = Instant::now() + self.timeout;
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            if done(self) {
                return Waited::Done;
            }
            if self.end.is_some() {
                return Waited::Ended;
            }
            self.flush_tls().await;
            if self.end.is_some() {
                return Waited::Ended;
            }
            if self.wrote {
                self.round_trips += 1;
                self.wrote = false;
            }
            match timeout_at(deadline, self.stream.read(&mut buf)).await {
                Err(_) => {
                    self.transcript.note(&format!(
                        "no further answer within {} s",
                        self.timeout.as_secs()
                    ));
                    return Waited::TimedOut;
                }
                Ok(Ok(0)) => self.finish(End::Closed),
                Ok(Ok(n)) => {
                    self.bytes_in += n;
                    self.ingest(&buf[..n]);
                    if self.bytes_in > MAX_BYTES {
                        self.finish(End::Flood);
                    }
                }
                Ok(Err(e)) => self.finish(End::Io(e.to_string())),
            }
        }
    }

    /// Ends the stream politely (best effort, bounded in time) and drops the connection.
    pub async fn close(mut self) -> Transcript {
        if self.end.is_none() && !self.handshaking() {
            let mut wire = Vec::new();
            match &mut self.layer {
                Layer::Tls(conn) => {
                    let _ = conn.writer().write_all(b"</stream:stream>");
                    conn.send_close_notify();
                    drain_tls(conn, &mut wire);
                }
                Layer::Plain => wire.extend_from_slice(b"</stream:stream>"),
                Layer::AwaitProceed(_) | Layer::AfterProceed => {}
            }
            let _ = timeout(CLOSE_TIMEOUT, self.stream.write_all(&wire)).await;
        }
        let _ = timeout(CLOSE_TIMEOUT, self.stream.shutdown()).await;
        self.transcript
    }

    /// Index of the next event to arrive: a mark for [`since`](Self::since).
    pub fn mark(&self) -> usize {
        self.received.len()
    }

    /// The events received from `mark` on.
    pub fn since(&self, mark: usize) -> &[Received] {
        self.received.get(mark..).unwrap_or_default()
    }

    /// Bytes received after `<proceed/>` while no TLS was started (at most 16 KiB).
    pub fn after_proceed(&self) -> &[u8] {
        &self.after_proceed
    }

    /// Why the connection can say no more, if it cannot.
    pub fn end(&self) -> Option<&End> {
        self.end.as_ref()
    }

    /// Round trips so far: the connect, then one per wait that followed a write.
    pub fn round_trips(&self) -> u32 {
        self.round_trips
    }

    /// Whether a TLS handshake is started and not complete.
    pub fn handshaking(&self) -> bool {
        match &self.layer {
            Layer::AwaitProceed(_) => true,
            Layer::Tls(conn) => conn.is_handshaking(),
            Layer::Plain | Layer::AfterProceed => false,
        }
    }

    /// The TLS connection, once TLS is started.
    pub fn tls(&self) -> Option<&ClientConnection> {
        match &self.layer {
            Layer::AwaitProceed(conn) | Layer::Tls(conn) => Some(conn),
            Layer::Plain | Layer::AfterProceed => None,
        }
    }

    /// The timeout of each wait.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Adds an observation to the transcript.
    pub fn note(&mut self, what: &str) {
        self.transcript.note(what);
    }

    async fn write(&mut self, wire: &[u8]) {
        if wire.is_empty() {
            return;
        }
        match timeout(self.timeout, self.stream.write_all(wire)).await {
            Ok(Ok(())) => self.wrote = true,
            Ok(Err(e)) => self.finish(End::Io(format!("writing: {e}"))),
            Err(_) => self.finish(End::Io(format!(
                "writing: the server read nothing for {} s",
                self.timeout.as_secs()
            ))),
        }
    }

    /// Writes the TLS records rustls wants to send, if any.
    async fn flush_tls(&mut self) {
        let mut wire = Vec::new();
        let mut what = "TLS records";
        if let Layer::Tls(conn) = &mut self.layer {
            drain_tls(conn, &mut wire);
            what = if !self.tls_wrote {
                "ClientHello"
            } else if conn.is_handshaking() {
                "TLS handshake records"
            } else if std::mem::take(&mut self.held) {
                "the end of the TLS handshake + the data that waited for it"
            } else {
                "TLS records"
            };
        }
        if !wire.is_empty() {
            self.tls_wrote = true;
            self.transcript.client(what, wire.len());
            self.write(&wire).await;
        }
    }

    fn finish(&mut self, end: End) {
        if self.end.is_none() {
            self.transcript.note(&end.to_string());
            self.end = Some(end);
        }
    }

    /// Handles bytes read from the socket, according to the current layer.
    fn ingest(&mut self, bytes: &[u8]) {
        match self.layer {
            Layer::Plain | Layer::AwaitProceed(_) => {
                self.parser.feed(bytes);
                let rest = self.pump();
                let xml_len = bytes.len() - rest.as_ref().map_or(0, |r| r.len().min(bytes.len()));
                self.transcript.server(&bytes[..xml_len]);
                if let Some(rest) = rest {
                    match self.layer {
                        Layer::Tls(_) => self.ingest_tls(&rest),
                        _ => self.keep_raw(&rest),
                    }
                }
            }
            Layer::AfterProceed => self.keep_raw(bytes),
            Layer::Tls(_) => self.ingest_tls(bytes),
        }
    }

    /// Keeps bytes that arrived after `<proceed/>` while no TLS was started.
    fn keep_raw(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        let room = MAX_RAW.saturating_sub(self.after_proceed.len());
        self.after_proceed
            .extend_from_slice(&bytes[..bytes.len().min(room)]);
        let what = if is_tls_records(bytes) {
            describe_records(bytes)
        } else {
            format!("{} bytes: {}", bytes.len(), printable(bytes, 4096))
        };
        self.transcript.note(&format!(
            "after <proceed/>, kept out of the XML parser: {what}"
        ));
    }

    /// Feeds TLS records to rustls and the decrypted bytes to the XML parser.
    fn ingest_tls(&mut self, bytes: &[u8]) {
        let Layer::Tls(conn) = &mut self.layer else {
            return;
        };
        let head_room = TLS_HEAD.saturating_sub(self.tls_head.len());
        self.tls_head
            .extend_from_slice(&bytes[..bytes.len().min(head_room)]);
        let mut data = bytes;
        let mut plain = Vec::new();
        let mut notes = Vec::new();
        let mut end = None;
        while !data.is_empty() {
            match conn.read_tls(&mut data) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) => {
                    end = Some(End::Io(format!("TLS input: {e}")));
                    break;
                }
            }
            let was_handshaking = conn.is_handshaking();
            match conn.process_new_packets() {
                Err(e) => {
                    if was_handshaking {
                        notes.push(format!(
                            "the TLS bytes the server sent began: {}",
                            printable(&self.tls_head, 300)
                        ));
                    }
                    end = Some(End::Tls(e));
                    break;
                }
                Ok(state) => {
                    if was_handshaking && !conn.is_handshaking() {
                        notes.push(handshake_note(conn));
                    }
                    let mut chunk = vec![0u8; state.plaintext_bytes_to_read()];
                    if conn.reader().read_exact(&mut chunk).is_ok() {
                        plain.extend_from_slice(&chunk);
                    }
                    if state.peer_has_closed() {
                        end = Some(End::Closed);
                    }
                }
            }
        }
        for note in notes {
            self.transcript.note(&note);
        }
        self.transcript.server(&plain);
        if !plain.is_empty() {
            self.parser.feed(&plain);
            self.pump();
        }
        if let Some(end) = end {
            self.finish(end);
        }
    }

    /// Takes every complete event from the parser. Returns the bytes after `<proceed/>`
    /// when it arrives in plaintext (the layer has then changed); after `<success/>` the
    /// rest goes to a fresh parser, as the server restarts the stream (RFC 6120 §6.4.6).
    fn pump(&mut self) -> Option<Vec<u8>> {
        loop {
            if self.end.is_some() {
                return None;
            }
            let event = match self.parser.next_event() {
                Ok(Some(event)) => event,
                Ok(None) => return None,
                Err(e) => {
                    self.finish(End::Xml(e.to_string()));
                    return None;
                }
            };
            if self.received.len() >= MAX_EVENTS {
                self.finish(End::Flood);
                return None;
            }
            match event {
                StreamEvent::Open(_) => self.received.push(Received::Header),
                StreamEvent::Close => {
                    self.finish(End::StreamClosed);
                    return None;
                }
                StreamEvent::Element(element) => {
                    let proceed = element.is("proceed", ns::TLS);
                    let success = element.is("success", ns::SASL);
                    self.received.push(Received::Element(element));
                    if proceed && matches!(self.layer, Layer::Plain | Layer::AwaitProceed(_)) {
                        let rest = self.parser.take_unparsed();
                        self.parser = new_parser();
                        self.layer = match std::mem::replace(&mut self.layer, Layer::Plain) {
                            Layer::AwaitProceed(conn) => Layer::Tls(conn),
                            _ => Layer::AfterProceed,
                        };
                        return Some(rest);
                    }
                    if success && matches!(self.layer, Layer::Tls(_)) {
                        let rest = self.parser.take_unparsed();
                        self.parser = new_parser();
                        self.parser.feed(&rest);
                    }
                }
            }
        }
    }
}

fn new_parser() -> StreamParser {
    StreamParser::new(Limits::default())
}

/// Moves every TLS record rustls wants to send into `wire`.
fn drain_tls(conn: &mut ClientConnection, wire: &mut Vec<u8>) {
    while conn.wants_write() {
        match conn.write_tls(wire) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
}

/// "TLS 1.3 handshake complete (full)", with the ALPN protocol if any.
fn handshake_note(conn: &ClientConnection) -> String {
    let kind = match conn.handshake_kind() {
        Some(rustls::HandshakeKind::Resumed) => "resumed",
        Some(rustls::HandshakeKind::FullWithHelloRetryRequest) => "full, with HelloRetryRequest",
        _ => "full",
    };
    let alpn = conn
        .alpn_protocol()
        .map(|p| format!(", ALPN {}", String::from_utf8_lossy(p)))
        .unwrap_or_default();
    format!(
        "{} handshake complete ({kind}{alpn})",
        version_name(conn.protocol_version())
    )
}

/// "TLS 1.3", "TLS 1.2", or the version as rustls names it.
pub fn version_name(version: Option<rustls::ProtocolVersion>) -> String {
    match version {
        Some(rustls::ProtocolVersion::TLSv1_3) => "TLS 1.3".into(),
        Some(rustls::ProtocolVersion::TLSv1_2) => "TLS 1.2".into(),
        Some(other) => format!("{other:?}"),
        None => "TLS".into(),
    }
}

/// Whether `bytes` are a run of TLS records (a possibly partial last one included).
pub fn is_tls_records(bytes: &[u8]) -> bool {
    let mut rest = bytes;
    while rest.len() >= 5 {
        if !(20..=24).contains(&rest[0]) || rest[1] != 3 {
            return false;
        }
        let len = usize::from(u16::from_be_bytes([rest[3], rest[4]]));
        rest = rest.get(5 + len..).unwrap_or_default();
    }
    match rest {
        [] => true,
        [first, more @ ..] => (20..=24).contains(first) && more.first().is_none_or(|v| *v == 3),
    }
}

/// A description of raw bytes: TLS records by type (alerts by name), or the text.
pub fn describe_records(bytes: &[u8]) -> String {
    if !is_tls_records(bytes) {
        return format!("{} bytes: {}", bytes.len(), printable(bytes, 300));
    }
    let mut parts = Vec::new();
    let mut rest = bytes;
    while rest.len() >= 5 {
        let len = usize::from(u16::from_be_bytes([rest[3], rest[4]]));
        let body = rest.get(5..5 + len);
        parts.push(match (rest[0], body) {
            (21, Some([level, desc])) => format!(
                "TLS alert {} ({})",
                alert_name(*desc),
                if *level == 2 { "fatal" } else { "warning" }
            ),
            (21, _) => "TLS alert (encrypted)".into(),
            (20, _) => "TLS change_cipher_spec".into(),
            (22, _) => format!("TLS handshake record ({len} bytes)"),
            (23, _) => format!("TLS application data ({len} bytes)"),
            (_, _) => format!("TLS heartbeat ({len} bytes)"),
        });
        rest = rest.get(5 + len..).unwrap_or_default();
    }
    if !rest.is_empty() {
        parts.push(format!("{} bytes of a partial TLS record", rest.len()));
    }
    parts.join(", ")
}

/// The name of a TLS alert description (RFC 8446 §6).
pub fn alert_name(desc: u8) -> String {
    let name = match desc {
        0 => "close_notify",
        10 => "unexpected_message",
        20 => "bad_record_mac",
        22 => "record_overflow",
        40 => "handshake_failure",
        42 => "bad_certificate",
        47 => "illegal_parameter",
        48 => "unknown_ca",
        50 => "decode_error",
        51 => "decrypt_error",
        70 => "protocol_version",
        71 => "insufficient_security",
        80 => "internal_error",
        90 => "user_canceled",
        109 => "missing_extension",
        110 => "unsupported_extension",
        112 => "unrecognized_name",
        120 => "no_application_protocol",
        other => return format!("#{other}"),
    };
    name.into()
}

#[cfg(test)]
mod tests {
    use super::{describe_records, is_tls_records};

    #[test]
    fn recognises_tls_records() {
        assert!(is_tls_records(b""));
        assert!(is_tls_records(b"\x15\x03\x03\x00\x02\x02\x32"));
        assert!(is_tls_records(b"\x15\x03\x03\x00\x02\x02\x32\x16\x03"));
        assert!(!is_tls_records(
            b"<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>"
        ));
        assert!(!is_tls_records(
            b"\x15\x03\x03\x00\x02\x02\x32<stream:stream>"
        ));
        assert!(!is_tls_records(b"<"));
    }

    #[test]
    fn describes_alerts_and_text() {
        assert_eq!(
            describe_records(b"\x15\x03\x03\x00\x02\x02\x32"),
            "TLS alert decode_error (fatal)"
        );
        assert!(describe_records(b"<success/>").contains("<success/>"));
    }
}
