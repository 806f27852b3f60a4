//! The Hashed Token (HT) SASL mechanisms (draft-schmaus-kitten-sasl-ht-08, the revision
//! XEP-0484 cites), as FAST (XEP-0484) uses them: one message each way, sans-IO.
//!
//! The client sends `authcid NUL HMAC(token, "Initiator" || cb-data)` (draft §3.1); the
//! server answers, as SASL success data, `HMAC(token, "Responder" || cb-data)` (§3.3). The
//! HMAC key is the UTF-8 octets of the token string (§3.1), i.e. exactly the `token`
//! attribute of XEP-0484's `<token/>` element (§3.3), which is an opaque string.
//!
//! # Storing only a hash of the token
//! The store keeps `SHA-256(token)`, never the token. That still lets the server verify,
//! because HMAC replaces a key longer than the hash's block size (64 bytes for SHA-256) by
//! the hash of the key (RFC 2104 §2): for such a token, `HMAC(token, m)` equals
//! `HMAC(SHA-256(token), m)`. So a server-issued token must be longer than
//! [`HT_TOKEN_MIN_LEN`]` - 1` bytes; [`ht_token_string`] makes such tokens and
//! [`HtTokenKey::from_token`] refuses shorter ones. (The stored hash is still a secret: it
//! authenticates as well as the token does, as any HMAC key a server can verify with must.)
//!
//! The client side ([`ht_initial_response`], [`ht_verify_server`]) keys the HMAC with the
//! token string itself, as the draft says, so it works with any server's tokens.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use subtle::ConstantTimeEq;

use super::channel_binding::{ChannelBindingInfo, ChannelBindingType};
use super::error::SaslError;
use super::hash::ScramHash;
use super::prep::saslprep;

/// The SHA-256 block size: keys longer than this are hashed before use (RFC 2104 §2).
const SHA256_BLOCK_LEN: usize = 64;

/// The shortest server-issued token (in bytes) whose SHA-256 works as its HMAC key.
pub const HT_TOKEN_MIN_LEN: usize = SHA256_BLOCK_LEN + 1;

/// Random bytes [`ht_token_string`] needs: 256 bits (the draft's §5 asks for at least 128).
const TOKEN_RANDOM_LEN: usize = 32;

/// The token prefix: the `secret-token:` URI scheme (RFC 8959) lets secret scanners find
/// leaked tokens; `pipit-fast-` names their origin.
const TOKEN_PREFIX: &str = "secret-token:pipit-fast-";

/// The HMAC labels of draft-schmaus-kitten-sasl-ht-08 §3.1 and §3.3.
const INITIATOR: &[u8] = b"Initiator";
const RESPONDER: &[u8] = b"Responder";

/// An HT mechanism offered for FAST (XEP-0484 §3.1), in server preference order.
///
/// These are advertised only inside XEP-0484's `<fast/>` inline feature, never in the SASL
/// `<mechanisms/>` or SASL2 `<authentication/>` list, which is why they are not part of
/// [`Mechanism`](super::Mechanism).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HtMechanism {
    /// `HT-SHA-256-EXPR`: bound to `tls-exporter` (RFC 9266).
    Sha256Expr,
    /// `HT-SHA-256-ENDP`: bound to `tls-server-end-point` (RFC 5929 §4).
    Sha256Endp,
    /// `HT-SHA-256-NONE`: no channel binding; cb-data is the empty string.
    Sha256None,
}

impl HtMechanism {
    /// Every HT mechanism, strongest binding first: the order to advertise them in.
    pub const ALL: [HtMechanism; 3] = [
        HtMechanism::Sha256Expr,
        HtMechanism::Sha256Endp,
        HtMechanism::Sha256None,
    ];

    /// The mechanism name, `HT-<hash>-<cb-type>` (draft §2).
    pub fn name(self) -> &'static str {
        match self {
            HtMechanism::Sha256Expr => "HT-SHA-256-EXPR",
            HtMechanism::Sha256Endp => "HT-SHA-256-ENDP",
            HtMechanism::Sha256None => "HT-SHA-256-NONE",
        }
    }

    /// Looks a mechanism up by its exact (upper-case) name.
    pub fn from_name(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.name() == s)
    }

    /// The channel-binding type whose data goes into the HMAC; `None` for `-NONE`.
    pub fn channel_binding_type(self) -> Option<ChannelBindingType> {
        match self {
            HtMechanism::Sha256Expr => Some(ChannelBindingType::TlsExporter),
            HtMechanism::Sha256Endp => Some(ChannelBindingType::TlsServerEndPoint),
            HtMechanism::Sha256None => None,
        }
    }

    /// The hash the HMAC runs over.
    fn hash(self) -> ScramHash {
        ScramHash::Sha256
    }
}

