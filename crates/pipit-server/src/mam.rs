//! Message Archive Management (XEP-0313, `urn:xmpp:mam:2`) for an account's own
//! archive: the query form (§4.1.1), filtering by peer and time (§4.1), paging
//! with Result Set Management (XEP-0059) and the results (§4.2, §4.3).
//!
//! Pages are bounded by `mam-max-page`: a client asking for more (or for no
//! limit) gets that many and `complete` is left off, so it pages on (§4.3).

use pipit_proto::datetime::{format_micros, parse_micros};
use pipit_proto::jid::Jid;
use pipit_proto::random::Random;
use pipit_proto::stanza::{StanzaError, iq_result};
use pipit_proto::xml::{Element, ns, parse_stored};
use pipit_store::{ArchiveQuery, ArchivedMessage, Page, StoreError};

use crate::im::reply_error;
use crate::offline::stored_limits;
use crate::server::Context;
use crate::session::OsRandom;

/// The form's fields this server filters on (§4.1.1), besides `FORM_TYPE`.
const FIELDS: [(&str, &str); 3] = [
    ("with", "jid-single"),
    ("start", "text-single"),
    ("end", "text-single"),
];

/// §4.1.5: the query form, answering `<query/>` in an iq get.
pub fn form(iq: &Element) -> Element {
    let mut x = Element::new("x", ns::DATA_FORMS)
        .with_attr("type", "form")
        .with_child(
            Element::new("field", ns::DATA_FORMS)
                .with_attr("var", "FORM_TYPE")
                .with_attr("type", "hidden")
                .with_child(Element::new("value", ns::DATA_FORMS).with_text(ns::MAM)),
        );
    for (var, kind) in FIELDS {
        x.append_child(
            Element::new("field", ns::DATA_FORMS)
                .with_attr("var", var)
                .with_attr("type", kind),
        );
    }
    iq_result(iq).with_child(Element::new("query", ns::MAM).with_child(x))
}

/// §4: runs the owner's query and sends the results, then the iq result with
/// `<fin/>`, all to the requesting resource, in that order.
pub async fn query(ctx: &Context, from: &Jid, iq: &Element, query: &Element) {
    let parsed = match parse_query(query, ctx.config.mam_max_page) {
        Ok(parsed) => parsed,
        Err(error) => return reply_error(ctx, from, iq, error),
    };
    let owner = from.to_bare();
    let (local, domain) = (owner.local().unwrap_or_default(), owner.domain());
    let page = match ctx.store.query_archive(local, domain, &parsed).await {
        Ok(page) => page,
        // §4.3 (paging): an ID the archive does not hold.
        Err(StoreError::ArchiveIdNotFound) => {
            return reply_error(ctx, from, iq, StanzaError::ItemNotFound);
        }
        Err(e) => {
            tracing::error!("{owner}: archive query: {e}");
            return reply_error(ctx, from, iq, StanzaError::InternalServerError);
        }
    };
    let query_id = query.attr("queryid");
    for message in &page.messages {
        match result(from, query_id, message) {
            Some(result) => {
                ctx.router.deliver_to_full(from, result);
            }
            None => tracing::error!("{owner}: archived {} unreadable", message.stanza_id),
        }
    }
    let mut set = Element::new("set", ns::RSM);
    if let (Some(first), Some(last)) = (page.messages.first(), page.messages.last()) {
        set.append_child(Element::new("first", ns::RSM).with_text(first.stanza_id.clone()));
        set.append_child(Element::new("last", ns::RSM).with_text(last.stanza_id.clone()));
    }
    let mut fin = Element::new("fin", ns::MAM).with_child(set);
    if page.complete {
        fin.set_attr("complete", "true");
    }
    ctx.router
        .deliver_to_full(from, iq_result(iq).with_child(fin));
}

/// §4.2: one archived message, forwarded (XEP-0297) with its time (XEP-0203).
fn result(to: &Jid, query_id: Option<&str>, message: &ArchivedMessage) -> Option<Element> {
    let stanza = parse_stored(message.stanza.as_bytes(), stored_limits()).ok()?;
    let mut result = Element::new("result", ns::MAM).with_attr("id", message.stanza_id.clone());
    if let Some(id) = query_id {
        result.set_attr("queryid", id);
    }
    result.append_child(
        Element::new("forwarded", ns::FORWARD)
            .with_child(
                Element::new("delay", ns::DELAY)
                    .with_attr("stamp", format_micros(message.at_micros)),
            )
            .with_child(stanza),
    );
    Some(
        Element::new("message", ns::CLIENT)
            .with_attr("to", to.to_string())
            .with_attr("id", OsRandom.hex(8))
            .with_child(result),
    )
}

