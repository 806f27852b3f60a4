//! The client side of SCRAM (RFC 5802 §5, RFC 7677), for tests and the Pipit client library.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use subtle::ConstantTimeEq;

use super::channel_binding::ChannelBindingType;
use super::downgrade::Advertised;
use super::error::SaslError;
use super::gs2::{CbindFlag, Gs2Header};
use super::hash::{ScramHash, xor};
use super::mechanism::Mechanism;
use super::prep::saslprep;
use super::saslname;
use super::scram_message::{ClientFinal, ServerFinal, ServerFirst, is_printable};

/// One SCRAM exchange from the client's side.
///
/// Call order: optionally [`expect_downgrade_protection`](Self::expect_downgrade_protection);
/// [`client_first`](Self::client_first) → send; on the server-first message,
/// [`handle_server_first`](Self::handle_server_first) → send the client-final message; on
/// success data, [`verify_server_final`](Self::verify_server_final).
pub struct ScramClient {
    /// The hash of the mechanism.
    hash: ScramHash,
    /// The SASLprep'd password.
    password: String,
    /// `gs2-header` then the binding data: what `c=` carries.
    cbind_input: Vec<u8>,
    /// The GS2 header text.
    gs2_text: String,
    /// `client-first-message-bare`.
    bare: String,
    /// Our nonce.
    nonce: String,
    /// The ServerSignature to expect, once the server-first message is handled.
    server_signature: Option<Vec<u8>>,
    /// What the server advertised, to check XEP-0474's `h` attribute against.
    advertised: Option<Advertised>,
    /// Whether a server-first message without `h` fails.
    require_downgrade_protection: bool,
}

impl fmt::Debug for ScramClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScramClient")
            .field("hash", &self.hash)
            .field("gs2_text", &self.gs2_text)
            .field("bare", &self.bare)
            .finish_non_exhaustive()
    }
}

impl ScramClient {
    /// Prepares an exchange for a SCRAM mechanism.
    ///
    /// `cb` must be `Some` exactly for -PLUS mechanisms. Without -PLUS the GS2 flag is `n` when
    /// `server_supports_plus` (we saw -PLUS but cannot bind, so the server must not suspect a
    /// downgrade) and `y` otherwise (we could bind but the server did not offer it, RFC 5802 §6).
    /// An empty `authzid` counts as none. The username and password are SASLprep'd.
    pub fn new(
        mech: Mechanism,
        username: &str,
        password: &str,
        authzid: Option<&str>,
        nonce: &str,
        cb: Option<(ChannelBindingType, Vec<u8>)>,
        server_supports_plus: bool,
    ) -> Result<Self, SaslError> {
        let hash = mech.scram_hash().ok_or(SaslError::InvalidMechanism)?;
        if !is_printable(nonce) {
            return Err(SaslError::Internal(
                "client nonce must be printable ASCII without commas",
            ));
        }
        let (flag, cb_data) = match (cb, mech.is_plus()) {
            (Some((ty, data)), true) => (CbindFlag::Bound(ty.name().to_owned()), data),
            (None, false) if server_supports_plus => (CbindFlag::NotSupported, Vec::new()),
            (None, false) => (CbindFlag::ClientOnly, Vec::new()),
            (Some(_), false) | (None, true) => {
                return Err(SaslError::Internal(
                    "channel-binding data must be given exactly for PLUS mechanisms",
                ));
            }
        };
        let username = saslprep(username).ok_or(SaslError::SaslPrep)?;
        let password = saslprep(password).ok_or(SaslError::SaslPrep)?;
        let gs2 = Gs2Header {
            flag,
            authzid: authzid.filter(|a| !a.is_empty()).map(str::to_owned),
        };
        let gs2_text = gs2.to_text();
        let mut cbind_input = gs2_text.clone().into_bytes();
        cbind_input.extend_from_slice(&cb_data);
        Ok(ScramClient {
            hash,
            password,
            cbind_input,
            gs2_text,
            bare: format!("n={},r={nonce}", saslname::escape(&username)),
            nonce: nonce.to_owned(),
            server_signature: None,
            advertised: None,
            require_downgrade_protection: false,
        })
    }

