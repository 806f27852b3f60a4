//! The hash functions SCRAM runs over (RFC 5802 §2.2, RFC 7677) and its key schedule (§3).

use hmac::Mac;
use hmac::digest::KeyInit;
use sha2::Digest;

use super::credentials::ScramKeys;

/// The hash a SCRAM mechanism is built on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ScramHash {
    /// SHA-1 (SCRAM-SHA-1, RFC 5802).
    Sha1,
    /// SHA-256 (SCRAM-SHA-256, RFC 7677).
    Sha256,
}

impl ScramHash {
    /// `H(data)`.
    pub(crate) fn h(self, data: &[u8]) -> Vec<u8> {
        match self {
            ScramHash::Sha1 => sha1::Sha1::digest(data).to_vec(),
            ScramHash::Sha256 => sha2::Sha256::digest(data).to_vec(),
        }
    }

    /// `HMAC(key, data)`.
    pub(crate) fn hmac(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        match self {
            ScramHash::Sha1 => hmac_with::<hmac::Hmac<sha1::Sha1>>(key, data),
            ScramHash::Sha256 => hmac_with::<hmac::Hmac<sha2::Sha256>>(key, data),
        }
    }

    /// `Hi(password, salt, i)`: PBKDF2 with HMAC and one output block.
    pub(crate) fn hi(self, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
        let mut out = vec![0; self.output_len()];
        match self {
            ScramHash::Sha1 => {
                pbkdf2::pbkdf2_hmac::<sha1::Sha1>(password, salt, iterations, &mut out)
            }
            ScramHash::Sha256 => {
                pbkdf2::pbkdf2_hmac::<sha2::Sha256>(password, salt, iterations, &mut out)
            }
        }
        out
    }

    /// The digest size in bytes.
    pub(crate) fn output_len(self) -> usize {
        match self {
            ScramHash::Sha1 => 20,
            ScramHash::Sha256 => 32,
        }
    }

    /// From `SaltedPassword`, computes `ClientKey` and the keys a server stores.
    pub(crate) fn keys(self, salted_password: &[u8]) -> (Vec<u8>, ScramKeys) {
        let client_key = self.hmac(salted_password, b"Client Key");
        let keys = ScramKeys {
            stored_key: self.h(&client_key),
            server_key: self.hmac(salted_password, b"Server Key"),
        };
        (client_key, keys)
    }
}

/// Byte-wise XOR of two equally long strings (`ClientKey XOR ClientSignature`).
pub(crate) fn xor(a: &[u8], b: &[u8]) -> Vec<u8> {
    a.iter().zip(b).map(|(x, y)| x ^ y).collect()
}

fn hmac_with<M: Mac + KeyInit>(key: &[u8], data: &[u8]) -> Vec<u8> {
    // HMAC accepts keys of any length (RFC 2104 §2), so this cannot fail; if it ever did, an
    // empty MAC makes every later comparison fail closed rather than panic.
    let Ok(mut mac) = <M as KeyInit>::new_from_slice(key) else {
        return Vec::new();
    };
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

#[cfg(test)]
mod tests {
    use super::ScramHash;

    #[test]
    fn hi_matches_rfc6070_pbkdf2_sha1_vector() {
        // RFC 6070 §2, test case 2.
        let out = ScramHash::Sha1.hi(b"password", b"salt", 2);
        assert_eq!(
            out,
            [
                0xea, 0x6c, 0x01, 0x4d, 0xc7, 0x2d, 0x6f, 0x8c, 0xcd, 0x1e, 0xd9, 0x2a, 0xce, 0x1d,
                0x41, 0xf0, 0xd8, 0xde, 0x89, 0x57
            ]
        );
    }

    #[test]
    fn output_lengths() {
        for h in [ScramHash::Sha1, ScramHash::Sha256] {
            assert_eq!(h.h(b"x").len(), h.output_len());
            assert_eq!(h.hmac(b"", b"x").len(), h.output_len());
            assert_eq!(h.hi(b"p", b"s", 1).len(), h.output_len());
        }
    }
}
