//! Stanza errors (RFC 6120 §8.3) and helpers shared by the core and the server.

use crate::xml::{Element, ns};

/// A stanza error condition (RFC 6120 §8.3.3) with its usual error type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum StanzaError {
    /// The request was malformed (§8.3.3.1).
    BadRequest,
    /// The resource or session is already in use (§8.3.3.2).
    Conflict,
    /// The feature is not implemented (§8.3.3.3).
    FeatureNotImplemented,
    /// The sender may not do this, whoever asks (§8.3.3.4).
    Forbidden,
    /// The addressed JID or item is malformed (§8.3.3.7).
    JidMalformed,
    /// The addressed item does not exist (§8.3.3.8).
    ItemNotFound,
    /// The request breaks a rule or limit of the recipient (§8.3.3.9).
    NotAcceptable,
    /// The action is not allowed for anybody (§8.3.3.10).
    NotAllowed,
    /// The sender must authenticate first (§8.3.3.12).
    NotAuthorized,
    /// No such remote domain is reachable (§8.3.3.16).
    RemoteServerNotFound,
    /// The recipient does not offer the service (§8.3.3.19).
    ServiceUnavailable,
    /// The recipient is temporarily unavailable (§8.3.3.13).
    RecipientUnavailable,
    /// Something went wrong on our side (§8.3.3.6).
    InternalServerError,
    /// A server limit was reached, e.g. the sessions an account may have (§8.3.3.18).
    ResourceConstraint,
}

impl StanzaError {
    /// The condition element name.
    pub fn condition(self) -> &'static str {
        match self {
            StanzaError::BadRequest => "bad-request",
            StanzaError::Conflict => "conflict",
            StanzaError::FeatureNotImplemented => "feature-not-implemented",
            StanzaError::Forbidden => "forbidden",
            StanzaError::JidMalformed => "jid-malformed",
            StanzaError::ItemNotFound => "item-not-found",
            StanzaError::NotAcceptable => "not-acceptable",
            StanzaError::NotAllowed => "not-allowed",
            StanzaError::NotAuthorized => "not-authorized",
            StanzaError::RemoteServerNotFound => "remote-server-not-found",
            StanzaError::ServiceUnavailable => "service-unavailable",
            StanzaError::RecipientUnavailable => "recipient-unavailable",
            StanzaError::InternalServerError => "internal-server-error",
            StanzaError::ResourceConstraint => "resource-constraint",
        }
    }

    /// The error `type` RFC 6120 §8.3.3 gives for this condition.
    pub fn error_type(self) -> &'static str {
        match self {
            StanzaError::BadRequest | StanzaError::JidMalformed | StanzaError::NotAcceptable => {
                "modify"
            }
            StanzaError::NotAuthorized | StanzaError::Forbidden => "auth",
            StanzaError::RecipientUnavailable | StanzaError::ResourceConstraint => "wait",
            _ => "cancel",
        }
    }
}

/// Whether `el` is a stanza of a client stream: `<message/>`, `<presence/>` or `<iq/>`
/// in `jabber:client` (RFC 6120 §8).
pub fn is_stanza(el: &Element) -> bool {
    el.ns() == ns::CLIENT && matches!(el.name(), "message" | "presence" | "iq")
}

/// The error reply to `stanza` (RFC 6120 §8.3.1): same kind and id, `to` and `from`
/// swapped, the original payload kept so the sender can tell what failed. `None` for
/// a stanza that is itself an error, which must never be answered with one.
pub fn error_reply(stanza: &Element, error: StanzaError) -> Option<Element> {
    if stanza.attr("type") == Some("error") {
        return None;
    }
    let mut reply = Element::new(stanza.name(), stanza.ns()).with_attr("type", "error");
    for (key, value) in [("id", "id"), ("from", "to"), ("to", "from")] {
        if let Some(v) = stanza.attr(key) {
            reply.set_attr(value, v);
        }
    }
    if stanza.name() != "iq" || stanza.attr("type") == Some("set") {
        for child in stanza.children() {
            reply.append_child(child.clone());
        }
    }
    let condition = Element::new(error.condition(), ns::STANZA_ERRORS);
    reply.append_child(
        Element::new("error", stanza.ns())
            .with_attr("type", error.error_type())
            .with_child(condition),
    );
    Some(reply)
}

/// An empty `type='result'` answer to an iq, `from` and `to` swapped.
pub fn iq_result(iq: &Element) -> Element {
    let mut reply = Element::new("iq", ns::CLIENT).with_attr("type", "result");
    for (key, value) in [("id", "id"), ("from", "to"), ("to", "from")] {
        if let Some(v) = iq.attr(key) {
            reply.set_attr(value, v);
        }
    }
    reply
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_reply_swaps_addresses_and_keeps_payload() {
        let msg = Element::new("message", ns::CLIENT)
            .with_attr("from", "a@x/r")
            .with_attr("to", "b@x")
            .with_attr("id", "1")
            .with_child(Element::new("body", ns::CLIENT).with_text("hi"));
        let reply = error_reply(&msg, StanzaError::ServiceUnavailable).unwrap();
        assert_eq!(reply.attr("to"), Some("a@x/r"));
        assert_eq!(reply.attr("from"), Some("b@x"));
        assert_eq!(reply.attr("type"), Some("error"));
        assert_eq!(reply.attr("id"), Some("1"));
        assert!(reply.get_child("body", ns::CLIENT).is_some());
        let error = reply.get_child("error", ns::CLIENT).unwrap();
        assert_eq!(error.attr("type"), Some("cancel"));
        assert!(
            error
                .get_child("service-unavailable", ns::STANZA_ERRORS)
                .is_some()
        );
    }

    #[test]
    fn errors_are_never_answered() {
        let err = Element::new("message", ns::CLIENT).with_attr("type", "error");
        assert!(error_reply(&err, StanzaError::BadRequest).is_none());
    }

    #[test]
    fn iq_get_error_omits_query_payload() {
        let iq = Element::new("iq", ns::CLIENT)
            .with_attr("type", "get")
            .with_attr("id", "q")
            .with_child(Element::new("query", "urn:example"));
        let reply = error_reply(&iq, StanzaError::ServiceUnavailable).unwrap();
        assert!(reply.get_child("query", "urn:example").is_none());
    }
}
