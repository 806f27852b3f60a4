//! Channel-binding types (RFC 5929, RFC 9266) and what the caller knows about them.

/// A channel-binding type usable with the -PLUS mechanisms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChannelBindingType {
    /// `tls-exporter` (RFC 9266): 32 bytes of TLS 1.3 keying material.
    TlsExporter,
    /// `tls-server-end-point` (RFC 5929 §4): a hash of the server certificate.
    TlsServerEndPoint,
}

impl ChannelBindingType {
    /// The registered name, as sent in the gs2 header `p=<name>`.
    pub fn name(self) -> &'static str {
        match self {
            ChannelBindingType::TlsExporter => "tls-exporter",
            ChannelBindingType::TlsServerEndPoint => "tls-server-end-point",
        }
    }

    /// Looks a type up by its exact name.
    pub fn from_name(s: &str) -> Option<Self> {
        match s {
            "tls-exporter" => Some(ChannelBindingType::TlsExporter),
            "tls-server-end-point" => Some(ChannelBindingType::TlsServerEndPoint),
            _ => None,
        }
    }
}

/// What the server knows about channel binding on this connection, provided by the caller.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChannelBindingInfo {
    /// Whether -PLUS mechanisms were advertised; a client flag `y` then means a downgrade (RFC 5802 §6).
    pub plus_advertised: bool,
    /// Binding data per supported type, computed from the TLS session; absent = unsupported.
    pub data: Vec<(ChannelBindingType, Vec<u8>)>,
}

impl ChannelBindingInfo {
    /// The binding data for one type, if this connection supports it.
    pub fn get(&self, ty: ChannelBindingType) -> Option<&[u8]> {
        self.data
            .iter()
            .find(|(t, _)| *t == ty)
            .map(|(_, d)| d.as_slice())
    }
}

/// RFC 5929 §4.1: `tls-server-end-point` data is the hash of the server's certificate
/// (DER) with the hash of its signature algorithm, SHA-256 where that is MD5 or
/// SHA-1. `None` for algorithms the RFC does not cover (Ed25519), which rules this
/// binding type out. The server hashes its own certificate; a client the one it was
/// shown, and keeps it for a TLS 1.3 0-RTT login, where the resumed session's
/// certificate is not sent again (XEP-0484 with `HT-SHA-256-ENDP`).
pub fn end_point_hash(certificate: &[u8]) -> Option<Vec<u8>> {
    use sha2::{Digest, Sha256, Sha384, Sha512};
    use x509_parser::prelude::{FromDer, X509Certificate};
    let (_, cert) = X509Certificate::from_der(certificate).ok()?;
    let oid = cert.signature_algorithm.algorithm.to_id_string();
    match oid.as_str() {
        // ecdsa-with-SHA384, sha384WithRSAEncryption
        "1.2.840.10045.4.3.3" | "1.2.840.113549.1.1.12" => {
            Some(Sha384::digest(certificate).to_vec())
        }
        // ecdsa-with-SHA512, sha512WithRSAEncryption
        "1.2.840.10045.4.3.4" | "1.2.840.113549.1.1.13" => {
            Some(Sha512::digest(certificate).to_vec())
        }
        // ecdsa-with-SHA256, sha256WithRSAEncryption, RSASSA-PSS (SHA-256 params
        // in practice), and SHA-1/MD5 based ones, which the RFC maps to SHA-256.
        "1.2.840.10045.4.3.2"
        | "1.2.840.113549.1.1.11"
        | "1.2.840.113549.1.1.10"
        | "1.2.840.113549.1.1.5"
        | "1.2.840.113549.1.1.4"
        | "1.2.840.10045.4.1" => Some(Sha256::digest(certificate).to_vec()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::{ChannelBindingInfo, ChannelBindingType};

    #[test]
    fn names_round_trip() {
        for t in [
            ChannelBindingType::TlsExporter,
            ChannelBindingType::TlsServerEndPoint,
        ] {
            assert_eq!(ChannelBindingType::from_name(t.name()), Some(t));
        }
        assert_eq!(ChannelBindingType::from_name("tls-unique"), None);
    }

    #[test]
    fn get_finds_data_by_type() {
        let info = ChannelBindingInfo {
            plus_advertised: true,
            data: vec![(ChannelBindingType::TlsServerEndPoint, vec![1, 2])],
        };
        assert_eq!(
            info.get(ChannelBindingType::TlsServerEndPoint),
            Some(&[1, 2][..])
        );
        assert_eq!(info.get(ChannelBindingType::TlsExporter), None);
    }
}