/// Makes a FAST token string from `random` (at least 32 bytes from a CSPRNG).
///
/// The result is `secret-token:pipit-fast-` followed by the bytes in unpadded base64url:
/// printable ASCII, safe in an XML attribute, and always longer than 64 bytes, so its
/// SHA-256 ([`HtTokenKey::from_token`]) is what the store keeps. Fewer than 32 random bytes
/// is [`SaslError::Internal`].
pub fn ht_token_string(random: &[u8]) -> Result<String, SaslError> {
    if random.len() < TOKEN_RANDOM_LEN {
        return Err(SaslError::Internal(
            "a FAST token needs at least 32 random bytes",
        ));
    }
    let token = format!("{TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode(random));
    debug_assert!(token.len() >= HT_TOKEN_MIN_LEN);
    Ok(token)
}

/// The server's HMAC key for one token: `SHA-256(token)`, which is also what the store
/// keeps as the token's hash (see the module docs for why both are the same thing).
#[derive(Clone, PartialEq, Eq)]
pub struct HtTokenKey([u8; 32]);

impl fmt::Debug for HtTokenKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HtTokenKey(..)")
    }
}

impl HtTokenKey {
    /// Derives the key from a token string; `None` if it is too short (at most 64 bytes)
    /// for its hash to stand in for it, which no token from [`ht_token_string`] is.
    pub fn from_token(token: &str) -> Option<Self> {
        (token.len() >= HT_TOKEN_MIN_LEN).then(|| {
            let digest = ScramHash::Sha256.h(token.as_bytes());
            let mut key = [0; 32];
            key.copy_from_slice(&digest);
            HtTokenKey(key)
        })
    }

    /// Wraps a hash read back from the store; `None` unless it is 32 bytes.
    pub fn from_stored(hash: &[u8]) -> Option<Self> {
        <[u8; 32]>::try_from(hash).ok().map(HtTokenKey)
    }

    /// The 32 bytes: what the store keeps as `token_hash`.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

/// `HMAC(key, label || cb-data)` with the mechanism's hash.
fn ht_hmac(mech: HtMechanism, key: &[u8], label: &[u8], cb_data: &[u8]) -> Vec<u8> {
    let mut msg = Vec::with_capacity(label.len() + cb_data.len());
    msg.extend_from_slice(label);
    msg.extend_from_slice(cb_data);
    mech.hash().hmac(key, &msg)
}

/// The cb-data the mechanism binds to: empty for `-NONE` (the draft revisions after -08
/// spell this out in §2), else the caller's data for the type.
fn client_cb_data(mech: HtMechanism, cb_data: &[u8]) -> &[u8] {
    if mech.channel_binding_type().is_some() {
        cb_data
    } else {
        &[]
    }
}

/// Builds the client's initial response `authcid NUL HMAC(token, "Initiator" || cb-data)`.
///
/// `token` is the string from XEP-0484's `<token token='…'/>`; `cb_data` is the binding
/// data for [`HtMechanism::channel_binding_type`] and is ignored for `-NONE`. The username
/// goes as given (the server applies SASLprep, as for PLAIN).
pub fn ht_initial_response(
    mech: HtMechanism,
    username: &str,
    token: &str,
    cb_data: &[u8],
) -> Vec<u8> {
    let hashed = ht_hmac(
        mech,
        token.as_bytes(),
        INITIATOR,
        client_cb_data(mech, cb_data),
    );
    let mut out = Vec::with_capacity(username.len() + 1 + hashed.len());
    out.extend_from_slice(username.as_bytes());
    out.push(0);
    out.extend_from_slice(&hashed);
    out
}

/// Checks the server's success data, `HMAC(token, "Responder" || cb-data)` (draft-08
/// §3.3): the client MUST check it for mutual authentication.
///
/// Also accepts that value behind one NUL octet, the `success-response` of the later
/// draft-ietf-kitten-sasl-ht revisions, so a client works with servers of either era.
pub fn ht_verify_server(mech: HtMechanism, token: &str, cb_data: &[u8], additional: &[u8]) -> bool {
    let expected = ht_hmac(
        mech,
        token.as_bytes(),
        RESPONDER,
        client_cb_data(mech, cb_data),
    );
    let received = match additional {
        [0, rest @ ..] if rest.len() == expected.len() => rest,
        other => other,
    };
    bool::from(received.ct_eq(&expected))
}

/// The server side of one HT exchange (sans-IO).
///
/// Call order:
/// 1. [`start`](Self::start) with the decoded initial response; it returns the username
///    (after SASLprep) so the driver can load that account's unexpired FAST tokens.
/// 2. For each stored token issued for *this* mechanism (XEP-0484 §3.4: a token MUST NOT
///    be used with another mechanism), [`verify`](Self::verify) its key. None matching,
///    or no such user, is `<not-authorized/>`.
/// 3. On a match (and after the 0-RTT `count` check, XEP-0484 §3.4), send
///    [`success_data`](Self::success_data) for that key as the SASL additional data.
pub struct HtServer {
    /// The mechanism the client chose.
    mech: HtMechanism,
    /// The authcid after SASLprep.
    username: String,
    /// The client's `initiator-hashed-token`.
    hashed_token: Vec<u8>,
    /// This connection's data for the mechanism's channel-binding type (empty for -NONE).
    cb_data: Vec<u8>,
}

impl fmt::Debug for HtServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HtServer")
            .field("mech", &self.mech)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

impl HtServer {
    /// Parses the initial response `authcid NUL initiator-hashed-token` (draft §3.1).
    ///
    /// The authcid cannot contain NUL, so the first NUL ends it; the hashed token is raw
    /// bytes and may contain NULs. An authcid that is not UTF-8 is
    /// [`SaslError::IncorrectEncoding`]; a missing separator or an empty part is
    /// [`SaslError::MalformedRequest`]; an authcid SASLprep rejects is
    /// [`SaslError::NotAuthorized`]. A mechanism whose binding type this connection has no
    /// data for is [`SaslError::InvalidMechanism`] (as for -PLUS in
    /// [`ServerSession::start`](super::ServerSession::start)).
    pub fn start(
        mech: HtMechanism,
        initial: &[u8],
        cb: &ChannelBindingInfo,
    ) -> Result<(Self, String), SaslError> {
        let cb_data = match mech.channel_binding_type() {
            Some(ty) => cb.get(ty).ok_or(SaslError::InvalidMechanism)?.to_vec(),
            None => Vec::new(),
        };
        let nul = initial
            .iter()
            .position(|&b| b == 0)
            .ok_or_else(|| SaslError::malformed("HT message has no NUL separator"))?;
        let (authcid, hashed_token) = (&initial[..nul], &initial[nul + 1..]);
        let authcid = std::str::from_utf8(authcid).map_err(|_| SaslError::IncorrectEncoding)?;
        if authcid.is_empty() {
            return Err(SaslError::malformed("empty HT authcid"));
        }
        if hashed_token.is_empty() {
            return Err(SaslError::malformed("empty HT initiator-hashed-token"));
        }
        let username = saslprep(authcid).ok_or(SaslError::NotAuthorized)?;
        let server = HtServer {
            mech,
            username: username.clone(),
            hashed_token: hashed_token.to_vec(),
            cb_data,
        };
        Ok((server, username))
    }

