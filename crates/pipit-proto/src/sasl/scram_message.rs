//! The four SCRAM messages (RFC 5802 §7): grammar only, no cryptography.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;

use super::error::SaslError;
use super::gs2::Gs2Header;
use super::saslname;

/// A parsed `client-first-message`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ClientFirst {
    /// The parsed GS2 header.
    pub(crate) gs2: Gs2Header,
    /// The GS2 header exactly as sent; it is echoed inside `c=` in the client-final message.
    pub(crate) gs2_text: String,
    /// `client-first-message-bare`, the first part of `AuthMessage`.
    pub(crate) bare: String,
    /// The `n=` username, unescaped but not yet SASLprep'd.
    pub(crate) username: String,
    /// The client nonce `r=`.
    pub(crate) nonce: String,
}

impl ClientFirst {
    /// Parses a client-first message; grammar errors are [`SaslError::MalformedRequest`].
    pub(crate) fn parse(msg: &str) -> Result<Self, SaslError> {
        if msg.contains('\0') {
            return Err(SaslError::malformed("NUL in client-first message"));
        }
        let (gs2, gs2_text, bare) = Gs2Header::split(msg)?;
        let mut fields = bare.split(',');
        let first = fields.next().unwrap_or_default();
        if first.starts_with("m=") {
            // RFC 5802 §5.1: a server that does not understand `m=` must fail.
            return Err(SaslError::malformed("mandatory extension not supported"));
        }
        let username = attr(first, b'n')
            .and_then(saslname::unescape)
            .ok_or_else(|| SaslError::malformed("bad username attribute"))?;
        let nonce = fields
            .next()
            .and_then(|f| attr(f, b'r'))
            .filter(|n| is_printable(n))
            .ok_or_else(|| SaslError::malformed("bad nonce attribute"))?;
        if !fields.all(is_extension) {
            return Err(SaslError::malformed("bad extension attribute"));
        }
        Ok(ClientFirst {
            gs2,
            gs2_text: gs2_text.to_owned(),
            bare: bare.to_owned(),
            username,
            nonce: nonce.to_owned(),
        })
    }
}

/// A `server-first-message`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ServerFirst {
    /// The combined nonce: client part then server part.
    pub(crate) nonce: String,
    /// The salt (sent base64-encoded).
    pub(crate) salt: Vec<u8>,
    /// The iteration count.
    pub(crate) iterations: u32,
    /// XEP-0474's `h` extension: the hash of the advertised mechanisms and channel-binding
    /// types, as sent (base64); the first `h=` on parsing.
    pub(crate) downgrade_hash: Option<String>,
}

impl ServerFirst {
    /// Formats the message as the server sends it; `h=` goes last, as in XEP-0474 §5.3.
    pub(crate) fn to_text(&self) -> String {
        let mut text = format!(
            "r={},s={},i={}",
            self.nonce,
            BASE64.encode(&self.salt),
            self.iterations
        );
        if let Some(hash) = &self.downgrade_hash {
            text.push_str(",h=");
            text.push_str(hash);
        }
        text
    }

    /// Parses the message on the client side; errors are [`SaslError::InvalidServerMessage`].
    pub(crate) fn parse(msg: &str) -> Result<Self, SaslError> {
        if msg.contains('\0') {
            return Err(SaslError::bad_server("NUL in server-first message"));
        }
        let mut fields = msg.split(',');
        let first = fields.next().unwrap_or_default();
        if first.starts_with("m=") {
            return Err(SaslError::bad_server("mandatory extension not supported"));
        }
        if let Some(error) = attr(first, b'e') {
            return Err(SaslError::ServerError(error.to_owned()));
        }
        let nonce = attr(first, b'r')
            .filter(|n| is_printable(n))
            .ok_or_else(|| SaslError::bad_server("bad nonce attribute"))?;
        let salt = fields
            .next()
            .and_then(|f| attr(f, b's'))
            .and_then(decode_base64)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| SaslError::bad_server("bad salt attribute"))?;
        let iterations = fields
            .next()
            .and_then(|f| attr(f, b'i'))
            .and_then(parse_posit_number)
            .ok_or_else(|| SaslError::bad_server("bad iteration count attribute"))?;
        let mut downgrade_hash = None;
        for field in fields {
            if !is_extension(field) {
                return Err(SaslError::bad_server("bad extension attribute"));
            }
            if downgrade_hash.is_none() {
                downgrade_hash = attr(field, b'h').map(str::to_owned);
            }
        }
        Ok(ServerFirst {
            nonce: nonce.to_owned(),
            salt,
            iterations,
            downgrade_hash,
        })
    }
}

