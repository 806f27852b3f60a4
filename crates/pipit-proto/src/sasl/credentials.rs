//! What the server stores for an account: salted SCRAM keys, never the password.

/// The SCRAM keys for one hash function (RFC 5802 §3).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScramKeys {
    /// `StoredKey := H(ClientKey)`.
    pub stored_key: Vec<u8>,
    /// `ServerKey := HMAC(SaltedPassword, "Server Key")`.
    pub server_key: Vec<u8>,
}

/// Credentials for one account: SCRAM keys for SHA-1 and SHA-256 sharing one salt
/// and iteration count. PLAIN is verified against these too.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredCredentials {
    /// The random salt used for both hashes.
    pub salt: Vec<u8>,
    /// The PBKDF2 iteration count (`i=` in SCRAM).
    pub iterations: u32,
    /// Keys for SCRAM-SHA-1(-PLUS).
    pub sha1: ScramKeys,
    /// Keys for SCRAM-SHA-256(-PLUS).
    pub sha256: ScramKeys,
}
