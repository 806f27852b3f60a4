//! The element tree: what a stanza or nonza looks like once parsed, and how it is written.

use std::fmt;

use super::escape::{escape_attr, escape_text};
use super::ns;

/// An XML element with its resolved namespace, attributes and children.
///
/// Attribute keys are the plain name for unprefixed attributes, `xml:name` for the
/// predefined `xml` prefix (e.g. `xml:lang`), and `{namespace-uri}name` for attributes in
/// any other namespace. Namespace declarations are never attributes: they are derived
/// from `ns` when the element is written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Element {
    name: String,
    ns: String,
    attrs: Vec<(String, String)>,
    nodes: Vec<Node>,
}

/// A child of an [`Element`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Node {
    /// A child element.
    Element(Element),
    /// Character data (entities decoded, CDATA sections included, adjacent runs merged).
    Text(String),
}

impl Element {
    /// Creates an element with local `name` in namespace `ns` ("" for none).
    pub fn new(name: impl Into<String>, ns: impl Into<String>) -> Self {
        Element {
            name: name.into(),
            ns: ns.into(),
            attrs: Vec::new(),
            nodes: Vec::new(),
        }
    }

    /// Creates an element from parsed parts; attribute keys are already resolved and unique.
    pub(super) fn from_parts(name: String, ns: String, attrs: Vec<(String, String)>) -> Self {
        Element {
            name,
            ns,
            attrs,
            nodes: Vec::new(),
        }
    }

    /// Builder: sets attribute `name` (replacing any previous value).
    pub fn with_attr(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.set_attr(name, value);
        self
    }

    /// Builder: appends a child element.
    pub fn with_child(mut self, child: Element) -> Self {
        self.append_child(child);
        self
    }

    /// Builder: appends character data.
    pub fn with_text(mut self, text: impl Into<String>) -> Self {
        self.append_text(text);
        self
    }

    /// The local name (without prefix).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The resolved namespace URI, "" if the element is in no namespace.
    pub fn ns(&self) -> &str {
        &self.ns
    }

    /// Whether this element has local name `name` in namespace `ns`.
    pub fn is(&self, name: &str, ns: &str) -> bool {
        self.name == name && self.ns == ns
    }

    /// The value of attribute `name` (see the type docs for key forms).
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Sets attribute `name`, replacing its value if present, else appending it.
    pub fn set_attr(&mut self, name: impl Into<String>, value: impl Into<String>) {
        let name = name.into();
        let value = value.into();
        match self.attrs.iter_mut().find(|(k, _)| *k == name) {
            Some((_, v)) => *v = value,
            None => self.attrs.push((name, value)),
        }
    }

    /// Removes attribute `name`, returning its value if it was present.
    pub fn remove_attr(&mut self, name: &str) -> Option<String> {
        let index = self.attrs.iter().position(|(k, _)| k == name)?;
        Some(self.attrs.remove(index).1)
    }

    /// All attributes as `(key, value)`, in document (or insertion) order.
    pub fn attrs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.attrs.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// All children, elements and text, in order.
    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    /// The child elements, skipping text.
    pub fn children(&self) -> impl Iterator<Item = &Element> {
        self.nodes.iter().filter_map(|node| match node {
            Node::Element(e) => Some(e),
            Node::Text(_) => None,
        })
    }

    /// The first child element with local name `name` in namespace `ns`.
    pub fn get_child(&self, name: &str, ns: &str) -> Option<&Element> {
        self.children().find(|c| c.is(name, ns))
    }

    /// The concatenation of the direct text children.
    pub fn text(&self) -> String {
        self.nodes
            .iter()
            .filter_map(|node| match node {
                Node::Text(t) => Some(t.as_str()),
                Node::Element(_) => None,
            })
            .collect()
    }

    /// Roughly the bytes this element and its subtree hold in memory: its
    /// strings and nodes. For bounding what waits in a queue, where one large
    /// stanza must count for more than one small one.
    pub fn memory_size(&self) -> usize {
        let strings = self.name.len()
            + self.ns.len()
            + self
                .attrs
                .iter()
                .map(|(k, v)| k.len() + v.len() + std::mem::size_of::<(String, String)>())
                .sum::<usize>();
        let nodes = self
            .nodes
            .iter()
            .map(|node| match node {
                Node::Element(child) => child.memory_size(),
                Node::Text(text) => text.len() + std::mem::size_of::<Node>(),
            })
            .sum::<usize>();
        std::mem::size_of::<Element>() + strings + nodes
    }

