//! FAST (XEP-0484) logins: the token, its count, and the login in TLS 1.3
//! early data.

use super::{ClientConnection, Sasl, State, header};
use crate::client::config::{FastToken, KnownServer};
use crate::client::error::ClientError;
use crate::sasl::{ChannelBindingType, HtMechanism, ht_initial_response};
use crate::xml::{Element, ns};

impl ClientConnection {
    /// XEP-0484 §3.4 in TLS 1.3 0-RTT: the stream header and the FAST
    /// `<authenticate/>` go out as early data, with the ClientHello, when an earlier
    /// login left grounds (DESIGN.md rule 9): a token, the config version, and the
    /// server's word that it takes FAST in 0-RTT; and when the session cache holds a
    /// ticket that allows early data (rustls knows). Stanzas never ride here: early
    /// data can be replayed, and the server would hold them until the handshake anyway.
    pub(super) fn send_early_login(&mut self) {
        let Some(known) = self.config.known.clone() else {
            return;
        };
        if !self.may_pipeline() || !known.fast_zero_rtt {
            return;
        }
        self.learned = KnownServer {
            credentials_ok: false,
            ..known
        };
        let Ok((auth, sasl, token)) = self.fast_request() else {
            // No token, or one no 0-RTT login can use: the plain FAST login follows.
            self.learned = KnownServer::default();
            return;
        };
        let mut flight =
            header(self.config.jid.domain(), Some(&self.config.jid), true).into_bytes();
        flight.extend_from_slice(&auth.to_bytes(ns::STREAM));
        if self.transport.send_early(&flight) {
            self.learned.fast_token = Some(token);
            self.early = Some(sasl);
        } else {
            self.learned = KnownServer::default();
            self.token_requested = None;
            self.mechanism = None;
        }
    }

    /// The FAST mechanism to request a token for, if the server offers FAST. Channel
    /// binding first (XEP-0484 §6: clients MUST prefer it). `tls-exporter` binds to
    /// the very connection, but exists only once the handshake is done; where the
    /// server takes FAST in 0-RTT, `tls-server-end-point` comes first, since the
    /// token is then good for early data too (see [`KnownServer::end_point_hash`]).
    pub(super) fn token_mechanism(&self) -> Option<&'static str> {
        use HtMechanism::{Sha256Endp, Sha256Expr, Sha256None};
        let offered = |m: HtMechanism| self.learned.fast_mechanisms.iter().any(|o| o == m.name());
        let order = if self.learned.fast_zero_rtt {
            [Sha256Endp, Sha256Expr, Sha256None]
        } else {
            [Sha256Expr, Sha256Endp, Sha256None]
        };
        order
            .into_iter()
            .filter(|m| match m {
                Sha256Expr => self.transport.exporter().is_some(),
                Sha256Endp => self.end_point_hash().is_some(),
                _ => true,
            })
            .find(|m| offered(*m))
            .map(HtMechanism::name)
    }

    /// RFC 5929 `tls-server-end-point` data: from this handshake once it is done,
    /// before that (0-RTT) as the last handshake left it.
    pub(super) fn end_point_hash(&self) -> Option<Vec<u8>> {
        if self.transport.handshaking() {
            self.learned.end_point_hash.clone()
        } else {
            self.transport.peer_end_point_hash()
        }
    }

    /// Whether a FAST token is at hand: one this login got, or the cache's.
    pub(super) fn has_token(&self) -> bool {
        self.learned.fast_token.is_some()
            || self
                .config
                .known
                .as_ref()
                .is_some_and(|k| k.fast_token.is_some())
    }

    /// XEP-0484 §3.4: authenticate with the cached token, one message, a count that
    /// only grows.
    pub(super) fn authenticate_fast(&mut self) -> Result<(), ClientError> {
        let (auth, sasl, token) = self.fast_request()?;
        self.write(&auth.to_bytes(ns::STREAM));
        self.learned.fast_token = Some(token);
        self.state = State::Sasl(sasl);
        self.release_after_sasl2();
        Ok(())
    }

    /// The FAST `<authenticate/>` with the next count, what to verify the server's
    /// answer with, and the token as it stands after this use. During the handshake
    /// (0-RTT) only mechanisms whose channel binding is known by then will do.
    pub(super) fn fast_request(&mut self) -> Result<(Element, Sasl, FastToken), ClientError> {
        let token = self
            .learned
            .fast_token
            .clone()
            .or_else(|| self.config.known.as_ref()?.fast_token.clone())
            .ok_or(ClientError::NoFastToken)?;
        let mechanism = HtMechanism::from_name(&token.mechanism)
            .ok_or_else(|| ClientError::NoMechanism(token.mechanism.clone()))?;
        let cb_data = match mechanism.channel_binding_type() {
            None => Vec::new(),
            Some(ChannelBindingType::TlsExporter) => {
                self.transport.exporter().ok_or_else(|| {
                    ClientError::NoMechanism(
                        "tls-exporter needs a finished TLS 1.3 handshake".into(),
                    )
                })?
            }
            Some(ChannelBindingType::TlsServerEndPoint) => self
                .end_point_hash()
                .ok_or_else(|| ClientError::NoMechanism("no tls-server-end-point data".into()))?,
        };
        let local = self.config.jid.local().unwrap_or_default().to_owned();
        let initial = ht_initial_response(mechanism, &local, &token.token, &cb_data);
        self.mechanism = Some(mechanism.name());
        let count = token.count + 1;
        let auth = self.authenticate2(mechanism.name(), &initial, Some(count));
        let sasl = Sasl::Fast {
            mechanism,
            token: token.token.clone(),
            cb_data,
        };
        Ok((auth, sasl, FastToken { count, ..token }))
    }
}
