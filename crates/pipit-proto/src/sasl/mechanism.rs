//! The SASL mechanism names Pipit offers (RFC 4616, RFC 5802, RFC 7677).

use super::hash::ScramHash;

/// A SASL mechanism, in server preference order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mechanism {
    /// `SCRAM-SHA-256-PLUS` (RFC 7677, with channel binding).
    ScramSha256Plus,
    /// `SCRAM-SHA-1-PLUS` (RFC 5802, with channel binding).
    ScramSha1Plus,
    /// `SCRAM-SHA-256` (RFC 7677).
    ScramSha256,
    /// `SCRAM-SHA-1` (RFC 5802).
    ScramSha1,
    /// `PLAIN` (RFC 4616).
    Plain,
}

impl Mechanism {
    /// Every mechanism, strongest first: the order to advertise them in.
    pub const ALL: [Mechanism; 5] = [
        Mechanism::ScramSha256Plus,
        Mechanism::ScramSha1Plus,
        Mechanism::ScramSha256,
        Mechanism::ScramSha1,
        Mechanism::Plain,
    ];

    /// The IANA-registered mechanism name.
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::ScramSha256Plus => "SCRAM-SHA-256-PLUS",
            Mechanism::ScramSha1Plus => "SCRAM-SHA-1-PLUS",
            Mechanism::ScramSha256 => "SCRAM-SHA-256",
            Mechanism::ScramSha1 => "SCRAM-SHA-1",
            Mechanism::Plain => "PLAIN",
        }
    }

    /// Looks a mechanism up by its exact (upper-case) name.
    pub fn from_name(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.name() == s)
    }

    /// Whether this is a channel-binding (-PLUS) mechanism.
    pub fn is_plus(self) -> bool {
        matches!(self, Mechanism::ScramSha256Plus | Mechanism::ScramSha1Plus)
    }

    /// Whether this is one of the SCRAM mechanisms.
    pub fn is_scram(self) -> bool {
        self.scram_hash().is_some()
    }

    /// The hash a SCRAM mechanism is built on; `None` for PLAIN.
    pub(crate) fn scram_hash(self) -> Option<ScramHash> {
        match self {
            Mechanism::ScramSha256Plus | Mechanism::ScramSha256 => Some(ScramHash::Sha256),
            Mechanism::ScramSha1Plus | Mechanism::ScramSha1 => Some(ScramHash::Sha1),
            Mechanism::Plain => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Mechanism;

    #[test]
    fn names_round_trip() {
        for m in Mechanism::ALL {
            assert_eq!(Mechanism::from_name(m.name()), Some(m));
        }
        assert_eq!(Mechanism::from_name("scram-sha-1"), None);
        assert_eq!(Mechanism::from_name("DIGEST-MD5"), None);
        assert_eq!(Mechanism::from_name(""), None);
    }

    #[test]
    fn plus_flags() {
        assert!(Mechanism::ScramSha256Plus.is_plus());
        assert!(Mechanism::ScramSha1Plus.is_plus());
        assert!(!Mechanism::ScramSha256.is_plus());
        assert!(!Mechanism::Plain.is_plus());
        assert!(!Mechanism::Plain.is_scram());
        assert!(Mechanism::ScramSha1.is_scram());
    }
}
