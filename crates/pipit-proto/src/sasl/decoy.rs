//! Stand-in credentials for unknown users, so that SCRAM does not reveal which accounts exist.

use std::fmt;

use super::credentials::{ScramKeys, StoredCredentials};
use super::hash::ScramHash;

/// Length of a decoy salt; the account store should use salts of this length too.
pub(crate) const DECOY_SALT_LEN: usize = 16;

/// Iteration count of decoy credentials unless the caller chooses another.
pub(crate) const DEFAULT_DECOY_ITERATIONS: u32 = 4096;

/// Domain separation for the decoy salt derivations.
const LABEL: &[u8] = b"pipit sasl decoy salt";

/// How to make up credentials for a user that does not exist.
#[derive(Clone)]
pub(crate) struct Decoy {
    /// A server secret; with it the decoy salt depends on the username only.
    secret: Option<Vec<u8>>,
    /// The iteration count to announce.
    iterations: u32,
}

impl Default for Decoy {
    fn default() -> Self {
        Decoy {
            secret: None,
            iterations: DEFAULT_DECOY_ITERATIONS,
        }
    }
}

impl fmt::Debug for Decoy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Decoy")
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .field("iterations", &self.iterations)
            .finish()
    }
}

impl Decoy {
    /// A decoy keyed by a server secret, announcing `iterations` (0 is taken as 1).
    pub(crate) fn with_secret(secret: &[u8], iterations: u32) -> Self {
        Decoy {
            secret: Some(secret.to_vec()),
            iterations: iterations.max(1),
        }
    }

    /// Deterministic fake credentials for `username`; no password matches them.
    ///
    /// Without a secret the salt is `SHA-256(label, username, nonce)`, so it is stable for the
    /// same inputs but changes with the nonce; with a secret it is `HMAC(secret, label, username)`,
    /// stable per username like a real account's salt.
    pub(crate) fn credentials(&self, username: &str, nonce: &str) -> StoredCredentials {
        let hash = ScramHash::Sha256;
        let mut salt = match &self.secret {
            Some(secret) => hash.hmac(secret, &[LABEL, username.as_bytes()].concat()),
            None => {
                // Length-prefix the username so ("ab", "c") and ("a", "bc") differ.
                let len = (username.len() as u64).to_be_bytes();
                let input = [LABEL, &len, username.as_bytes(), nonce.as_bytes()].concat();
                hash.h(&input)
            }
        };
        salt.truncate(DECOY_SALT_LEN);
        let keys = |hash: ScramHash| ScramKeys {
            stored_key: hash.h(&[&b"stored"[..], &salt].concat()),
            server_key: hash.h(&[&b"server"[..], &salt].concat()),
        };
        StoredCredentials {
            iterations: self.iterations,
            sha1: keys(ScramHash::Sha1),
            sha256: keys(ScramHash::Sha256),
            salt,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{DECOY_SALT_LEN, Decoy};

    #[test]
    fn deterministic_per_inputs() {
        let d = Decoy::default();
        assert_eq!(d.credentials("alice", "n1"), d.credentials("alice", "n1"));
        assert_ne!(
            d.credentials("alice", "n1").salt,
            d.credentials("bob", "n1").salt
        );
        assert_ne!(
            d.credentials("alice", "n1").salt,
            d.credentials("alice", "n2").salt
        );
        assert_ne!(d.credentials("ab", "c").salt, d.credentials("a", "bc").salt);
        assert_eq!(d.credentials("alice", "n1").salt.len(), DECOY_SALT_LEN);
        assert_eq!(d.credentials("alice", "n1").iterations, 4096);
    }

    #[test]
    fn secret_makes_salt_independent_of_nonce() {
        let d = Decoy::with_secret(b"server secret", 10_000);
        let a = d.credentials("alice", "n1");
        assert_eq!(a, d.credentials("alice", "n2"));
        assert_ne!(a.salt, d.credentials("bob", "n1").salt);
        assert_ne!(
            a.salt,
            Decoy::with_secret(b"other", 1)
                .credentials("alice", "n1")
                .salt
        );
        assert_eq!(a.iterations, 10_000);
        assert!(!format!("{d:?}").contains("server secret"));
    }
}