    /// Removes the child elements for which `keep` is false; text stays.
    pub fn retain_children(&mut self, mut keep: impl FnMut(&Element) -> bool) {
        self.nodes.retain(|node| match node {
            Node::Element(child) => keep(child),
            Node::Text(_) => true,
        });
    }

    /// Appends a child element.
    pub fn append_child(&mut self, child: Element) {
        self.nodes.push(Node::Element(child));
    }

    /// Appends character data, merged into a directly preceding text node so that a tree
    /// and its serialised-then-parsed copy compare equal. Empty text is ignored.
    pub fn append_text(&mut self, text: impl Into<String>) {
        let text = text.into();
        if text.is_empty() {
            return;
        }
        match self.nodes.last_mut() {
            Some(Node::Text(last)) => last.push_str(&text),
            _ => self.nodes.push(Node::Text(text)),
        }
    }

    /// Serialises the element and its subtree, omitting `xmlns` when `ns` equals
    /// `parent_ns`. Attributes use single quotes; an attribute keyed `{uri}name` gets a
    /// generated prefix declared on this element.
    pub fn write_to(&self, out: &mut Vec<u8>, parent_ns: &str) {
        out.push(b'<');
        out.extend_from_slice(self.name.as_bytes());
        if self.ns != parent_ns {
            out.extend_from_slice(b" xmlns='");
            escape_attr(out, &self.ns);
            out.push(b'\'');
        }
        let mut prefixed: Vec<&str> = Vec::new();
        for (key, value) in &self.attrs {
            if key == "xmlns" || key.starts_with("xmlns:") {
                // Declarations follow from `ns`; writing one verbatim could rebind names.
                continue;
            }
            out.push(b' ');
            match split_braced(key) {
                Some((uri, local)) if uri == ns::XML => {
                    out.extend_from_slice(b"xml:");
                    out.extend_from_slice(local.as_bytes());
                }
                Some(("", local)) => out.extend_from_slice(local.as_bytes()),
                Some((uri, local)) => {
                    let index = match prefixed.iter().position(|u| *u == uri) {
                        Some(index) => index,
                        None => {
                            prefixed.push(uri);
                            let index = prefixed.len() - 1;
                            out.extend_from_slice(format!("xmlns:ns{index}='").as_bytes());
                            escape_attr(out, uri);
                            out.extend_from_slice(b"' ");
                            index
                        }
                    };
                    out.extend_from_slice(format!("ns{index}:{local}").as_bytes());
                }
                None => out.extend_from_slice(key.as_bytes()),
            }
            out.extend_from_slice(b"='");
            escape_attr(out, value);
            out.push(b'\'');
        }
        if self.nodes.is_empty() {
            out.extend_from_slice(b"/>");
            return;
        }
        out.push(b'>');
        for node in &self.nodes {
            match node {
                Node::Element(child) => child.write_to(out, &self.ns),
                Node::Text(text) => escape_text(out, text),
            }
        }
        out.extend_from_slice(b"</");
        out.extend_from_slice(self.name.as_bytes());
        out.push(b'>');
    }

    /// Serialises into a new buffer; see [`write_to`](Self::write_to).
    pub fn to_bytes(&self, parent_ns: &str) -> Vec<u8> {
        let mut out = Vec::new();
        self.write_to(&mut out, parent_ns);
        out
    }
}

impl fmt::Display for Element {
    /// Writes the element as XML, declaring its namespace (parent namespace "").
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&String::from_utf8_lossy(&self.to_bytes("")))
    }
}

