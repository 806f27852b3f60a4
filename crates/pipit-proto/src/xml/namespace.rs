//! Namespace declarations of one element and qualified-name splitting
//! (Namespaces in XML 1.0, third edition).

use super::error::{XmlError, not_well_formed};
use super::ns;

/// The namespace declarations made on one start tag.
#[derive(Clone, Debug, Default)]
pub(super) struct Frame {
    /// `xmlns='...'`, if present (`Some("")` undeclares the default namespace).
    default: Option<String>,
    /// `xmlns:prefix='...'` declarations.
    prefixes: Vec<(String, String)>,
}

impl Frame {
    /// Collects and checks the `xmlns` and `xmlns:*` attributes of a start tag.
    pub(super) fn from_attrs(attrs: &[(String, String)]) -> Result<Self, XmlError> {
        let mut frame = Frame::default();
        for (name, value) in attrs {
            if name == "xmlns" {
                if frame.default.is_some() {
                    return Err(not_well_formed("duplicate default namespace declaration"));
                }
                if value == ns::XML || value == ns::XMLNS {
                    return Err(not_well_formed("reserved namespace used as default"));
                }
                frame.default = Some(value.clone());
            } else if let Some(prefix) = name.strip_prefix("xmlns:") {
                check_declaration(prefix, value)?;
                if frame.prefixes.iter().any(|(p, _)| p == prefix) {
                    return Err(not_well_formed(format!(
                        "duplicate declaration of prefix '{prefix}'"
                    )));
                }
                frame.prefixes.push((prefix.to_owned(), value.clone()));
            }
        }
        Ok(frame)
    }

    /// The default namespace declared here, if any.
    pub(super) fn default_ns(&self) -> Option<&str> {
        self.default.as_deref()
    }

    /// The namespace bound to `prefix` here, if any.
    pub(super) fn prefix(&self, prefix: &str) -> Option<&str> {
        self.prefixes
            .iter()
            .find(|(p, _)| p == prefix)
            .map(|(_, uri)| uri.as_str())
    }
}

/// Checks one `xmlns:prefix='uri'` declaration against Namespaces in XML 1.0 §3.
fn check_declaration(prefix: &str, uri: &str) -> Result<(), XmlError> {
    if !is_ncname(prefix) {
        return Err(not_well_formed(format!("malformed prefix '{prefix}'")));
    }
    if prefix == "xmlns" {
        return Err(not_well_formed("the prefix xmlns must not be declared"));
    }
    if (prefix == "xml") != (uri == ns::XML) {
        return Err(not_well_formed(
            "the prefix xml and its namespace must only be bound to each other",
        ));
    }
    if uri == ns::XMLNS {
        return Err(not_well_formed("the xmlns namespace must not be declared"));
    }
    if uri.is_empty() {
        return Err(not_well_formed(format!(
            "prefix '{prefix}' must not be undeclared"
        )));
    }
    Ok(())
}

/// Whether `name` is an attribute that declares a namespace.
pub(super) fn is_declaration(name: &str) -> bool {
    name == "xmlns" || name.starts_with("xmlns:")
}

/// Splits a qualified name into optional prefix and local part.
pub(super) fn split_qname(name: &str) -> Result<(Option<&str>, &str), XmlError> {
    match name.split_once(':') {
        None if is_ncname(name) => Ok((None, name)),
        Some((prefix, local)) if is_ncname(prefix) && is_ncname(local) => Ok((Some(prefix), local)),
        _ => Err(not_well_formed(format!("malformed name '{name}'"))),
    }
}

/// A name without colons whose first character may start a name. The lexer has
/// already checked the remaining characters.
fn is_ncname(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_alphabetic() || c == '_' || !c.is_ascii())
        && !name.contains(':')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn collects_declarations() {
        let f = Frame::from_attrs(&attrs(&[
            ("xmlns", "jabber:client"),
            ("xmlns:stream", ns::STREAM),
            ("to", "example.com"),
        ]))
        .unwrap();
        assert_eq!(f.default_ns(), Some("jabber:client"));
        assert_eq!(f.prefix("stream"), Some(ns::STREAM));
        assert_eq!(f.prefix("to"), None);
    }

    #[test]
    fn rejects_bad_declarations() {
        for bad in [
            &[("xmlns:p", "")][..],
            &[("xmlns:p", "a"), ("xmlns:p", "b")],
            &[("xmlns", "a"), ("xmlns", "b")],
            &[("xmlns:xmlns", "a")],
            &[("xmlns:xml", "urn:other")],
            &[("xmlns:x", ns::XML)],
            &[("xmlns:x", ns::XMLNS)],
            &[("xmlns", ns::XML)],
            &[("xmlns:", "a")],
            &[("xmlns:a:b", "a")],
        ] {
            assert!(Frame::from_attrs(&attrs(bad)).is_err(), "{bad:?}");
        }
        assert!(Frame::from_attrs(&attrs(&[("xmlns:xml", ns::XML)])).is_ok());
        assert!(Frame::from_attrs(&attrs(&[("xmlns", "")])).is_ok());
    }

    #[test]
    fn splits_qualified_names() {
        assert_eq!(split_qname("body").unwrap(), (None, "body"));
        assert_eq!(
            split_qname("stream:stream").unwrap(),
            (Some("stream"), "stream")
        );
        for bad in [":a", "a:", "a:b:c", "a:1", "a:-b", ""] {
            assert!(split_qname(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn recognises_declarations() {
        assert!(is_declaration("xmlns"));
        assert!(is_declaration("xmlns:stream"));
        assert!(!is_declaration("xmlnsx"));
        assert!(!is_declaration("to"));
    }
}
