//! The server side of SCRAM (RFC 5802 §5–§6, RFC 7677): checks the client's two messages.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use subtle::ConstantTimeEq;

use super::channel_binding::{ChannelBindingInfo, ChannelBindingType};
use super::credentials::{ScramKeys, StoredCredentials};
use super::decoy::Decoy;
use super::downgrade::Advertised;
use super::error::SaslError;
use super::gs2::CbindFlag;
use super::hash::{ScramHash, xor};
use super::mechanism::Mechanism;
use super::prep::saslprep;
use super::scram_message::{ClientFinal, ClientFirst, ServerFinal, ServerFirst, is_printable};

/// The client-first message has been accepted; the account's credentials are needed.
pub(crate) struct ScramFirst {
    /// The hash of the negotiated mechanism.
    hash: ScramHash,
    /// The parsed client-first message.
    first: ClientFirst,
    /// The username after unescaping and SASLprep.
    pub(crate) username: String,
    /// What the client must send back base64-encoded in `c=`: GS2 header plus binding data.
    cbind_input: Vec<u8>,
}

impl ScramFirst {
    /// Parses and checks the client-first message for `mech`.
    pub(crate) fn parse(
        mech: Mechanism,
        data: &[u8],
        cb: &ChannelBindingInfo,
    ) -> Result<Self, SaslError> {
        let hash = mech.scram_hash().ok_or(SaslError::InvalidMechanism)?;
        let msg = std::str::from_utf8(data).map_err(|_| SaslError::IncorrectEncoding)?;
        let first = ClientFirst::parse(msg)?;
        let cbind_input = cbind_input(mech, &first, cb)?;
        // RFC 5802 §5.1: a username that fails SASLprep cannot authenticate.
        let username = saslprep(&first.username).ok_or(SaslError::NotAuthorized)?;
        Ok(ScramFirst {
            hash,
            first,
            username,
            cbind_input,
        })
    }

    /// The authorization identity from the GS2 header.
    pub(crate) fn authzid(&self) -> Option<&str> {
        self.first.gs2.authzid.as_deref()
    }

    /// Builds the server-first message from the account (or a decoy) and our nonce part,
    /// with XEP-0474's `h` attribute when `advertised` is given.
    pub(crate) fn challenge(
        self,
        creds: Option<&StoredCredentials>,
        nonce: &str,
        decoy: &Decoy,
        advertised: Option<&Advertised>,
    ) -> Result<(ScramFinal, Vec<u8>), SaslError> {
        if !is_printable(nonce) {
            return Err(SaslError::Internal(
                "server nonce must be printable ASCII without commas",
            ));
        }
        let (salt, iterations, keys, known) = match creds {
            Some(creds) => (
                creds.salt.clone(),
                creds.iterations,
                creds.keys(self.hash).clone(),
                true,
            ),
            None => {
                // Unknown user: answer like for a real account and fail at the final step.
                let fake = decoy.credentials(&self.username, nonce);
                let keys = fake.keys(self.hash).clone();
                (fake.salt, fake.iterations, keys, false)
            }
        };
        if salt.is_empty() || iterations == 0 {
            return Err(SaslError::Internal(
                "stored credentials have an empty salt or zero iterations",
            ));
        }
        let server_first = ServerFirst {
            nonce: format!("{}{nonce}", self.first.nonce),
            salt,
            iterations,
            downgrade_hash: advertised.map(|a| BASE64.encode(a.digest(self.hash))),
        };
        let server_first_text = server_first.to_text();
        let pending = ScramFinal {
            hash: self.hash,
            nonce: server_first.nonce,
            cbind_input: self.cbind_input,
            auth_message_start: format!("{},{server_first_text}", self.first.bare),
            keys,
            known,
        };
        Ok((pending, server_first_text.into_bytes()))
    }
}

/// The server-first message is sent; the client-final message is awaited.
pub(crate) struct ScramFinal {
    /// The hash of the negotiated mechanism.
    hash: ScramHash,
    /// The combined nonce the client must echo.
    nonce: String,
    /// What `c=` must decode to.
    cbind_input: Vec<u8>,
    /// `client-first-message-bare "," server-first-message`.
    auth_message_start: String,
    /// The account's keys for this hash (decoy keys for an unknown user).
    keys: ScramKeys,
    /// Whether the account exists; if not, the exchange fails whatever the proof.
    known: bool,
}

impl ScramFinal {
    /// Checks the client-final message and returns the server-final message `v=...`.
    pub(crate) fn verify(self, data: &[u8]) -> Result<Vec<u8>, SaslError> {
        let msg = std::str::from_utf8(data).map_err(|_| SaslError::IncorrectEncoding)?;
        let client_final = ClientFinal::parse(msg)?;
        // RFC 5802 §6: the binding data proves there is no TLS man in the middle.
        if !bool::from(client_final.channel_binding.ct_eq(&self.cbind_input)) {
            return Err(SaslError::NotAuthorized);
        }
        if client_final.nonce != self.nonce {
            return Err(SaslError::NotAuthorized);
        }
        let hash = self.hash;
        let auth_message = format!("{},{}", self.auth_message_start, client_final.without_proof);
        let client_signature = hash.hmac(&self.keys.stored_key, auth_message.as_bytes());
        // RFC 5802 §3: ClientKey = ClientProof XOR ClientSignature; H(ClientKey) must be StoredKey.
        let proof_ok = client_final.proof.len() == hash.output_len() && {
            let client_key = xor(&client_final.proof, &client_signature);
            bool::from(hash.h(&client_key).ct_eq(&self.keys.stored_key))
        };
        if !(proof_ok && self.known) {
            return Err(SaslError::NotAuthorized);
        }
        let server_signature = hash.hmac(&self.keys.server_key, auth_message.as_bytes());
        Ok(ServerFinal::Verifier(server_signature)
            .to_text()
            .into_bytes())
    }
}

/// Checks the GS2 channel-binding flag against the mechanism and the connection, and returns
/// what `c=` must decode to.
///
/// Contradictions between the flag and the mechanism, and a `p=` type this connection has no data
/// for (RFC 5802's `e=unsupported-channel-binding-type`; XEP-0440 tells clients which types we
/// support), are client errors: [`SaslError::MalformedRequest`]. A `y` flag after we advertised
/// -PLUS means someone stripped those mechanisms: [`SaslError::NotAuthorized`].
fn cbind_input(
    mech: Mechanism,
    first: &ClientFirst,
    cb: &ChannelBindingInfo,
) -> Result<Vec<u8>, SaslError> {
    let mut input = first.gs2_text.as_bytes().to_vec();
    match (&first.gs2.flag, mech.is_plus()) {
        (CbindFlag::Bound(name), true) => {
            let data = ChannelBindingType::from_name(name)
                .and_then(|ty| cb.get(ty))
                .ok_or_else(|| {
                    SaslError::malformed(&format!(
                        "unsupported channel-binding type {name:?}; see the advertised types"
                    ))
                })?;
            input.extend_from_slice(data);
        }
        (CbindFlag::Bound(_), false) => {
            return Err(SaslError::malformed(
                "channel binding requested with a non-PLUS mechanism",
            ));
        }
        (_, true) => {
            return Err(SaslError::malformed(
                "PLUS mechanism without channel binding",
            ));
        }
        (CbindFlag::ClientOnly, false) if cb.plus_advertised => {
            return Err(SaslError::NotAuthorized);
        }
        (CbindFlag::ClientOnly | CbindFlag::NotSupported, false) => {}
    }
    Ok(input)
}