/// Splits a `{uri}local` attribute key.
fn split_braced(key: &str) -> Option<(&str, &str)> {
    key.strip_prefix('{')?.split_once('}')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(e: &Element, parent_ns: &str) -> String {
        String::from_utf8(e.to_bytes(parent_ns)).unwrap()
    }

    #[test]
    fn builder_and_accessors() {
        let e = Element::new("iq", ns::CLIENT)
            .with_attr("type", "get")
            .with_attr("id", "1")
            .with_child(Element::new("ping", ns::PING))
            .with_text("x");
        assert_eq!(e.name(), "iq");
        assert_eq!(e.ns(), ns::CLIENT);
        assert!(e.is("iq", ns::CLIENT));
        assert!(!e.is("iq", ns::SERVER));
        assert_eq!(e.attr("type"), Some("get"));
        assert_eq!(e.attr("to"), None);
        assert_eq!(
            e.attrs().collect::<Vec<_>>(),
            [("type", "get"), ("id", "1")]
        );
        assert_eq!(e.children().count(), 1);
        assert!(e.get_child("ping", ns::PING).is_some());
        assert!(e.get_child("ping", ns::CLIENT).is_none());
        assert_eq!(e.nodes().len(), 2);
        assert_eq!(e.text(), "x");
    }

    #[test]
    fn set_attr_replaces_and_remove_attr_removes() {
        let mut e = Element::new("a", "").with_attr("k", "1");
        e.set_attr("k", "2");
        e.set_attr("j", "3");
        assert_eq!(e.attrs().collect::<Vec<_>>(), [("k", "2"), ("j", "3")]);
        assert_eq!(e.remove_attr("k"), Some("2".to_owned()));
        assert_eq!(e.remove_attr("k"), None);
        assert_eq!(e.attrs().count(), 1);
    }

    #[test]
    fn adjacent_text_is_merged_and_empty_text_ignored() {
        let mut e = Element::new("body", "").with_text("a").with_text("");
        e.append_text("b");
        e.append_child(Element::new("br", ""));
        e.append_text("c");
        assert_eq!(e.nodes().len(), 3);
        assert_eq!(e.text(), "abc");
    }

    #[test]
    fn xmlns_omitted_when_inherited() {
        let e = Element::new("message", ns::CLIENT).with_child(Element::new("body", ns::CLIENT));
        assert_eq!(s(&e, ns::CLIENT), "<message><body/></message>");
        assert_eq!(
            s(&e, ""),
            "<message xmlns='jabber:client'><body/></message>"
        );
    }

    #[test]
    fn child_in_other_namespace_declares_it_and_empty_ns_is_undeclared() {
        let e = Element::new("iq", ns::CLIENT)
            .with_child(Element::new("ping", ns::PING))
            .with_child(Element::new("bare", ""));
        assert_eq!(
            s(&e, ns::CLIENT),
            "<iq><ping xmlns='urn:xmpp:ping'/><bare xmlns=''/></iq>"
        );
    }

    #[test]
    fn escapes_text_and_attributes() {
        let e = Element::new("body", "")
            .with_attr("a", "'\"<>&")
            .with_text("<b> & </b>");
        assert_eq!(
            s(&e, ""),
            "<body a='&apos;&quot;&lt;&gt;&amp;'>&lt;b&gt; &amp; &lt;/b&gt;</body>"
        );
    }

    #[test]
    fn namespaced_attributes_get_declared_prefixes() {
        let e = Element::new("x", "")
            .with_attr("xml:lang", "en")
            .with_attr("{urn:a}one", "1")
            .with_attr("{urn:b}two", "2")
            .with_attr("{urn:a}three", "3")
            .with_attr(format!("{{{}}}space", ns::XML), "preserve");
        assert_eq!(
            s(&e, ""),
            "<x xml:lang='en' xmlns:ns0='urn:a' ns0:one='1' xmlns:ns1='urn:b' ns1:two='2' \
             ns0:three='3' xml:space='preserve'/>"
        );
    }

    #[test]
    fn xmlns_keys_are_never_written_as_attributes() {
        let e = Element::new("x", "urn:x")
            .with_attr("xmlns", "urn:evil")
            .with_attr("xmlns:p", "urn:evil");
        assert_eq!(s(&e, ""), "<x xmlns='urn:x'/>");
    }

    #[test]
    fn display_uses_empty_parent_namespace() {
        let e = Element::new("presence", ns::CLIENT);
        assert_eq!(e.to_string(), "<presence xmlns='jabber:client'/>");
    }

    #[test]
    fn memory_size_counts_the_subtree() {
        let small = Element::new("message", ns::CLIENT);
        let body = |n: usize| Element::new("body", ns::CLIENT).with_text("x".repeat(n));
        let big = Element::new("message", ns::CLIENT).with_child(body(10_000));
        let bigger = Element::new("message", ns::CLIENT)
            .with_child(body(10_000))
            .with_child(body(10_000));
        assert!(small.memory_size() < 200);
        assert!(big.memory_size() > 10_000 && big.memory_size() < 11_000);
        assert!(bigger.memory_size() > 20_000);
        assert!(small.clone().with_attr("id", "abc").memory_size() > small.memory_size());
    }
}
