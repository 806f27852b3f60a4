//! What a client asks of its roster: the `ver` of a roster get (RFC 6121 §2.6.2) and
//! the one change a roster set makes, checked as §2.3.3 and §2.5.3 require.

use crate::jid::Jid;
use crate::stanza::StanzaError;
use crate::xml::{Element, ns};

/// The longest `name` a roster item may have, in bytes: §2.3.3 leaves the limit to
/// the server; a JID part's limit (RFC 7622 §3) is as much as anyone types.
pub const MAX_NAME_BYTES: usize = 1023;
/// The longest group name, in bytes (§2.3.3, as for `name`).
pub const MAX_GROUP_BYTES: usize = 1023;

/// Why a roster set is refused.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RosterError {
    /// The query holds no `<item/>` or more than one (§2.3.3).
    #[error("a roster set must hold exactly one item")]
    NotOneItem,
    /// The item has no `jid` attribute (§2.1.2.3: it is required).
    #[error("the roster item has no jid")]
    MissingJid,
    /// The `jid` attribute is not a valid JID.
    #[error("the roster item's jid is not a valid JID")]
    MalformedJid,
    /// The `jid` names a resource: a roster holds accounts, keyed by bare JID.
    #[error("the roster item's jid is a full JID")]
    FullJid,
    /// The same group is named twice (§2.3.3).
    #[error("the roster item names a group twice")]
    DuplicateGroup,
    /// A `<group/>` is empty (§2.3.3).
    #[error("the roster item has an empty group")]
    EmptyGroup,
    /// The `name` is longer than [`MAX_NAME_BYTES`] (§2.3.3).
    #[error("the roster item's name is too long")]
    NameTooLong,
    /// A group name is longer than [`MAX_GROUP_BYTES`] (§2.3.3).
    #[error("a roster group name is too long")]
    GroupTooLong,
}

impl RosterError {
    /// The stanza error RFC 6121 §2.3.3 names for each case.
    pub fn stanza_error(&self) -> StanzaError {
        match self {
            RosterError::NotOneItem
            | RosterError::MissingJid
            | RosterError::FullJid
            | RosterError::DuplicateGroup => StanzaError::BadRequest,
            RosterError::MalformedJid => StanzaError::JidMalformed,
            RosterError::EmptyGroup | RosterError::NameTooLong | RosterError::GroupTooLong => {
                StanzaError::NotAcceptable
            }
        }
    }
}

/// The change a roster set asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RosterSet {
    /// Add the contact, or replace its name and groups (§2.3, §2.4). Its
    /// subscription is never set this way: a `subscription` other than `remove`,
    /// `ask` and `approved` are ignored (§2.1.2.1, §2.1.2.2, §2.1.2.5).
    Update {
        /// The contact's bare JID.
        jid: Jid,
        /// The new name; `None` also for an empty `name`.
        name: Option<String>,
        /// The new groups, in the order given.
        groups: Vec<String>,
    },
    /// Remove the contact (§2.5): `subscription='remove'`.
    Remove(Jid),
}

impl RosterSet {
    /// Parses and checks the `<query/>` of a roster set.
    pub fn parse(query: &Element) -> Result<RosterSet, RosterError> {
        let mut items = query.children().filter(|c| c.is("item", ns::ROSTER));
        let (Some(item), None) = (items.next(), items.next()) else {
            return Err(RosterError::NotOneItem);
        };
        let jid = item.attr("jid").ok_or(RosterError::MissingJid)?;
        let jid = Jid::parse(jid).map_err(|_| RosterError::MalformedJid)?;
        if jid.is_full() {
            return Err(RosterError::FullJid);
        }
        if item.attr("subscription") == Some("remove") {
            return Ok(RosterSet::Remove(jid));
        }
        let name = item.attr("name").filter(|n| !n.is_empty());
        if name.is_some_and(|n| n.len() > MAX_NAME_BYTES) {
            return Err(RosterError::NameTooLong);
        }
        let mut groups: Vec<String> = Vec::new();
        for group in item.children().filter(|c| c.is("group", ns::ROSTER)) {
            let group = group.text();
            if group.is_empty() {
                return Err(RosterError::EmptyGroup);
            }
            if group.len() > MAX_GROUP_BYTES {
                return Err(RosterError::GroupTooLong);
            }
            if groups.contains(&group) {
                return Err(RosterError::DuplicateGroup);
            }
            groups.push(group);
        }
        Ok(RosterSet::Update {
            jid,
            name: name.map(str::to_owned),
            groups,
        })
    }
}

