//! The byte layer under the XML stream, for server and client alike: plaintext, or
//! TLS driven from buffers.
//!
//! rustls never touches the socket here: ciphertext is handed in with
//! [`Transport::receive`] and taken out with [`Transport::flush`]. That is what makes
//! stunt buffering possible (DESIGN.md rule 3): the bytes that followed `<starttls/>`
//! in the same read are fed to the TLS engine as the start of the ClientHello, and
//! on the client the bytes after `<proceed/>` are the start of the server's flight.
//!
//! TLS 1.3 early data (0-RTT) goes through here too: the client writes it into its
//! first flight with [`Transport::send_early`]; the server reads it ahead of the
//! handshake's end and says how much of a batch of plaintext it was
//! ([`Received::early`]), so that the core can decide what of it may be acted on (DESIGN.md
//! rule 7).

use std::io::{Read, Write};
use std::sync::Arc;

use rustls::{HandshakeKind, ProtocolVersion};

use crate::sasl::ChannelBindingType;

/// RFC 9266 §2: the exporter label for `tls-exporter` channel binding, 32 bytes,
/// no context.
const EXPORTER_LABEL: &[u8] = b"EXPORTER-Channel-Binding";

/// Facts about the TLS session of a connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsInfo {
    /// The negotiated protocol version.
    pub version: ProtocolVersion,
    /// Whether the session was resumed from a ticket or session id.
    pub resumed: bool,
    /// The ALPN protocol agreed, if any.
    pub alpn: Option<Vec<u8>>,
}

pub(crate) enum Transport {
    Plain,
    Tls(Box<Tls>),
}

/// A rustls connection, and received bytes that do not make a whole record yet.
pub(crate) struct Tls {
    conn: rustls::Connection,
    /// See [`whole_records`]: rustls gets whole records only.
    partial: Vec<u8>,
}

impl std::ops::Deref for Tls {
    type Target = rustls::Connection;

    fn deref(&self) -> &rustls::Connection {
        &self.conn
    }
}

impl std::ops::DerefMut for Tls {
    fn deref_mut(&mut self) -> &mut rustls::Connection {
        &mut self.conn
    }
}

/// The most a TLS record's length field may say (RFC 8446 §5.2: 2^14 + 256 for TLS
/// 1.3; RFC 5246 §6.2.3: 2^14 + 2048 for TLS 1.2).
const MAX_RECORD_LEN: usize = (1 << 14) + 2048;

/// The length of the longest prefix of `buf` made of whole TLS records (RFC 8446
/// §5.1: a five-byte header, whose last two bytes are the length, then that many).
///
/// Why the transport holds back a partial record: when a server refuses early data
/// it skips the records it cannot decrypt, up to a budget (RFC 8446 §4.2.10), and
/// rustls 0.23 tries a skipped record again, charging the budget again, on every
/// call that ends before a later record, so that the client's next flight arriving
/// in small reads could exhaust it and fail the handshake. Whole records only, and
/// the read boundaries make no difference (DESIGN.md rule 1). A header rustls will
/// refuse (not a TLS content type or version, a length over the limit) gives the
/// whole buffer, so that the failure comes at once, as it would without this.
fn whole_records(buf: &[u8]) -> usize {
    let mut at = 0;
    loop {
        let rest = &buf[at..];
        let malformed = rest.first().is_some_and(|t| !(20..=24).contains(t))
            || rest.get(1).is_some_and(|major| *major != 3);
        if malformed {
            return buf.len();
        }
        let Some(header) = rest.get(..5) else {
            return at;
        };
        let len = usize::from(u16::from_be_bytes([header[3], header[4]]));
        if len > MAX_RECORD_LEN {
            return buf.len();
        }
        if rest.len() < 5 + len {
            return at;
        }
        at += 5 + len;
    }
}

/// What a batch of received bytes produced.
pub(crate) struct Received {
    /// Plaintext for the XML layer.
    pub plaintext: Vec<u8>,
    /// How many bytes at the start of `plaintext` came as TLS 1.3 early data: sent
    /// before the client's Finished, so anyone who recorded the client's first
    /// flight can send them again (RFC 8446 §8).
    pub early: usize,
    /// The peer sent TLS close_notify: no more data will come.
    pub peer_closed: bool,
}

impl Transport {
    /// Starts the server side of TLS.
    pub fn server(config: &Arc<rustls::ServerConfig>) -> Result<Self, String> {
        let conn = rustls::ServerConnection::new(Arc::clone(config)).map_err(|e| e.to_string())?;
        Ok(Self::tls(conn.into()))
    }

    /// Starts the client side of TLS: the ClientHello is ready to flush at once.
    pub fn client(
        config: &Arc<rustls::ClientConfig>,
        name: rustls::pki_types::ServerName<'static>,
    ) -> Result<Self, String> {
        let conn =
            rustls::ClientConnection::new(Arc::clone(config), name).map_err(|e| e.to_string())?;
        Ok(Self::tls(conn.into()))
    }

