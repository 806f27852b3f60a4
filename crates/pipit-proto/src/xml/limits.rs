//! Resource limits that bound the memory one stream can make the parser hold.

/// Bounds enforced by [`StreamParser`](super::StreamParser), each checked as soon as the
/// offending byte is seen, so an incomplete element cannot grow without bound.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Bytes of one top-level element from its `<` to the end of its end tag (default
    /// 256 KiB). Also bounds a run of whitespace between top-level elements.
    pub max_element_bytes: usize,
    /// Nesting depth inside a top-level element, counting the element itself (default 32).
    pub max_depth: usize,
    /// Attributes per start tag, namespace declarations included (default 64).
    pub max_attributes: usize,
    /// Bytes of a stream header including any byte-order mark, whitespace and XML
    /// declaration before it (default 8 KiB).
    pub max_header_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_element_bytes: 256 * 1024,
            max_depth: 32,
            max_attributes: 64,
            max_header_bytes: 8 * 1024,
        }
    }
}