/// The roster version a roster get says the client has cached (§2.6.2), if it sent
/// one it could have had from us: the empty `ver` (nothing cached) and anything that
/// is not a version number give `None`.
pub fn requested_version(query: &Element) -> Option<u64> {
    query.attr("ver").and_then(|v| v.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xml::{Limits, StreamEvent, StreamParser};

    /// `xml` parsed as the first element of a client stream.
    fn element(xml: &str) -> Element {
        let mut parser = StreamParser::new(Limits::default());
        parser.feed(b"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>");
        parser.feed(xml.as_bytes());
        loop {
            match parser.next_event().unwrap() {
                Some(StreamEvent::Element(e)) => return e,
                Some(_) => {}
                None => panic!("no element in {xml}"),
            }
        }
    }

    fn parse(items: &str) -> Result<RosterSet, RosterError> {
        RosterSet::parse(&element(&format!(
            "<query xmlns='jabber:iq:roster'>{items}</query>"
        )))
    }

    #[test]
    fn an_update_keeps_name_and_groups_and_ignores_the_subscription() {
        let set = parse(
            "<item jid='Nurse@Example.com' name='Nurse' subscription='both' ask='subscribe'>\
             <group>Servants</group><group>House</group></item>",
        );
        assert_eq!(
            set,
            Ok(RosterSet::Update {
                jid: Jid::parse("nurse@example.com").unwrap(),
                name: Some("Nurse".into()),
                groups: vec!["Servants".into(), "House".into()],
            })
        );
        let unnamed = parse("<item jid='a@b' name=''/>");
        assert!(matches!(unnamed, Ok(RosterSet::Update { name: None, .. })));
    }

    #[test]
    fn remove_is_a_subscription_value() {
        assert_eq!(
            parse("<item jid='a@b' subscription='remove'><group>x</group></item>"),
            Ok(RosterSet::Remove(Jid::parse("a@b").unwrap()))
        );
    }

    #[test]
    fn rfc_6121_section_2_3_3_cases_get_their_errors() {
        let long = "x".repeat(MAX_NAME_BYTES + 1);
        let cases = [
            ("", RosterError::NotOneItem, StanzaError::BadRequest),
            (
                "<item jid='a@b'/><item jid='c@d'/>",
                RosterError::NotOneItem,
                StanzaError::BadRequest,
            ),
            ("<item/>", RosterError::MissingJid, StanzaError::BadRequest),
            (
                "<item jid='a@b@c'/>",
                RosterError::MalformedJid,
                StanzaError::JidMalformed,
            ),
            (
                "<item jid='a@b/r'/>",
                RosterError::FullJid,
                StanzaError::BadRequest,
            ),
            (
                "<item jid='a@b'><group>g</group><group>g</group></item>",
                RosterError::DuplicateGroup,
                StanzaError::BadRequest,
            ),
            (
                "<item jid='a@b'><group/></item>",
                RosterError::EmptyGroup,
                StanzaError::NotAcceptable,
            ),
            (
                &format!("<item jid='a@b' name='{long}'/>"),
                RosterError::NameTooLong,
                StanzaError::NotAcceptable,
            ),
            (
                &format!("<item jid='a@b'><group>{long}</group></item>"),
                RosterError::GroupTooLong,
                StanzaError::NotAcceptable,
            ),
        ];
        for (items, error, stanza_error) in cases {
            assert_eq!(parse(items), Err(error.clone()), "{items}");
            assert_eq!(error.stanza_error(), stanza_error, "{items}");
        }
    }

    #[test]
    fn only_a_number_is_a_cached_version() {
        let get = |ver: &str| {
            requested_version(&element(&format!("<query xmlns='jabber:iq:roster'{ver}/>")))
        };
        assert_eq!(get(" ver='12'"), Some(12));
        assert_eq!(get(" ver=''"), None);
        assert_eq!(get(" ver='abc'"), None);
        assert_eq!(get(""), None);
    }
}
