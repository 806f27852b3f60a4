//! What the server stores for an account: salted SCRAM keys, never the password.

use super::error::SaslError;
use super::hash::ScramHash;
use super::prep::saslprep;

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

impl StoredCredentials {
    /// Derives both SHA-1 and SHA-256 keys from a password, SASLprep'd (RFC 5802 §2.2, RFC 4013).
    ///
    /// Fails with [`SaslError::SaslPrep`] if SASLprep rejects the password or leaves it empty,
    /// and with [`SaslError::Internal`] for an empty salt or zero iterations.
    pub fn derive(password: &str, salt: &[u8], iterations: u32) -> Result<Self, SaslError> {
        if salt.is_empty() {
            return Err(SaslError::Internal("empty salt"));
        }
        if iterations == 0 {
            return Err(SaslError::Internal("zero iteration count"));
        }
        let password = saslprep(password).ok_or(SaslError::SaslPrep)?;
        let keys = |hash: ScramHash| hash.keys(&hash.hi(password.as_bytes(), salt, iterations)).1;
        Ok(StoredCredentials {
            salt: salt.to_vec(),
            iterations,
            sha1: keys(ScramHash::Sha1),
            sha256: keys(ScramHash::Sha256),
        })
    }

    /// Checks a PLAIN password against the stored SHA-256 keys (constant-time compare).
    pub fn verify_password(&self, password: &str) -> bool {
        saslprep(password).is_some_and(|p| self.verify_prepared(&p))
    }

    /// [`verify_password`](Self::verify_password) for an already SASLprep'd password.
    pub(crate) fn verify_prepared(&self, password: &str) -> bool {
        use subtle::ConstantTimeEq;
        let hash = ScramHash::Sha256;
        let salted = hash.hi(password.as_bytes(), &self.salt, self.iterations);
        let (_, keys) = hash.keys(&salted);
        bool::from(keys.stored_key.ct_eq(&self.sha256.stored_key))
    }

    /// XEP-0480 §3: credentials from the SaltedPassword (RFC 5802 §3) of each hash,
    /// which a client computed for a new salt and iteration count: the server never
    /// sees the password. `None` when a SaltedPassword has the wrong length.
    pub(crate) fn from_salted(
        salt: &[u8],
        iterations: u32,
        sha1: &[u8],
        sha256: &[u8],
    ) -> Option<Self> {
        let keys = |hash: ScramHash, salted: &[u8]| {
            (salted.len() == hash.output_len()).then(|| hash.keys(salted).1)
        };
        Some(StoredCredentials {
            salt: salt.to_vec(),
            iterations,
            sha1: keys(ScramHash::Sha1, sha1)?,
            sha256: keys(ScramHash::Sha256, sha256)?,
        })
    }

    /// The keys for one SCRAM hash.
    pub(crate) fn keys(&self, hash: ScramHash) -> &ScramKeys {
        match hash {
            ScramHash::Sha1 => &self.sha1,
            ScramHash::Sha256 => &self.sha256,
        }
    }
}

/// XEP-0480 §3 SCRAM upgrade tasks by name, in the order a server runs them: one
/// per hash whose keys Pipit keeps (task names drop `-PLUS`, XEP-0480 §2.1).
pub(crate) const SCRAM_UPGRADE_TASKS: [(&str, ScramHash); 2] = [
    ("UPGR-SCRAM-SHA-1", ScramHash::Sha1),
    ("UPGR-SCRAM-SHA-256", ScramHash::Sha256),
];

/// RFC 5802 §3 `SaltedPassword := Hi(Normalize(password), salt, i)`: what a client
/// answers an XEP-0480 SCRAM upgrade task with.
pub(crate) fn salted_password(
    hash: ScramHash,
    password: &str,
    salt: &[u8],
    iterations: u32,
) -> Result<Vec<u8>, SaslError> {
    if salt.is_empty() || iterations == 0 {
        return Err(SaslError::Internal("empty salt or zero iteration count"));
    }
    let password = saslprep(password).ok_or(SaslError::SaslPrep)?;
    Ok(hash.hi(password.as_bytes(), salt, iterations))
}

#[cfg(test)]
mod tests {
    use super::StoredCredentials;
    use crate::sasl::SaslError;

    #[test]
    fn verifies_the_right_password_only() {
        let creds = StoredCredentials::derive("pencil", b"salt", 16).unwrap();
        assert!(creds.verify_password("pencil"));
        assert!(!creds.verify_password("pencil "));
        assert!(!creds.verify_password("Pencil"));
        assert!(!creds.verify_password(""));
        assert!(!creds.verify_password("\u{0007}"));
    }

    #[test]
    fn saslprep_makes_soft_hyphen_irrelevant() {
        let a = StoredCredentials::derive("pass\u{00AD}word", b"salt", 16).unwrap();
        let b = StoredCredentials::derive("password", b"salt", 16).unwrap();
        assert_eq!(a, b);
        assert!(b.verify_password("pass\u{00AD}word"));
        assert!(a.verify_password("password"));
        // U+2168 ROMAN NUMERAL NINE normalizes to "IX" under NFKC.
        let c = StoredCredentials::derive("\u{2168}", b"salt", 16).unwrap();
        assert!(c.verify_password("IX"));
    }

    #[test]
    fn derive_rejects_bad_input() {
        assert_eq!(
            StoredCredentials::derive("a\u{0007}", b"salt", 16),
            Err(SaslError::SaslPrep)
        );
        assert_eq!(
            StoredCredentials::derive("\u{00AD}", b"salt", 16),
            Err(SaslError::SaslPrep)
        );
        assert!(matches!(
            StoredCredentials::derive("pw", b"", 16),
            Err(SaslError::Internal(_))
        ));
        assert!(matches!(
            StoredCredentials::derive("pw", b"salt", 0),
            Err(SaslError::Internal(_))
        ));
    }

    #[test]
    fn keys_have_digest_lengths() {
        let creds = StoredCredentials::derive("pw", b"salt", 1).unwrap();
        assert_eq!(creds.sha1.stored_key.len(), 20);
        assert_eq!(creds.sha1.server_key.len(), 20);
        assert_eq!(creds.sha256.stored_key.len(), 32);
        assert_eq!(creds.sha256.server_key.len(), 32);
    }
}

#[cfg(test)]
mod upgrade_tests {
    use super::*;

    #[test]
    fn keys_from_salted_passwords_match_keys_from_the_password() {
        let salted = |hash| salted_password(hash, "pencil", b"new-salt", 8192).unwrap();
        let upgraded = StoredCredentials::from_salted(
            b"new-salt",
            8192,
            &salted(ScramHash::Sha1),
            &salted(ScramHash::Sha256),
        );
        let derived = StoredCredentials::derive("pencil", b"new-salt", 8192).unwrap();
        assert_eq!(upgraded, Some(derived));
        // A SaltedPassword of the wrong length is refused, not truncated.
        let short = StoredCredentials::from_salted(b"s", 1, &[0; 19], &[0; 32]);
        assert_eq!(short, None);
        assert!(salted_password(ScramHash::Sha1, "pencil", b"", 1).is_err());
    }
}
