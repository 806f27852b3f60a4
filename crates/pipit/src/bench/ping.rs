//! Answers to server pings (XEP-0199), which a server sends a session that stays
//! silent for long (Pipit after `--idle-timeout-secs`): a held session that did
//! not answer would be closed, and the run would measure fewer than it claims.

use pipit_client::xml::{Element, ns};

/// The result answering `stanza`, if it is a ping.
pub fn reply(stanza: &Element) -> Option<Element> {
    if stanza.name() != "iq"
        || stanza.attr("type") != Some("get")
        || stanza.get_child("ping", ns::PING).is_none()
    {
        return None;
    }
    let mut result = Element::new("iq", ns::CLIENT).with_attr("type", "result");
    if let Some(id) = stanza.attr("id") {
        result = result.with_attr("id", id);
    }
    if let Some(from) = stanza.attr("from") {
        result = result.with_attr("to", from);
    }
    Some(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pings_get_a_result_and_nothing_else_does() {
        let ping = Element::new("iq", ns::CLIENT)
            .with_attr("type", "get")
            .with_attr("id", "p1")
            .with_attr("from", "localhost")
            .with_child(Element::new("ping", ns::PING));
        let answer = reply(&ping).unwrap();
        assert_eq!(answer.attr("type"), Some("result"));
        assert_eq!(answer.attr("id"), Some("p1"));
        assert_eq!(answer.attr("to"), Some("localhost"));
        let message = Element::new("message", ns::CLIENT);
        assert!(reply(&message).is_none());
        let other_iq = Element::new("iq", ns::CLIENT).with_attr("type", "get");
        assert!(reply(&other_iq).is_none());
    }
}