/// The filters (§4.1) and the page (XEP-0059) of a `<query/>`. Unknown fields,
/// values that are not JIDs or dates, and paging by index are `bad-request` or
/// `feature-not-implemented`, as §4.1.1 and XEP-0059 §2.4 say.
fn parse_query(query: &Element, max_page: usize) -> Result<ArchiveQuery, StanzaError> {
    let mut parsed = ArchiveQuery {
        max: max_page,
        ..ArchiveQuery::default()
    };
    if let Some(form) = query.get_child("x", ns::DATA_FORMS) {
        for field in form.children().filter(|c| c.is("field", ns::DATA_FORMS)) {
            let value = field
                .get_child("value", ns::DATA_FORMS)
                .map(|v| v.text())
                .unwrap_or_default();
            match field.attr("var").unwrap_or_default() {
                "FORM_TYPE" if value == ns::MAM => {}
                "with" => {
                    let jid = Jid::parse(value.trim()).map_err(|_| StanzaError::JidMalformed)?;
                    parsed.with = Some(jid.to_bare().to_string());
                }
                "start" => parsed.start = Some(date(&value)?),
                "end" => parsed.end = Some(date(&value)?),
                _ => return Err(StanzaError::BadRequest),
            }
        }
    }
    if let Some(set) = query.get_child("set", ns::RSM) {
        if set.get_child("index", ns::RSM).is_some() {
            return Err(StanzaError::FeatureNotImplemented);
        }
        if let Some(max) = set.get_child("max", ns::RSM) {
            let asked: usize = max
                .text()
                .trim()
                .parse()
                .map_err(|_| StanzaError::BadRequest)?;
            parsed.max = asked.min(max_page);
        }
        let after = set.get_child("after", ns::RSM).map(|a| a.text());
        let before = set.get_child("before", ns::RSM).map(|b| b.text());
        parsed.page = match (after, before) {
            (Some(_), Some(_)) => return Err(StanzaError::BadRequest),
            (Some(after), None) if !after.trim().is_empty() => Page::After(after.trim().into()),
            (None, Some(before)) if before.trim().is_empty() => Page::Last,
            (None, Some(before)) => Page::Before(before.trim().into()),
            (None, None) => Page::First,
            (Some(_), None) => return Err(StanzaError::BadRequest),
        };
    }
    Ok(parsed)
}

fn date(value: &str) -> Result<i64, StanzaError> {
    parse_micros(value.trim()).ok_or(StanzaError::BadRequest)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query_with(children: Vec<Element>) -> Element {
        let mut q = Element::new("query", ns::MAM);
        for c in children {
            q.append_child(c);
        }
        q
    }

    fn field(var: &str, value: &str) -> Element {
        Element::new("field", ns::DATA_FORMS)
            .with_attr("var", var)
            .with_child(Element::new("value", ns::DATA_FORMS).with_text(value))
    }

    fn form(fields: Vec<Element>) -> Element {
        let mut x = Element::new("x", ns::DATA_FORMS).with_attr("type", "submit");
        x.append_child(field("FORM_TYPE", ns::MAM));
        for f in fields {
            x.append_child(f);
        }
        x
    }

    fn rsm(children: &[(&str, &str)]) -> Element {
        let mut set = Element::new("set", ns::RSM);
        for (name, text) in children {
            set.append_child(Element::new(*name, ns::RSM).with_text(*text));
        }
        set
    }

    #[test]
    fn filters_and_paging_are_read() {
        let q = query_with(vec![
            form(vec![
                field("with", "Romeo@Montague.lit/orchard"),
                field("start", "2010-06-07T00:00:00Z"),
                field("end", "2010-07-07T13:23:54Z"),
            ]),
            rsm(&[("max", "10"), ("after", "abc")]),
        ]);
        let parsed = parse_query(&q, 100).unwrap();
        assert_eq!(parsed.with.as_deref(), Some("romeo@montague.lit"));
        assert_eq!(parsed.start, parse_micros("2010-06-07T00:00:00Z"));
        assert_eq!(parsed.end, parse_micros("2010-07-07T13:23:54Z"));
        assert_eq!((parsed.max, parsed.page), (10, Page::After("abc".into())));
    }

    #[test]
    fn pages_are_bounded_and_default_to_the_bound() {
        assert_eq!(parse_query(&query_with(vec![]), 50).unwrap().max, 50);
        let big = query_with(vec![rsm(&[("max", "100000")])]);
        assert_eq!(parse_query(&big, 50).unwrap().max, 50);
        let last = query_with(vec![rsm(&[("before", "")])]);
        assert_eq!(parse_query(&last, 50).unwrap().page, Page::Last);
        let before = query_with(vec![rsm(&[("before", "x9")])]);
        assert_eq!(
            parse_query(&before, 50).unwrap().page,
            Page::Before("x9".into())
        );
    }

    #[test]
    fn bad_queries_get_the_right_error() {
        let cases = [
            (
                vec![form(vec![field("with", "@bad")])],
                StanzaError::JidMalformed,
            ),
            (
                vec![form(vec![field("start", "yesterday")])],
                StanzaError::BadRequest,
            ),
            (
                vec![form(vec![field("color", "red")])],
                StanzaError::BadRequest,
            ),
            (vec![rsm(&[("max", "-1")])], StanzaError::BadRequest),
            (
                vec![rsm(&[("after", "a"), ("before", "b")])],
                StanzaError::BadRequest,
            ),
            (vec![rsm(&[("after", "")])], StanzaError::BadRequest),
            (
                vec![rsm(&[("index", "3")])],
                StanzaError::FeatureNotImplemented,
            ),
        ];
        for (children, error) in cases {
            assert_eq!(parse_query(&query_with(children), 100), Err(error));
        }
    }
}
