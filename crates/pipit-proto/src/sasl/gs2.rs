//! The GS2 header that opens a SCRAM client-first message (RFC 5802 §7, RFC 5801 §4).

use super::error::SaslError;
use super::saslname;

/// The `gs2-cbind-flag`: what the client says about channel binding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum CbindFlag {
    /// `n`: the client does not support channel binding.
    NotSupported,
    /// `y`: the client supports it but thinks the server does not.
    ClientOnly,
    /// `p=<name>`: the client binds to this channel-binding type.
    Bound(String),
}

/// A parsed `gs2-header`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Gs2Header {
    /// The channel-binding flag.
    pub(crate) flag: CbindFlag,
    /// The unescaped authorization identity, if the client sent `a=`.
    pub(crate) authzid: Option<String>,
}

impl Gs2Header {
    /// Splits a client-first message into its header, the header's exact text, and the bare part.
    pub(crate) fn split(msg: &str) -> Result<(Gs2Header, &str, &str), SaslError> {
        let missing = || SaslError::malformed("missing gs2 header");
        let (flag_text, rest) = msg.split_once(',').ok_or_else(missing)?;
        let (authz_text, bare) = rest.split_once(',').ok_or_else(missing)?;
        let flag = match flag_text {
            "n" => CbindFlag::NotSupported,
            "y" => CbindFlag::ClientOnly,
            other => match other.strip_prefix("p=") {
                Some(name) if is_cb_name(name) => CbindFlag::Bound(name.to_owned()),
                _ => return Err(SaslError::malformed("bad gs2-cbind-flag")),
            },
        };
        let authzid = if authz_text.is_empty() {
            None
        } else {
            let escaped = authz_text
                .strip_prefix("a=")
                .ok_or_else(|| SaslError::malformed("bad gs2 authzid field"))?;
            Some(saslname::unescape(escaped).ok_or(SaslError::InvalidAuthzid)?)
        };
        // Both separators are ASCII commas, so this is a char boundary.
        let header_text = msg
            .get(..flag_text.len() + authz_text.len() + 2)
            .ok_or_else(missing)?;
        Ok((Gs2Header { flag, authzid }, header_text, bare))
    }

    /// Formats the header, trailing comma included, exactly as it goes on the wire.
    pub(crate) fn to_text(&self) -> String {
        let mut out = match &self.flag {
            CbindFlag::NotSupported => "n,".to_owned(),
            CbindFlag::ClientOnly => "y,".to_owned(),
            CbindFlag::Bound(name) => format!("p={name},"),
        };
        if let Some(authzid) = &self.authzid {
            out.push_str("a=");
            out.push_str(&saslname::escape(authzid));
        }
        out.push(',');
        out
    }
}

/// `cb-name = 1*(ALPHA / DIGIT / "." / "-")` (RFC 5802 §7).
fn is_cb_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::{CbindFlag, Gs2Header};
    use crate::sasl::SaslError;

    #[test]
    fn splits_the_three_flags() {
        let (h, text, bare) = Gs2Header::split("n,,n=user,r=abc").unwrap();
        assert_eq!(h.flag, CbindFlag::NotSupported);
        assert_eq!(h.authzid, None);
        assert_eq!((text, bare), ("n,,", "n=user,r=abc"));

        let (h, text, _) = Gs2Header::split("y,,n=user,r=abc").unwrap();
        assert_eq!(h.flag, CbindFlag::ClientOnly);
        assert_eq!(text, "y,,");

        let (h, text, _) = Gs2Header::split("p=tls-exporter,a=a=2Cb,n=u,r=x").unwrap();
        assert_eq!(h.flag, CbindFlag::Bound("tls-exporter".into()));
        assert_eq!(h.authzid.as_deref(), Some("a,b"));
        assert_eq!(text, "p=tls-exporter,a=a=2Cb,");
        assert_eq!(h.to_text(), text);
    }

    #[test]
    fn rejects_bad_headers() {
        for bad in [
            "",
            "n",
            "n,",
            "x,,n=u,r=x",
            "p=,,n=u",
            "p=a_b,,n=u",
            "N,,n=u",
            "n,b=x,n=u",
        ] {
            assert!(
                matches!(Gs2Header::split(bad), Err(SaslError::MalformedRequest(_))),
                "{bad:?}"
            );
        }
        assert_eq!(
            Gs2Header::split("n,a=,n=u,r=x"),
            Err(SaslError::InvalidAuthzid)
        );
        assert_eq!(
            Gs2Header::split("n,a=x=41,n=u,r=x"),
            Err(SaslError::InvalidAuthzid)
        );
    }
}
