//! Shape checks on [`StoredCredentials`], shared by every backend: on write a bad shape
//! is the caller's mistake ([`StoreError::InvalidCredentials`]), on read it is damage
//! ([`StoreError::Corrupt`]).

use pipit_proto::sasl::StoredCredentials;

use crate::StoreError;

/// SHA-1 output size: `StoredKey` and `ServerKey` for SCRAM-SHA-1 (RFC 5802 §3).
const SHA1_LEN: usize = 20;
/// SHA-256 output size: the keys for SCRAM-SHA-256 (RFC 7677).
const SHA256_LEN: usize = 32;

/// Describes what is wrong with `creds`, if anything.
fn problem(creds: &StoredCredentials) -> Option<String> {
    if creds.salt.is_empty() {
        return Some("empty salt".into());
    }
    if creds.iterations == 0 {
        return Some("zero iterations".into());
    }
    let keys = [
        ("sha1 stored key", &creds.sha1.stored_key, SHA1_LEN),
        ("sha1 server key", &creds.sha1.server_key, SHA1_LEN),
        ("sha256 stored key", &creds.sha256.stored_key, SHA256_LEN),
        ("sha256 server key", &creds.sha256.server_key, SHA256_LEN),
    ];
    keys.into_iter()
        .find(|(_, key, len)| key.len() != *len)
        .map(|(name, key, len)| format!("{name} is {} bytes, not {len}", key.len()))
}

/// Checks credentials before they are written.
pub(crate) fn check_for_write(creds: &StoredCredentials) -> Result<(), StoreError> {
    match problem(creds) {
        Some(p) => Err(StoreError::InvalidCredentials(p)),
        None => Ok(()),
    }
}

/// Checks credentials just read back; `who` names the account in the error.
pub(crate) fn check_read(
    creds: StoredCredentials,
    who: impl FnOnce() -> String,
) -> Result<StoredCredentials, StoreError> {
    match problem(&creds) {
        Some(p) => Err(StoreError::Corrupt(format!("{}: {p}", who()))),
        None => Ok(creds),
    }
}

/// Converts an iteration count as stored (a 64-bit integer column) back to `u32`.
pub(crate) fn iterations_from_db(
    value: i64,
    who: impl FnOnce() -> String,
) -> Result<u32, StoreError> {
    u32::try_from(value).map_err(|_| {
        StoreError::Corrupt(format!("{}: iteration count {value} out of range", who()))
    })
}

#[cfg(test)]
mod tests {
    use pipit_proto::sasl::ScramKeys;

    use super::*;

    fn good() -> StoredCredentials {
        StoredCredentials {
            salt: vec![1; 16],
            iterations: 4096,
            sha1: ScramKeys {
                stored_key: vec![2; 20],
                server_key: vec![3; 20],
            },
            sha256: ScramKeys {
                stored_key: vec![4; 32],
                server_key: vec![5; 32],
            },
        }
    }

    #[test]
    fn accepts_well_formed() {
        assert!(check_for_write(&good()).is_ok());
        assert_eq!(check_read(good(), String::new).unwrap(), good());
    }

    #[test]
    fn rejects_each_bad_field() {
        let mut bad = Vec::new();
        let mut c = good();
        c.salt.clear();
        bad.push(c);
        let mut c = good();
        c.iterations = 0;
        bad.push(c);
        let mut c = good();
        c.sha1.stored_key.pop();
        bad.push(c);
        let mut c = good();
        c.sha1.server_key.push(0);
        bad.push(c);
        let mut c = good();
        c.sha256.stored_key = vec![0; 20];
        bad.push(c);
        let mut c = good();
        c.sha256.server_key.clear();
        bad.push(c);
        for c in bad {
            assert!(
                matches!(check_for_write(&c), Err(StoreError::InvalidCredentials(_))),
                "{c:?}"
            );
            assert!(matches!(
                check_read(c, || "x".into()),
                Err(StoreError::Corrupt(_))
            ));
        }
    }

    #[test]
    fn iterations_range() {
        assert_eq!(
            iterations_from_db(i64::from(u32::MAX), String::new).unwrap(),
            u32::MAX
        );
        assert!(matches!(
            iterations_from_db(-1, String::new),
            Err(StoreError::Corrupt(_))
        ));
        assert!(matches!(
            iterations_from_db(1 << 32, String::new),
            Err(StoreError::Corrupt(_))
        ));
    }
}
