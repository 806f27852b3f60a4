//! A roster item (RFC 6121 §2.1.2) and the `jabber:iq:roster` elements built from it.

use crate::jid::Jid;
use crate::xml::{Element, ns};

/// The `subscription` attribute of a roster item (RFC 6121 §2.1.2.5): whose presence
/// flows to whom.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Subscription {
    /// Neither sees the other's presence.
    #[default]
    None,
    /// The user sees the contact's presence.
    To,
    /// The contact sees the user's presence.
    From,
    /// Both see each other's.
    Both,
}

impl Subscription {
    /// The attribute value.
    pub fn name(self) -> &'static str {
        match self {
            Subscription::None => "none",
            Subscription::To => "to",
            Subscription::From => "from",
            Subscription::Both => "both",
        }
    }

    /// Parses an attribute value; `None` for anything else (`remove` included).
    pub fn from_name(name: &str) -> Option<Subscription> {
        match name {
            "none" => Some(Subscription::None),
            "to" => Some(Subscription::To),
            "from" => Some(Subscription::From),
            "both" => Some(Subscription::Both),
            _ => None,
        }
    }

    /// The user is subscribed to the contact's presence (`to` or `both`).
    pub fn has_to(self) -> bool {
        matches!(self, Subscription::To | Subscription::Both)
    }

    /// The contact is subscribed to the user's presence (`from` or `both`).
    pub fn has_from(self) -> bool {
        matches!(self, Subscription::From | Subscription::Both)
    }

    /// The subscription with its two directions given.
    pub fn from_directions(to: bool, from: bool) -> Subscription {
        match (to, from) {
            (false, false) => Subscription::None,
            (true, false) => Subscription::To,
            (false, true) => Subscription::From,
            (true, true) => Subscription::Both,
        }
    }
}

/// One contact on a user's roster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RosterItem {
    /// The contact's bare JID, the item's key (RFC 6121 §2.1.2.3).
    pub jid: Jid,
    /// The user's name for the contact (§2.1.2.4).
    pub name: Option<String>,
    /// The subscription state (§2.1.2.5).
    pub subscription: Subscription,
    /// The user asked to see the contact's presence and has no answer yet: shown as
    /// `ask='subscribe'` (§2.1.2.2, "pending out").
    pub pending_out: bool,
    /// The groups the user filed the contact under (§2.1.2.6), each once.
    pub groups: Vec<String>,
}

impl RosterItem {
    /// A new item for `jid` with no name, no groups and no subscription.
    pub fn new(jid: Jid) -> RosterItem {
        RosterItem {
            jid,
            name: None,
            subscription: Subscription::None,
            pending_out: false,
            groups: Vec::new(),
        }
    }

    /// The `<item/>` of a roster result or push. Never `approved`: pre-approval
    /// (§3.4) is not offered.
    pub fn to_element(&self) -> Element {
        let mut item = Element::new("item", ns::ROSTER)
            .with_attr("jid", self.jid.to_string())
            .with_attr("subscription", self.subscription.name());
        if let Some(name) = &self.name {
            item.set_attr("name", name.as_str());
        }
        if self.pending_out {
            item.set_attr("ask", "subscribe");
        }
        for group in &self.groups {
            item.append_child(Element::new("group", ns::ROSTER).with_text(group.as_str()));
        }
        item
    }
}

/// The `<item subscription='remove'/>` a push announces a removal with (§2.5.2).
pub fn removed_item(jid: &Jid) -> Element {
    Element::new("item", ns::ROSTER)
        .with_attr("jid", jid.to_string())
        .with_attr("subscription", "remove")
}

/// A `<query xmlns='jabber:iq:roster'/>` with `ver` (§2.6.3) and these items.
pub fn query(version: u64, items: impl IntoIterator<Item = Element>) -> Element {
    let mut query = Element::new("query", ns::ROSTER).with_attr("ver", version.to_string());
    for item in items {
        query.append_child(item);
    }
    query
}

/// A roster push (§2.1.6) of one item to the interested resource `to`: an iq set
/// with no `from`, which a client takes as coming from its own account.
pub fn push(id: &str, to: &Jid, version: u64, item: Element) -> Element {
    Element::new("iq", ns::CLIENT)
        .with_attr("type", "set")
        .with_attr("id", id)
        .with_attr("to", to.to_string())
        .with_child(query(version, [item]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscription_names_round_trip() {
        for s in [
            Subscription::None,
            Subscription::To,
            Subscription::From,
            Subscription::Both,
        ] {
            assert_eq!(Subscription::from_name(s.name()), Some(s));
            assert_eq!(Subscription::from_directions(s.has_to(), s.has_from()), s);
        }
        assert_eq!(Subscription::from_name("remove"), None);
    }

    #[test]
    fn an_item_is_written_as_rfc_6121_shows_it() {
        let item = RosterItem {
            name: Some("Romeo".into()),
            pending_out: true,
            groups: vec!["Friends".into()],
            ..RosterItem::new(Jid::parse("romeo@example.net").unwrap())
        };
        let pushed = push(
            "p1",
            &Jid::parse("juliet@example.com/balcony").unwrap(),
            7,
            item.to_element(),
        );
        assert_eq!(
            String::from_utf8(pushed.to_bytes(ns::CLIENT)).unwrap(),
            "<iq type='set' id='p1' to='juliet@example.com/balcony'>\
             <query xmlns='jabber:iq:roster' ver='7'>\
             <item jid='romeo@example.net' subscription='none' name='Romeo' ask='subscribe'>\
             <group>Friends</group></item></query></iq>"
        );
    }
}
