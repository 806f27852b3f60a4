//! The byte layer under the XML stream, for server and client alike: plaintext, or
//! TLS driven from buffers.
//!
//! rustls never touches the socket here: ciphertext is handed in with
//! [`Transport::receive`] and taken out with [`Transport::flush`]. That is what makes
//! stunt buffering possible (DESIGN.md rule 3): the bytes that followed `<starttls/>`
//! in the same read are fed to the TLS engine as the start of the ClientHello, and
//! on the client the bytes after `<proceed/>` are the start of the server's flight.

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
    Tls(Box<rustls::Connection>),
}

/// What a batch of received bytes produced.
pub(crate) struct Received {
    /// Plaintext for the XML layer.
    pub plaintext: Vec<u8>,
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
        Transport::Tls(Box::new(conn))
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
    pub fn receive(&mut self, mut data: &[u8]) -> Result<Received, String> {
        let conn = match self {
            Transport::Plain => {
                return Ok(Received {
                    plaintext: data.to_vec(),
                    peer_closed: false,
                });
            }
            Transport::Tls(conn) => conn,
        };
        let mut received = Received {
            plaintext: Vec::new(),
            peer_closed: false,
        };
        while !data.is_empty() {
            // read_tls takes at most one buffer's worth; process in between so its
            // buffer never fills.
            conn.read_tls(&mut data).map_err(|e| e.to_string())?;
            let state = conn.process_new_packets().map_err(|e| e.to_string())?;
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
    pub fn channel_bindings(
        &self,
        end_point_hash: Option<&[u8]>,
    ) -> Vec<(ChannelBindingType, Vec<u8>)> {
        if !self.is_tls() || self.handshaking() {
            return Vec::new();
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
}