    /// The mechanism the client chose; only tokens issued for it may be tried.
    pub fn mechanism(&self) -> HtMechanism {
        self.mech
    }

    /// The authentication identity after SASLprep.
    pub fn username(&self) -> &str {
        &self.username
    }

    /// Whether the client proved possession of the token behind `key` (constant-time, as
    /// XEP-0484 §5.1 and §6 require).
    pub fn verify(&self, key: &HtTokenKey) -> bool {
        let expected = ht_hmac(self.mech, key.as_bytes(), INITIATOR, &self.cb_data);
        // A hashed token of the wrong length compares unequal, in constant time too.
        bool::from(self.hashed_token.ct_eq(&expected))
    }

    /// The success data `HMAC(token, "Responder" || cb-data)` (draft §3.3) for `key`; send
    /// it only for the key [`verify`](Self::verify) accepted.
    pub fn success_data(&self, key: &HtTokenKey) -> Vec<u8> {
        ht_hmac(self.mech, key.as_bytes(), RESPONDER, &self.cb_data)
    }
}

#[cfg(test)]
mod tests {
    use super::{HT_TOKEN_MIN_LEN, HtMechanism, HtTokenKey, ht_token_string};
    use crate::sasl::ChannelBindingType;

    #[test]
    fn names_round_trip() {
        for m in HtMechanism::ALL {
            assert_eq!(HtMechanism::from_name(m.name()), Some(m));
        }
        assert_eq!(HtMechanism::from_name("ht-sha-256-none"), None);
        assert_eq!(HtMechanism::from_name("HT-SHA-256-UNIQ"), None);
        assert_eq!(HtMechanism::from_name("SCRAM-SHA-256"), None);
    }

    #[test]
    fn binding_types() {
        assert_eq!(
            HtMechanism::Sha256Expr.channel_binding_type(),
            Some(ChannelBindingType::TlsExporter)
        );
        assert_eq!(
            HtMechanism::Sha256Endp.channel_binding_type(),
            Some(ChannelBindingType::TlsServerEndPoint)
        );
        assert_eq!(HtMechanism::Sha256None.channel_binding_type(), None);
    }

    #[test]
    fn token_strings_are_long_enough_to_store_hashed() {
        assert!(ht_token_string(&[7; 31]).is_err());
        let token = ht_token_string(&[7; 32]).unwrap();
        assert!(token.len() >= HT_TOKEN_MIN_LEN, "{token}");
        assert!(token.starts_with("secret-token:pipit-fast-"));
        assert!(token.bytes().all(|b| b.is_ascii_graphic()));
        assert!(HtTokenKey::from_token(&token).is_some());
        assert_ne!(token, ht_token_string(&[8; 32]).unwrap());
    }

    #[test]
    fn keys_need_long_tokens_and_32_byte_hashes() {
        assert!(HtTokenKey::from_token(&"x".repeat(64)).is_none());
        assert!(HtTokenKey::from_token(&"x".repeat(65)).is_some());
        assert!(HtTokenKey::from_stored(&[1; 31]).is_none());
        assert!(HtTokenKey::from_stored(&[1; 33]).is_none());
        let key = HtTokenKey::from_stored(&[1; 32]).unwrap();
        assert_eq!(key.as_bytes(), &[1; 32]);
        assert_eq!(format!("{key:?}"), "HtTokenKey(..)");
    }
}