    fn tls(mut conn: rustls::Connection) -> Self {
        // Output is bounded by the driver (it stops reading while its send queue is
        // full), so rustls must never refuse plaintext mid-stanza.
        conn.set_buffer_limit(None);
        Transport::Tls(Box::new(Tls {
            conn,
            partial: Vec::new(),
        }))
    }

    /// Whether a TLS handshake is still under way.
    pub fn handshaking(&self) -> bool {
        matches!(self, Transport::Tls(conn) if conn.is_handshaking())
    }

    /// RFC 9266 `tls-exporter` data, on TLS 1.3 once the handshake is done.
    pub fn exporter(&self) -> Option<Vec<u8>> {
        match self {
            Transport::Tls(conn)
                if !conn.is_handshaking()
                    && conn.protocol_version() == Some(ProtocolVersion::TLSv1_3) =>
            {
                conn.export_keying_material([0u8; 32], EXPORTER_LABEL, None)
                    .ok()
                    .map(|d| d.to_vec())
            }
            _ => None,
        }
    }

    pub fn is_tls(&self) -> bool {
        matches!(self, Transport::Tls(_))
    }

    /// Takes bytes from the network and returns the plaintext they carry.
    pub fn receive(&mut self, data: &[u8]) -> Result<Received, String> {
        let tls = match self {
            Transport::Plain => {
                return Ok(Received {
                    plaintext: data.to_vec(),
                    early: 0,
                    peer_closed: false,
                });
            }
            Transport::Tls(tls) => tls,
        };
        let mut received = Received {
            plaintext: Vec::new(),
            early: 0,
            peer_closed: false,
        };
        tls.partial.extend_from_slice(data);
        let whole: Vec<u8> = tls.partial.drain(..whole_records(&tls.partial)).collect();
        let conn = &mut tls.conn;
        let mut data = whole.as_slice();
        while !data.is_empty() {
            // read_tls takes at most one buffer's worth; process in between so its
            // buffer never fills.
            conn.read_tls(&mut data).map_err(|e| e.to_string())?;
            let state = conn.process_new_packets().map_err(|e| e.to_string())?;
            // Early data comes before any other plaintext: it all precedes the
            // client's Finished, and rustls yields nothing else until then.
            if let rustls::Connection::Server(server) = &mut *conn
                && let Some(mut early) = server.early_data()
            {
                let start = received.plaintext.len();
                early
                    .read_to_end(&mut received.plaintext)
                    .map_err(|e| e.to_string())?;
                received.early += received.plaintext.len() - start;
            }
            let pending = state.plaintext_bytes_to_read();
            if pending > 0 {
                let start = received.plaintext.len();
                received.plaintext.resize(start + pending, 0);
                conn.reader()
                    .read_exact(&mut received.plaintext[start..])
                    .map_err(|e| e.to_string())?;
            }
            if state.peer_has_closed() {
                received.peer_closed = true;
                break;
            }
        }
        Ok(received)
    }

    /// Queues plaintext for the peer.
    pub fn send(&mut self, data: &[u8], out: &mut Vec<u8>) {
        match self {
            Transport::Plain => out.extend_from_slice(data),
            Transport::Tls(conn) => {
                // Cannot fail: the buffer limit is lifted in `tls()`.
                let _ = conn.writer().write_all(data);
            }
        }
    }

    /// Client side: writes `data` as TLS 1.3 early data, to go out with the
    /// ClientHello; all of it or nothing. False when this handshake cannot carry it:
    /// no resumable session whose ticket allows early data, or too little room.
    pub fn send_early(&mut self, data: &[u8]) -> bool {
        let Transport::Tls(conn) = self else {
            return false;
        };
        let rustls::Connection::Client(client) = &mut conn.conn else {
            return false;
        };
        match client.early_data() {
            Some(mut early) if early.bytes_left() >= data.len() => early.write_all(data).is_ok(),
            _ => false,
        }
    }

    /// Client side: whether the server took the early data. Once the handshake is
    /// done, false means the server never read it (RFC 8446 §4.2.10).
    pub fn early_data_accepted(&self) -> bool {
        match self {
            Transport::Tls(conn) => {
                matches!(&conn.conn, rustls::Connection::Client(c) if c.is_early_data_accepted())
            }
            Transport::Plain => false,
        }
    }

    /// Client side: the RFC 5929 `tls-server-end-point` hash of the server's
    /// certificate, once the handshake is done (on a resumed session, the certificate
    /// of the session resumed).
    pub fn peer_end_point_hash(&self) -> Option<Vec<u8>> {
        match self {
            Transport::Tls(conn) if !conn.is_handshaking() => {
                crate::sasl::end_point_hash(conn.peer_certificates()?.first()?.as_ref())
            }
            _ => None,
        }
    }

