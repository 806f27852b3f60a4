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
