//! The SASL2 (XEP-0388) and Bind2 (XEP-0386) elements: what a client's
//! `<authenticate/>` asks for, and the server's answers.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;

use crate::jid::Jid;
use crate::sasl::SaslError;
use crate::server::fast::FastRequest;
use crate::xml::{Element, ns};

/// What an `<authenticate xmlns='urn:xmpp:sasl:2'/>` carries besides the SASL data.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Authenticate {
    /// The mechanism attribute.
    pub mechanism: String,
    /// The `<initial-response/>` text, as sent (base64).
    pub initial_response: Option<String>,
    /// XEP-0388 §2.3: a stable id of the client installation.
    pub user_agent: Option<String>,
    /// XEP-0386: an inline bind request, with the client's `<tag/>` if any.
    pub bind: Option<Option<String>>,
    /// XEP-0386 §4 / XEP-0198: an `<enable/>` of stream management inside the bind.
    pub bind_sm_enable: Option<Element>,
    /// XEP-0386 §4 / XEP-0280 §4: an `<enable/>` of carbons inside the bind.
    pub bind_carbons: bool,
    /// XEP-0198 §5 inline in SASL2: a `<resume/>` of a detached session, tried
    /// before any Bind2 request.
    pub sm_resume: Option<Element>,
    /// XEP-0509: the config version the client pipelined against.
    pub config_version: Option<String>,
    /// XEP-0484: what the client asks of FAST.
    pub fast: FastRequest,
    /// XEP-0480 §2.2: the upgrade tasks the client asks for.
    pub upgrades: Vec<String>,
}

impl Authenticate {
    /// Reads an `<authenticate/>`; `None` without a mechanism attribute.
    pub fn parse(el: &Element) -> Option<Authenticate> {
        let bind = el.get_child("bind", ns::BIND2).map(|b| {
            b.get_child("tag", ns::BIND2)
                .map(|t| t.text())
                .filter(|t| !t.is_empty())
        });
        let bind_el = el.get_child("bind", ns::BIND2);
        let bind_sm_enable = bind_el.and_then(|b| b.get_child("enable", ns::SM)).cloned();
        let bind_carbons = bind_el.is_some_and(|b| b.get_child("enable", ns::CARBONS).is_some());
        Some(Authenticate {
            bind_sm_enable,
            bind_carbons,
            sm_resume: el.get_child("resume", ns::SM).cloned(),
            mechanism: el.attr("mechanism")?.to_owned(),
            initial_response: el
                .get_child("initial-response", ns::SASL2)
                .map(|i| i.text()),
            user_agent: el
                .get_child("user-agent", ns::SASL2)
                .and_then(|u| u.attr("id"))
                .map(str::to_owned),
            bind,
            config_version: el
                .get_child("config-version", ns::IAP)
                .and_then(|c| c.attr("value"))
                .map(str::to_owned),
            fast: FastRequest::parse(el),
            upgrades: el
                .children()
                .filter(|c| c.is("upgrade", ns::SASL_UPGRADE))
                .map(|c| c.text().trim().to_owned())
                .collect(),
        })
    }
}

/// XEP-0386 §3: the resource the server assigns: the client's tag (sanitised to
/// what a resource may hold) and a random part, so that each installation gets its
/// own resource and never takes over another's.
pub(crate) fn bind2_resource(tag: Option<&str>, random_part: &str) -> String {
    let tag: String = tag
        .unwrap_or_default()
        .chars()
        .filter(|c| !c.is_control() && !c.is_whitespace() && *c != '/')
        .take(64)
        .collect();
    if tag.is_empty() {
        random_part.to_owned()
    } else {
        format!("{tag}.{random_part}")
    }
}

/// XEP-0388 §2.6.1: `<success/>` with the additional data, the authorization
/// identifier (the full JID when Bind2 bound one) and, then, `<bound/>` with the
/// results of inline requests (XEP-0386 §3).
pub(crate) fn success(
    additional_data: Option<&[u8]>,
    identity: &Jid,
    bound: Option<Vec<Element>>,
    extra: Vec<Element>,
) -> Element {
    let mut success = Element::new("success", ns::SASL2);
    if let Some(data) = additional_data {
        success.append_child(
            Element::new("additional-data", ns::SASL2).with_text(BASE64.encode(data)),
        );
    }
    success.append_child(
        Element::new("authorization-identifier", ns::SASL2).with_text(identity.to_string()),
    );
    if let Some(children) = bound {
        let mut el = Element::new("bound", ns::BIND2);
        for child in children {
            el.append_child(child);
        }
        success.append_child(el);
    }
    for el in extra {
        success.append_child(el);
    }
    success
}

/// XEP-0388 §2.6.2: `<failure/>` carries an RFC 6120 SASL condition, and may carry
/// an application condition (XEP-0509's config-version mismatch) and a text.
pub(crate) fn failure(error: &SaslError, app_condition: Option<Element>) -> Element {
    let mut failure =
        Element::new("failure", ns::SASL2).with_child(Element::new(error.condition(), ns::SASL));
    if let Some(app) = app_condition {
        failure.append_child(app);
    }
    if let SaslError::MalformedRequest(why) = error {
        failure.append_child(Element::new("text", ns::SASL2).with_text(why.clone()));
    }
    failure
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authenticate_is_read_with_its_inline_requests() {
        let el = Element::new("authenticate", ns::SASL2)
            .with_attr("mechanism", "PLAIN")
            .with_child(Element::new("initial-response", ns::SASL2).with_text("AGEAYg=="))
            .with_child(Element::new("user-agent", ns::SASL2).with_attr("id", "ua-1"))
            .with_child(
                Element::new("bind", ns::BIND2)
                    .with_child(Element::new("tag", ns::BIND2).with_text("phone"))
                    .with_child(Element::new("enable", ns::CARBONS)),
            )
            .with_child(Element::new("config-version", ns::IAP).with_attr("value", "v1"));
        let auth = Authenticate::parse(&el).unwrap();
        assert_eq!(auth.mechanism, "PLAIN");
        assert_eq!(auth.initial_response.as_deref(), Some("AGEAYg=="));
        assert_eq!(auth.user_agent.as_deref(), Some("ua-1"));
        assert_eq!(auth.bind, Some(Some("phone".into())));
        assert!(auth.bind_carbons);
        assert_eq!(auth.bind_sm_enable, None);
        assert_eq!(auth.config_version.as_deref(), Some("v1"));
        let plain = Element::new("authenticate", ns::SASL2)
            .with_attr("mechanism", "PLAIN")
            .with_child(Element::new("bind", ns::BIND2));
        assert!(!Authenticate::parse(&plain).unwrap().bind_carbons);
        let bare = Element::new("authenticate", ns::SASL2);
        assert_eq!(Authenticate::parse(&bare), None);
    }

    #[test]
    fn bind2_resources_start_with_a_clean_tag() {
        assert_eq!(bind2_resource(Some("Phone"), "ab12"), "Phone.ab12");
        assert_eq!(bind2_resource(Some("a b/c\n"), "ab12"), "abc.ab12");
        assert_eq!(bind2_resource(None, "ab12"), "ab12");
    }
}