/// A parsed `client-final-message`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ClientFinal {
    /// `client-final-message-without-proof`, the last part of `AuthMessage`.
    pub(crate) without_proof: String,
    /// The decoded `c=`: GS2 header followed by any channel-binding data.
    pub(crate) channel_binding: Vec<u8>,
    /// The combined nonce `r=`.
    pub(crate) nonce: String,
    /// The decoded `p=` ClientProof.
    pub(crate) proof: Vec<u8>,
}

impl ClientFinal {
    /// Formats `client-final-message-without-proof` from the `c=` input and the nonce.
    pub(crate) fn without_proof_text(channel_binding: &[u8], nonce: &str) -> String {
        format!("c={},r={nonce}", BASE64.encode(channel_binding))
    }

    /// Appends the proof to `client-final-message-without-proof`.
    pub(crate) fn with_proof_text(without_proof: &str, proof: &[u8]) -> String {
        format!("{without_proof},p={}", BASE64.encode(proof))
    }

    /// Parses the message on the server side; errors are [`SaslError::MalformedRequest`].
    pub(crate) fn parse(msg: &str) -> Result<Self, SaslError> {
        if msg.contains('\0') {
            return Err(SaslError::malformed("NUL in client-final message"));
        }
        // The proof is always the last attribute (RFC 5802 §7 `client-final-message`).
        let (without_proof, proof_field) = msg
            .rsplit_once(',')
            .ok_or_else(|| SaslError::malformed("missing proof"))?;
        let proof = attr(proof_field, b'p')
            .and_then(decode_base64)
            .ok_or_else(|| SaslError::malformed("bad proof attribute"))?;
        let mut fields = without_proof.split(',');
        let channel_binding = fields
            .next()
            .and_then(|f| attr(f, b'c'))
            .and_then(decode_base64)
            .ok_or_else(|| SaslError::malformed("bad channel-binding attribute"))?;
        let nonce = fields
            .next()
            .and_then(|f| attr(f, b'r'))
            .filter(|n| is_printable(n))
            .ok_or_else(|| SaslError::malformed("bad nonce attribute"))?;
        if !fields.all(is_extension) {
            return Err(SaslError::malformed("bad extension attribute"));
        }
        Ok(ClientFinal {
            without_proof: without_proof.to_owned(),
            channel_binding,
            nonce: nonce.to_owned(),
            proof,
        })
    }
}

/// A `server-final-message`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum ServerFinal {
    /// `v=`: the ServerSignature.
    Verifier(Vec<u8>),
    /// `e=`: the server's error value.
    Error(String),
}

impl ServerFinal {
    /// Formats the message as the server sends it.
    pub(crate) fn to_text(&self) -> String {
        match self {
            ServerFinal::Verifier(signature) => format!("v={}", BASE64.encode(signature)),
            ServerFinal::Error(value) => format!("e={value}"),
        }
    }

    /// Parses the message on the client side; errors are [`SaslError::InvalidServerMessage`].
    pub(crate) fn parse(msg: &str) -> Result<Self, SaslError> {
        if msg.contains('\0') {
            return Err(SaslError::bad_server("NUL in server-final message"));
        }
        let mut fields = msg.split(',');
        let first = fields.next().unwrap_or_default();
        let result = if let Some(value) = attr(first, b'e').filter(|v| !v.is_empty()) {
            ServerFinal::Error(value.to_owned())
        } else {
            let signature = attr(first, b'v')
                .and_then(decode_base64)
                .ok_or_else(|| SaslError::bad_server("bad verifier attribute"))?;
            ServerFinal::Verifier(signature)
        };
        if !fields.all(is_extension) {
            return Err(SaslError::bad_server("bad extension attribute"));
        }
        Ok(result)
    }
}

/// The value of `field` if it is the attribute `name=value`.
fn attr(field: &str, name: u8) -> Option<&str> {
    match field.as_bytes() {
        [n, b'=', ..] if *n == name => field.get(2..),
        _ => None,
    }
}

/// `attr-val = ALPHA "=" value` with a non-empty value; `,` and NUL are excluded already.
fn is_extension(field: &str) -> bool {
    matches!(field.as_bytes(), [a, b'=', _, ..] if a.is_ascii_alphabetic())
}

/// `printable = %x21-2B / %x2D-7E`, at least one (the nonce alphabet).
pub(crate) fn is_printable(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| (0x21..=0x7e).contains(&b) && b != b',')
}

/// `posit-number = %x31-39 *DIGIT`, within `u32`.
fn parse_posit_number(s: &str) -> Option<u32> {
    let valid = s.bytes().all(|b| b.is_ascii_digit()) && !s.starts_with('0');
    if valid { s.parse().ok() } else { None }
}

/// Strict, padded base64 (RFC 5802 §7 `base64`); the empty string decodes to nothing.
fn decode_base64(s: &str) -> Option<Vec<u8>> {
    BASE64.decode(s).ok()
}

#[cfg(test)]
mod tests {
    use super::{ClientFinal, ClientFirst, ServerFinal, ServerFirst, parse_posit_number};
    use crate::sasl::SaslError;

