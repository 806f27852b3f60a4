//! Message Carbons (XEP-0280, `urn:xmpp:carbons:2`): which messages are copied to
//! a user's other resources, what a copy looks like, and the forged copies a client
//! must never be handed. The rules are pure; [`im`](crate::im) asks the router who
//! has carbons on and delivers what these functions build.

use pipit_proto::jid::Jid;
use pipit_proto::xml::{Element, ns};

/// Stanza Forwarding (XEP-0297), the envelope of every copy.
const FORWARD: &str = "urn:xmpp:forward:0";
/// Message Processing Hints (XEP-0334).
const HINTS: &str = "urn:xmpp:hints";

/// XEP-0280, "Messages Eligible for Carbons Delivery" (its suggested rules): a message of type `chat`,
/// or of type `normal` with a `<body>`, is copied. Groupchat and headline messages
/// are not, nor are errors: copying an error only when it answers an eligible
/// message would need the server to remember every message it routed. A message
/// marked `<private/>` ("Avoiding Carbons for a single message") or `<no-copy/>`
/// (XEP-0334) is not copied either;
/// clients send both, each one alone is already a clear request.
pub fn eligible(message: &Element) -> bool {
    let copied_kind = match message.attr("type").unwrap_or("normal") {
        "chat" => true,
        "normal" => message.get_child("body", ns::CLIENT).is_some(),
        _ => false,
    };
    copied_kind
        && message.get_child("private", ns::CARBONS).is_none()
        && message.get_child("no-copy", HINTS).is_none()
}

/// Whether `message` is a copy this server made: a copy that cannot be delivered
/// is dropped, never bounced to the account it came "from" (XEP-0280, "Handling
/// of Errors").
pub fn is_carbon(message: &Element) -> bool {
    message
        .children()
        .any(|c| c.ns() == ns::CARBONS && matches!(c.name(), "sent" | "received"))
}

/// Removes `<sent/>` and `<received/>` of `urn:xmpp:carbons:2` from a message a
/// client sent. Only the server makes copies; a client that gets one trusts it as
/// its own account's conversation if `from` is its bare JID (XEP-0280, "Security
/// Considerations"), and
/// clients that did not check were impersonated that way (CVE-2017-5589). The
/// wrapper is stripped rather than the message refused: what else it carries (a
/// body, say) is still the sender's to send, and the recipient then sees a plain
/// message from the real sender, never a copy.
pub fn strip_forged(mut message: Element) -> Element {
    message.retain_children(|child| {
        !(child.ns() == ns::CARBONS && matches!(child.name(), "sent" | "received"))
    });
    message
}

/// The copies of `message`, which `from` sent to the account `to` and which the
/// resources `delivered` of that account got, each with the full JID it goes to.
/// `enabled` names an account's available resources with carbons on.
///
/// Nothing is copied when nothing was delivered (the sender got an error instead).
/// Sent copies ("Sending Messages") go to the sender's other carbons-enabled
/// resources; received copies ("Receiving Messages") to the recipient's carbons-enabled resources that did not get the
/// original. A message within one account gets one copy per resource at most, the
/// sent form, and none for a resource that got the original or that sent it.
pub fn copies(
    message: &Element,
    from: &Jid,
    to: &Jid,
    delivered: &[String],
    enabled: impl Fn(&Jid) -> Vec<Jid>,
) -> Vec<(Jid, Element)> {
    if delivered.is_empty() || !eligible(message) {
        return Vec::new();
    }
    let sender = from.to_bare();
    let own = sender == *to;
    let got_original = |jid: &Jid| delivered.iter().any(|r| Some(r.as_str()) == jid.resource());
    let mut out = Vec::new();
    for jid in enabled(&sender) {
        // "Sending Messages": the sending resource SHOULD NOT get a copy of its own.
        // A message to oneself has already reached the resources it was addressed to.
        if jid == *from || (own && got_original(&jid)) {
            continue;
        }
        let copy = wrap("sent", &sender, &jid, message);
        out.push((jid, copy));
    }
    if !own {
        for jid in enabled(to) {
            // "Receiving Messages": the addressed resources have the original.
            if got_original(&jid) {
                continue;
            }
            let copy = wrap("received", to, &jid, message);
            out.push((jid, copy));
        }
    }
    out
}

