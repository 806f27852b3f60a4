//! SASL SCRAM Downgrade Protection (XEP-0474 v0.5.0, "SSDP"): the server puts a hash of
//! what it advertised into its server-first message as the optional attribute `h`
//! (RFC 5802 §5.1 and §7 allow extensions); the client recomputes it from what it saw.
//! The attribute is part of `AuthMessage`, so the SCRAM proof and the server signature
//! cover it: a man in the middle cannot strip mechanisms or channel-binding types from the
//! features without one side noticing (XEP-0474 §8).
//!
//! # Which list is hashed (and why FAST's HT-* mechanisms are not in it)
//! XEP-0474 §5.1 hashes "the list of SASL mechanisms … it advertised" for "the SASL
//! protocol the client uses for authentication": the `<mechanism/>` children of SASL1's
//! `<mechanisms/>` (RFC 6120 §6.4.1), or of SASL2's `<authentication/>` (XEP-0388 §2.1),
//! never both. FAST's HT-* mechanisms (XEP-0484 §3.1) are advertised elsewhere, inside the
//! `<fast/>` element under `<inline/>`, so they are not in that list and MUST NOT be
//! hashed. ejabberd 24.12 with mod_auth_fast hashed them too; Monal, go-sendxmpp and
//! Movim, which hash only the advertised list, saw a mismatch, reported a MITM and refused
//! to log in (processone/ejabberd#4331; ejabberd's fix removes them from the hash).
//! The caller therefore passes exactly the mechanism names it put in that one element,
//! for this stream, and the channel-binding types of XEP-0440's `<sasl-channel-binding/>`.
//!
//! The hashed string (XEP-0474 §5.1, sorting by "i;octet", i.e. byte order):
//! `sort(mechanisms).join(0x1E)`, then, only if XEP-0440 was advertised,
//! `0x1F + sort(channel_bindings).join(0x1E)`; hashed with the SCRAM mechanism's own hash
//! and sent in standard base64.

use super::hash::ScramHash;

/// Separates entries within a list (XEP-0474 §5.1).
const ENTRY_SEPARATOR: u8 = 0x1e;
/// Separates the mechanism list from the channel-binding list (XEP-0474 §5.1).
const LIST_SEPARATOR: u8 = 0x1f;

/// The advertised mechanisms and channel-binding types, as XEP-0474 §5.1 strings them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Advertised {
    /// The string `S` of XEP-0474 §5.1, before hashing.
    text: Vec<u8>,
}

impl Advertised {
    /// Strings together the advertised lists in XEP-0474 §5.1 order.
    ///
    /// An empty `channel_bindings` means XEP-0440's `<sasl-channel-binding/>` was not
    /// advertised (when it is, it has at least one child, XEP-0440 §2), so no 0x1F is added.
    pub(crate) fn new(mechanisms: &[&str], channel_bindings: &[&str]) -> Self {
        let mut text = join_sorted(mechanisms);
        if !channel_bindings.is_empty() {
            text.push(LIST_SEPARATOR);
            text.extend(join_sorted(channel_bindings));
        }
        Advertised { text }
    }

    /// The value of the `h` attribute, before base64: `H(S)`.
    pub(crate) fn digest(&self, hash: ScramHash) -> Vec<u8> {
        hash.h(&self.text)
    }
}

/// Sorts by octets (RFC 4790 §9.3 "i;octet", which is `str`'s order) and joins with 0x1E.
fn join_sorted(items: &[&str]) -> Vec<u8> {
    let mut sorted = items.to_vec();
    sorted.sort_unstable();
    let mut out = Vec::new();
    for (i, item) in sorted.iter().enumerate() {
        if i > 0 {
            out.push(ENTRY_SEPARATOR);
        }
        out.extend_from_slice(item.as_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD as BASE64;

    use super::{Advertised, ENTRY_SEPARATOR, LIST_SEPARATOR};
    use crate::sasl::hash::ScramHash;

    #[test]
    fn xep0474_example_hash() {
        // XEP-0474 §5.3: SHA-1 of
        // "SCRAM-SHA-1\x1eSCRAM-SHA-1-PLUS\x1ftls-exporter\x1etls-server-end-point".
        let a = Advertised::new(
            &["SCRAM-SHA-1-PLUS", "SCRAM-SHA-1"],
            &["tls-server-end-point", "tls-exporter"],
        );
        assert_eq!(
            a.text,
            b"SCRAM-SHA-1\x1eSCRAM-SHA-1-PLUS\x1ftls-exporter\x1etls-server-end-point"
        );
        assert_eq!(
            BASE64.encode(a.digest(ScramHash::Sha1)),
            "G6k/rBLDqgOhRRaCuuatSDFkJ08="
        );
    }

    #[test]
    fn without_xep0440_there_is_no_list_separator() {
        let a = Advertised::new(&["SCRAM-SHA-256", "PLAIN", "SCRAM-SHA-1"], &[]);
        assert_eq!(a.text, b"PLAIN\x1eSCRAM-SHA-1\x1eSCRAM-SHA-256");
        assert!(!a.text.contains(&LIST_SEPARATOR));
        assert_eq!(a.digest(ScramHash::Sha256).len(), 32);
    }

    #[test]
    fn sorting_is_by_octets_not_locale() {
        // Upper case sorts before lower case, '-' (0x2D) before '.' (0x2E).
        let a = Advertised::new(&["b", "B", "a.b", "a-b"], &[]);
        assert_eq!(a.text, b"B\x1ea-b\x1ea.b\x1eb");
        assert_eq!(a.text.iter().filter(|&&b| b == ENTRY_SEPARATOR).count(), 3);
    }

    #[test]
    fn a_stripped_mechanism_changes_the_hash() {
        let full = Advertised::new(&["SCRAM-SHA-256", "SCRAM-SHA-256-PLUS"], &["tls-exporter"]);
        let stripped = Advertised::new(&["SCRAM-SHA-256"], &["tls-exporter"]);
        let no_cb = Advertised::new(&["SCRAM-SHA-256", "SCRAM-SHA-256-PLUS"], &[]);
        let h = |a: &Advertised| a.digest(ScramHash::Sha256);
        assert_ne!(h(&full), h(&stripped));
        assert_ne!(h(&full), h(&no_cb));
    }
}
