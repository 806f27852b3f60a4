//! The PLAIN mechanism (RFC 4616): `[authzid] NUL authcid NUL passwd`.

use std::fmt;

use super::credentials::StoredCredentials;
use super::decoy::Decoy;
use super::error::SaslError;
use super::prep::saslprep;

/// Builds a PLAIN initial response; the server applies SASLprep, so the parts go as given.
///
/// An empty `authzid` is the same as none on the wire.
pub fn plain_initial_response(authzid: Option<&str>, username: &str, password: &str) -> Vec<u8> {
    let authzid = authzid.unwrap_or_default();
    let mut out = Vec::with_capacity(authzid.len() + username.len() + password.len() + 2);
    out.extend_from_slice(authzid.as_bytes());
    out.push(0);
    out.extend_from_slice(username.as_bytes());
    out.push(0);
    out.extend_from_slice(password.as_bytes());
    out
}

/// A parsed PLAIN message, waiting for the account's credentials.
#[derive(Clone)]
pub(crate) struct PlainRequest {
    /// The authorization identity, reported as sent (RFC 4616 does not prepare it).
    pub(crate) authzid: Option<String>,
    /// The authentication identity after SASLprep.
    pub(crate) username: String,
    /// The password after SASLprep.
    password: String,
}

impl fmt::Debug for PlainRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PlainRequest")
            .field("authzid", &self.authzid)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

impl PlainRequest {
    /// Parses the message (RFC 4616 §2) and SASLpreps the authcid and password.
    ///
    /// Grammar errors are [`SaslError::MalformedRequest`]; a part that SASLprep rejects fails
    /// verification (RFC 4616 §4), which is [`SaslError::NotAuthorized`].
    pub(crate) fn parse(data: &[u8]) -> Result<Self, SaslError> {
        let msg = std::str::from_utf8(data).map_err(|_| SaslError::IncorrectEncoding)?;
        let mut parts = msg.split('\0');
        let (Some(authzid), Some(authcid), Some(passwd), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(SaslError::malformed(
                "PLAIN needs exactly two NUL separators",
            ));
        };
        if authcid.is_empty() {
            return Err(SaslError::malformed("empty PLAIN authcid"));
        }
        if passwd.is_empty() {
            return Err(SaslError::malformed("empty PLAIN password"));
        }
        Ok(PlainRequest {
            authzid: (!authzid.is_empty()).then(|| authzid.to_owned()),
            username: saslprep(authcid).ok_or(SaslError::NotAuthorized)?,
            password: saslprep(passwd).ok_or(SaslError::NotAuthorized)?,
        })
    }

    /// Checks the password; an unknown user costs the same PBKDF2 work and then fails.
    pub(crate) fn verify(&self, creds: Option<&StoredCredentials>, decoy: &Decoy) -> bool {
        match creds {
            Some(creds) => creds.verify_prepared(&self.password),
            None => {
                let decoy = decoy.credentials(&self.username, "");
                std::hint::black_box(decoy.verify_prepared(&self.password));
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{PlainRequest, plain_initial_response};
    use crate::sasl::SaslError;

    #[test]
    fn parses_with_and_without_authzid() {
        let r = PlainRequest::parse(b"\0user\0pencil").unwrap();
        assert_eq!((r.authzid, r.username.as_str()), (None, "user"));
        let r = PlainRequest::parse(b"user@example.com\0user\0pencil").unwrap();
        assert_eq!(r.authzid.as_deref(), Some("user@example.com"));
        assert_eq!(r.password, "pencil");
    }

    #[test]
    fn builds_what_it_parses() {
        assert_eq!(plain_initial_response(None, "user", "pw"), b"\0user\0pw");
        assert_eq!(
            plain_initial_response(Some(""), "user", "pw"),
            b"\0user\0pw"
        );
        assert_eq!(
            plain_initial_response(Some("a@b"), "user", "pw"),
            b"a@b\0user\0pw"
        );
    }

    #[test]
    fn rejects_malformed_messages() {
        for bad in [
            &b""[..],
            b"\0",
            b"\0\0",
            b"user\0pencil",
            b"\0\0pencil",
            b"\0user\0",
            b"\0user\0pen\0cil",
            b"\0user\0pencil\0",
            b"\0\0user\0pencil",
            b"userpencil",
        ] {
            assert!(
                matches!(
                    PlainRequest::parse(bad),
                    Err(SaslError::MalformedRequest(_))
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn invalid_utf8_is_incorrect_encoding() {
        assert_eq!(
            PlainRequest::parse(b"\0us\xffer\0pencil").unwrap_err(),
            SaslError::IncorrectEncoding
        );
        assert_eq!(
            PlainRequest::parse(b"\0user\0\xc3").unwrap_err(),
            SaslError::IncorrectEncoding
        );
    }

    #[test]
    fn saslprep_applies_to_authcid_and_password() {
        let r = PlainRequest::parse("\0us\u{00AD}er\0pen\u{00AD}cil".as_bytes()).unwrap();
        assert_eq!(
            (r.username.as_str(), r.password.as_str()),
            ("user", "pencil")
        );
        // A prohibited character, or nothing left after mapping, fails verification.
        for bad in [
            "\0us\u{0007}er\0pencil",
            "\0user\0\u{00AD}",
            "\0\u{00AD}\0pencil",
        ] {
            assert_eq!(
                PlainRequest::parse(bad.as_bytes()).unwrap_err(),
                SaslError::NotAuthorized,
                "{bad:?}"
            );
        }
    }
}
