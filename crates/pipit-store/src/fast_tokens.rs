//! FAST tokens (XEP-0484) as stored, and the shape checks every backend shares: on write a
//! bad value is the caller's mistake ([`StoreError::InvalidFastToken`]), on read it is
//! damage ([`StoreError::Corrupt`]).

use std::fmt;

use crate::StoreError;

/// One unexpired FAST token of an account, as [`Store::fast_tokens`](crate::Store::fast_tokens)
/// returns it.
#[derive(Clone, PartialEq, Eq)]
pub struct FastToken {
    /// SHA-256 of the token string (`pipit_proto::sasl::HtTokenKey`); secret, never logged.
    pub token_hash: [u8; 32],
    /// The HT mechanism the token was issued for (XEP-0484 §3.4 binds it to that one).
    pub mechanism: String,
    /// When the token expires, in unix seconds (the caller's clock).
    pub expires_at: i64,
    /// The highest 0-RTT `count` accepted so far (XEP-0484 §3.4); 0 before the first.
    pub last_count: u64,
    /// The SASL2 user-agent id the token was issued to, if the client sent one.
    pub user_agent_id: Option<String>,
}

impl fmt::Debug for FastToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The hash authenticates like the token itself, so it stays out of logs.
        f.debug_struct("FastToken")
            .field("mechanism", &self.mechanism)
            .field("expires_at", &self.expires_at)
            .field("last_count", &self.last_count)
            .field("user_agent_id", &self.user_agent_id)
            .finish_non_exhaustive()
    }
}

/// Checks a token's mechanism name before it is written.
pub(crate) fn check_mechanism(mechanism: &str) -> Result<(), StoreError> {
    if mechanism.is_empty() {
        return Err(StoreError::InvalidFastToken("empty mechanism".into()));
    }
    Ok(())
}

/// Converts a 0-RTT count to the database's signed 64-bit integer.
pub(crate) fn count_to_db(count: u64) -> Result<i64, StoreError> {
    i64::try_from(count)
        .map_err(|_| StoreError::InvalidFastToken(format!("count {count} is out of range")))
}

/// Builds a [`FastToken`] from the column values read back; `who` names the account.
pub(crate) fn from_db(
    token_hash: Vec<u8>,
    mechanism: String,
    expires_at: i64,
    last_count: i64,
    user_agent_id: Option<String>,
    who: impl Fn() -> String,
) -> Result<FastToken, StoreError> {
    let len = token_hash.len();
    let token_hash = <[u8; 32]>::try_from(token_hash).map_err(|_| {
        StoreError::Corrupt(format!("{}: FAST token hash is {len} bytes, not 32", who()))
    })?;
    let last_count = u64::try_from(last_count).map_err(|_| {
        StoreError::Corrupt(format!(
            "{}: FAST token count {last_count} is negative",
            who()
        ))
    })?;
    Ok(FastToken {
        token_hash,
        mechanism,
        expires_at,
        last_count,
        user_agent_id,
    })
}

#[cfg(test)]
mod tests {
    use super::{FastToken, count_to_db, from_db};
    use crate::StoreError;

    #[test]
    fn debug_hides_the_hash() {
        let t = FastToken {
            token_hash: [0xab; 32],
            mechanism: "HT-SHA-256-NONE".into(),
            expires_at: 1,
            last_count: 0,
            user_agent_id: None,
        };
        let shown = format!("{t:?}");
        assert!(!shown.contains("171") && !shown.contains("ab"), "{shown}");
    }

    #[test]
    fn counts_fit_the_database() {
        assert_eq!(count_to_db(i64::MAX as u64).unwrap(), i64::MAX);
        assert!(matches!(
            count_to_db(i64::MAX as u64 + 1),
            Err(StoreError::InvalidFastToken(_))
        ));
    }

    #[test]
    fn bad_rows_are_corrupt() {
        let who = || "a@b".to_string();
        let short = from_db(vec![0; 31], "m".into(), 0, 0, None, who);
        assert!(matches!(short, Err(StoreError::Corrupt(_))));
        let negative = from_db(vec![0; 32], "m".into(), 0, -1, None, who);
        assert!(matches!(negative, Err(StoreError::Corrupt(_))));
    }
}