/// "Receiving Messages", "Sending Messages": from the account's bare JID, to the
/// resource that gets the copy, the original's type kept, the original inside
/// `<forwarded/>` (XEP-0297).
fn wrap(direction: &str, account: &Jid, to: &Jid, message: &Element) -> Element {
    let mut copy = Element::new("message", ns::CLIENT)
        .with_attr("from", account.to_string())
        .with_attr("to", to.to_string());
    if let Some(kind) = message.attr("type") {
        copy.set_attr("type", kind);
    }
    copy.with_child(
        Element::new(direction, ns::CARBONS)
            .with_child(Element::new("forwarded", FORWARD).with_child(message.clone())),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jid(s: &str) -> Jid {
        Jid::parse(s).unwrap()
    }

    fn message(kind: Option<&str>, body: bool) -> Element {
        let mut m = Element::new("message", ns::CLIENT)
            .with_attr("from", "a@x/desk")
            .with_attr("to", "b@x");
        if let Some(kind) = kind {
            m.set_attr("type", kind);
        }
        if body {
            m.append_child(Element::new("body", ns::CLIENT).with_text("hi"));
        }
        m
    }

    /// Alice has desk, phone and laptop with carbons on; bob has home and work.
    fn enabled(bare: &Jid) -> Vec<Jid> {
        let resources: &[&str] = match bare.to_string().as_str() {
            "a@x" => &["desk", "phone", "laptop"],
            "b@x" => &["home", "work"],
            _ => &[],
        };
        resources
            .iter()
            .map(|r| bare.with_resource(r).unwrap())
            .collect()
    }

    fn targets(copies: &[(Jid, Element)]) -> Vec<String> {
        copies
            .iter()
            .map(|(to, copy)| {
                let direction = copy.children().next().unwrap().name().to_owned();
                format!("{direction} {to}")
            })
            .collect()
    }

    #[test]
    fn eligibility_follows_the_suggested_rules() {
        assert!(eligible(&message(Some("chat"), false)));
        assert!(eligible(&message(None, true)));
        assert!(eligible(&message(Some("normal"), true)));
        assert!(!eligible(&message(Some("normal"), false)));
        for kind in ["groupchat", "headline", "error"] {
            assert!(!eligible(&message(Some(kind), true)), "{kind}");
        }
        let private = message(Some("chat"), true).with_child(Element::new("private", ns::CARBONS));
        assert!(!eligible(&private));
        let no_copy = message(Some("chat"), true).with_child(Element::new("no-copy", HINTS));
        assert!(!eligible(&no_copy));
    }

    #[test]
    fn sent_and_received_copies_skip_the_sender_and_the_recipients() {
        let m = message(Some("chat"), true);
        let copies = copies(&m, &jid("a@x/desk"), &jid("b@x"), &["home".into()], enabled);
        assert_eq!(
            targets(&copies),
            ["sent a@x/phone", "sent a@x/laptop", "received b@x/work"]
        );
        let (_, copy) = &copies[2];
        assert_eq!(copy.attr("from"), Some("b@x"));
        assert_eq!(copy.attr("type"), Some("chat"));
        let forwarded = copy
            .get_child("received", ns::CARBONS)
            .and_then(|r| r.get_child("forwarded", FORWARD))
            .and_then(|f| f.get_child("message", ns::CLIENT));
        assert_eq!(forwarded, Some(&m));
    }

    #[test]
    fn nothing_is_copied_when_nothing_was_delivered() {
        let m = message(Some("chat"), true);
        assert!(copies(&m, &jid("a@x/desk"), &jid("b@x"), &[], enabled).is_empty());
    }

    #[test]
    fn a_message_to_ones_own_account_is_copied_once_to_those_without_it() {
        let m = message(Some("chat"), true);
        let copies = copies(
            &m,
            &jid("a@x/desk"),
            &jid("a@x"),
            &["desk".into(), "phone".into()],
            enabled,
        );
        assert_eq!(targets(&copies), ["sent a@x/laptop"]);
    }

    #[test]
    fn forged_copies_are_stripped_and_the_rest_kept() {
        let forged = message(Some("chat"), true)
            .with_child(
                Element::new("received", ns::CARBONS)
                    .with_child(Element::new("forwarded", FORWARD)),
            )
            .with_child(Element::new("sent", ns::CARBONS));
        assert!(is_carbon(&forged));
        let clean = strip_forged(forged);
        assert!(!is_carbon(&clean));
        assert_eq!(clean, message(Some("chat"), true));
        // A message without a forged copy passes untouched.
        let private = message(Some("chat"), true).with_child(Element::new("private", ns::CARBONS));
        assert_eq!(strip_forged(private.clone()), private);
    }
}