    /// Checks the server's SASL SCRAM Downgrade Protection (XEP-0474 §5.2) against what
    /// the server advertised on this stream.
    ///
    /// `mechanisms` are the `<mechanism/>` names of the profile we authenticate with
    /// (SASL1's `<mechanisms/>` or SASL2's `<authentication/>`; never the HT-* names inside
    /// FAST's `<fast/>`), `channel_bindings` the types of XEP-0440's
    /// `<sasl-channel-binding/>` (empty if it was absent). If the server-first message
    /// carries `h` and it does not match, [`handle_server_first`](Self::handle_server_first)
    /// fails with [`SaslError::DowngradeDetected`]. A message without `h` passes unless
    /// `require` is set (a server may not implement XEP-0474; stripping `h` on the way is
    /// caught anyway, because the server's `AuthMessage` still has it and the proof fails).
    /// Call before [`handle_server_first`](Self::handle_server_first).
    pub fn expect_downgrade_protection(
        &mut self,
        mechanisms: &[&str],
        channel_bindings: &[&str],
        require: bool,
    ) {
        self.advertised = Some(Advertised::new(mechanisms, channel_bindings));
        self.require_downgrade_protection = require;
    }

    /// The client-first message.
    pub fn client_first(&self) -> Vec<u8> {
        format!("{}{}", self.gs2_text, self.bare).into_bytes()
    }

    /// Handles the server-first message and returns the client-final message.
    ///
    /// Fails if the server's nonce does not extend ours (RFC 5802 §5.1), on any grammar error,
    /// or if called twice.
    pub fn handle_server_first(&mut self, data: &[u8]) -> Result<Vec<u8>, SaslError> {
        if self.server_signature.is_some() {
            return Err(SaslError::bad_server("second server-first message"));
        }
        let msg = std::str::from_utf8(data)
            .map_err(|_| SaslError::bad_server("server-first is not UTF-8"))?;
        let server_first = ServerFirst::parse(msg)?;
        let extends_ours = server_first
            .nonce
            .strip_prefix(self.nonce.as_str())
            .is_some_and(|server_part| !server_part.is_empty());
        if !extends_ours {
            return Err(SaslError::bad_server("server nonce does not extend ours"));
        }
        self.check_downgrade_hash(server_first.downgrade_hash.as_deref())?;
        let hash = self.hash;
        let salted = hash.hi(
            self.password.as_bytes(),
            &server_first.salt,
            server_first.iterations,
        );
        let (client_key, keys) = hash.keys(&salted);
        let without_proof = ClientFinal::without_proof_text(&self.cbind_input, &server_first.nonce);
        let auth_message = format!("{},{msg},{without_proof}", self.bare);
        let client_signature = hash.hmac(&keys.stored_key, auth_message.as_bytes());
        let proof = xor(&client_key, &client_signature);
        self.server_signature = Some(hash.hmac(&keys.server_key, auth_message.as_bytes()));
        Ok(ClientFinal::with_proof_text(&without_proof, &proof).into_bytes())
    }

    /// XEP-0474 §5.2: `h`, if present, must be the hash of what we saw advertised.
    fn check_downgrade_hash(&self, received: Option<&str>) -> Result<(), SaslError> {
        let Some(advertised) = &self.advertised else {
            return Ok(());
        };
        match received {
            Some(text) => {
                let expected = advertised.digest(self.hash);
                let matches = BASE64
                    .decode(text)
                    .is_ok_and(|received| bool::from(received.ct_eq(&expected)));
                if matches {
                    Ok(())
                } else {
                    Err(SaslError::DowngradeDetected)
                }
            }
            None if self.require_downgrade_protection => Err(SaslError::DowngradeDetected),
            None => Ok(()),
        }
    }

    /// Checks the server-final message: `v=` must carry the expected ServerSignature.
    pub fn verify_server_final(&self, data: &[u8]) -> Result<(), SaslError> {
        let expected = self
            .server_signature
            .as_ref()
            .ok_or_else(|| SaslError::bad_server("server-final before server-first"))?;
        let msg = std::str::from_utf8(data)
            .map_err(|_| SaslError::bad_server("server-final is not UTF-8"))?;
        match ServerFinal::parse(msg)? {
            ServerFinal::Error(value) => Err(SaslError::ServerError(value)),
            ServerFinal::Verifier(signature) if bool::from(signature.ct_eq(expected)) => Ok(()),
            ServerFinal::Verifier(_) => Err(SaslError::ServerSignatureMismatch),
        }
    }
}