    #[test]
    fn client_first_accepts_extensions_and_escapes() {
        let m = ClientFirst::parse("n,,n=a=2Cb,r=abc,x=1,y=2").unwrap();
        assert_eq!(m.username, "a,b");
        assert_eq!(m.nonce, "abc");
        assert_eq!(m.bare, "n=a=2Cb,r=abc,x=1,y=2");
        assert_eq!(m.gs2_text, "n,,");
    }

    #[test]
    fn client_first_rejects_bad_attributes() {
        for bad in [
            "n,,m=ext,n=user,r=abc",
            "n,,n=user",
            "n,,n=user,r=",
            "n,,r=abc,n=user",
            "n,,n=,r=abc",
            "n,,n=us=er,r=abc",
            "n,,n=user,r=a b",
            "n,,n=user,r=abc,",
            "n,,n=user,r=abc,1=x",
            "n,,n=user,r=abc,x=",
            "n,,n=user,r=abc\0",
        ] {
            assert!(
                matches!(ClientFirst::parse(bad), Err(SaslError::MalformedRequest(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn server_first_round_trips() {
        let mut m = ServerFirst {
            nonce: "abcdef".into(),
            salt: vec![1, 2, 3],
            iterations: 4096,
            downgrade_hash: None,
        };
        assert_eq!(m.to_text(), "r=abcdef,s=AQID,i=4096");
        assert_eq!(ServerFirst::parse(&m.to_text()), Ok(m.clone()));
        m.downgrade_hash = Some("G6k/rBLDqgOhRRaCuuatSDFkJ08=".into());
        assert_eq!(
            m.to_text(),
            "r=abcdef,s=AQID,i=4096,h=G6k/rBLDqgOhRRaCuuatSDFkJ08="
        );
        assert_eq!(ServerFirst::parse(&m.to_text()), Ok(m));
    }

    #[test]
    fn server_first_takes_the_first_h_among_other_extensions() {
        let m = ServerFirst::parse("r=abc,s=AQID,i=1,x=1,h=Zmlyc3Q=,h=c2Vjb25k").unwrap();
        assert_eq!(m.downgrade_hash.as_deref(), Some("Zmlyc3Q="));
        assert_eq!(
            ServerFirst::parse("r=abc,s=AQID,i=1,x=1")
                .unwrap()
                .downgrade_hash,
            None
        );
        assert!(ServerFirst::parse("r=abc,s=AQID,i=1,h=").is_err());
    }

    #[test]
    fn server_first_rejects_bad_attributes() {
        for bad in [
            "",
            "r=abc",
            "r=abc,s=AQID",
            "r=abc,s=,i=1",
            "r=abc,s=AQI,i=1",
            "r=abc,s=AQID,i=0",
            "r=abc,s=AQID,i=01",
            "r=abc,s=AQID,i=-1",
            "r=abc,s=AQID,i=99999999999",
            "m=x,r=abc,s=AQID,i=1",
            "r=abc,i=1,s=AQID",
        ] {
            assert!(
                matches!(
                    ServerFirst::parse(bad),
                    Err(SaslError::InvalidServerMessage(_))
                ),
                "{bad:?}"
            );
        }
        assert_eq!(
            ServerFirst::parse("e=other-error"),
            Err(SaslError::ServerError("other-error".into()))
        );
    }

    #[test]
    fn client_final_splits_off_the_proof() {
        let m = ClientFinal::parse("c=biws,r=abc,x=ext,p=AQID").unwrap();
        assert_eq!(m.without_proof, "c=biws,r=abc,x=ext");
        assert_eq!(m.channel_binding, b"n,,");
        assert_eq!(m.nonce, "abc");
        assert_eq!(m.proof, [1, 2, 3]);
        for bad in [
            "",
            "p=AQID",
            "c=biws,p=AQID",
            "c=biws,r=abc",
            "r=abc,c=biws,p=AQID",
        ] {
            assert!(ClientFinal::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn server_final_variants() {
        assert_eq!(
            ServerFinal::parse("v=AQID"),
            Ok(ServerFinal::Verifier(vec![1, 2, 3]))
        );
        assert_eq!(
            ServerFinal::parse("e=invalid-proof"),
            Ok(ServerFinal::Error("invalid-proof".into()))
        );
        assert!(ServerFinal::parse("v=AQI").is_err());
        assert!(ServerFinal::parse("x=AQID").is_err());
        assert!(ServerFinal::parse("").is_err());
    }

    #[test]
    fn posit_numbers() {
        assert_eq!(parse_posit_number("4096"), Some(4096));
        assert_eq!(parse_posit_number("4294967295"), Some(u32::MAX));
        assert_eq!(parse_posit_number("4294967296"), None);
        assert_eq!(parse_posit_number(""), None);
        assert_eq!(parse_posit_number("+1"), None);
    }
}