    /// Server side: the name the client sent in SNI (RFC 6066 §3), once the
    /// ClientHello has been read.
    pub fn server_name(&self) -> Option<&str> {
        match self {
            Transport::Tls(conn) => match &conn.conn {
                rustls::Connection::Server(server) => server.server_name(),
                rustls::Connection::Client(_) => None,
            },
            Transport::Plain => None,
        }
    }

    /// Moves pending TLS records (handshake, alerts, application data) to `out`.
    pub fn flush(&mut self, out: &mut Vec<u8>) {
        if let Transport::Tls(conn) = self {
            while conn.wants_write() {
                if conn.write_tls(out).is_err() {
                    break;
                }
            }
        }
    }

    /// Sends close_notify (TLS only) and flushes.
    pub fn close(&mut self, out: &mut Vec<u8>) {
        if let Transport::Tls(conn) = self {
            conn.send_close_notify();
        }
        self.flush(out);
    }

    /// The TLS facts, once the handshake has completed.
    pub fn info(&self) -> Option<TlsInfo> {
        match self {
            Transport::Tls(conn) if !conn.is_handshaking() => Some(TlsInfo {
                version: conn.protocol_version()?,
                resumed: conn.handshake_kind() == Some(HandshakeKind::Resumed),
                alpn: conn.alpn_protocol().map(<[u8]>::to_vec),
            }),
            _ => None,
        }
    }

    /// Channel-binding data this connection can offer (XEP-0440). `tls-exporter` only
    /// on TLS 1.3: RFC 9266 §3 forbids it on TLS 1.2 without extended master secret,
    /// and the simple rule keeps clients and server agreeing.
    ///
    /// While the handshake is under way the server is reading TLS 1.3 early data
    /// (nothing else reaches the XML layer then): only `tls-server-end-point` is
    /// known, since it hashes the server's own certificate, which is also the
    /// certificate of the session being resumed; `tls-exporter` needs the finished
    /// handshake.
    pub fn channel_bindings(
        &self,
        end_point_hash: Option<&[u8]>,
    ) -> Vec<(ChannelBindingType, Vec<u8>)> {
        if !self.is_tls() {
            return Vec::new();
        }
        if self.handshaking() {
            return end_point_hash
                .map(|hash| (ChannelBindingType::TlsServerEndPoint, hash.to_vec()))
                .into_iter()
                .collect();
        }
        let mut bindings = Vec::new();
        if let Some(data) = self.exporter() {
            bindings.push((ChannelBindingType::TlsExporter, data));
        }
        if let Some(hash) = end_point_hash {
            bindings.push((ChannelBindingType::TlsServerEndPoint, hash.to_vec()));
        }
        bindings
    }

    /// The channel-binding types this stream offers (XEP-0440), as the finished
    /// handshake gives them. In TLS 1.3 early data the features go out before the
    /// handshake is done, yet must be the ones it will give: early data means TLS
    /// 1.3, so `tls-exporter` will be there. Otherwise the XEP-0509 config version
    /// (a hash of the features) would differ between a 0-RTT login and any other.
    pub fn offered_channel_bindings(
        &self,
        end_point_hash: Option<&[u8]>,
    ) -> Vec<ChannelBindingType> {
        if self.is_tls() && self.handshaking() {
            let mut types = vec![ChannelBindingType::TlsExporter];
            if end_point_hash.is_some() {
                types.push(ChannelBindingType::TlsServerEndPoint);
            }
            return types;
        }
        self.channel_bindings(end_point_hash)
            .into_iter()
            .map(|(t, _)| t)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::whole_records;

    #[test]
    fn only_whole_records_pass() {
        let record = |len: u16| {
            let mut r = vec![23, 3, 3];
            r.extend_from_slice(&len.to_be_bytes());
            r.extend(std::iter::repeat_n(0u8, len.into()));
            r
        };
        let mut two = record(10);
        two.extend(record(3));
        assert_eq!(whole_records(&two), two.len());
        for cut in 0..two.len() {
            let expected = if cut < 15 { 0 } else { 15 };
            assert_eq!(whole_records(&two[..cut]), expected, "{cut}");
        }
        assert_eq!(whole_records(&[]), 0);
    }

    #[test]
    fn what_is_not_tls_passes_at_once() {
        // Plaintext XML where TLS must begin (DESIGN.md rule 3): rustls fails it.
        assert_eq!(whole_records(b"<"), 1);
        assert_eq!(whole_records(&[22, 9]), 2);
        assert_eq!(whole_records(&[23, 3, 3, 0xff, 0xff, 0]), 6);
        // A record, then garbage: all of it, for rustls to refuse.
        let mut data = vec![23, 3, 3, 0, 1, 0];
        data.extend_from_slice(b"<x>");
        assert_eq!(whole_records(&data), data.len());
    }
}
