//! SASL2 (XEP-0388) with inline Bind2 (XEP-0386), Initial Authentication Pipelining
//! config versions (XEP-0509) and FAST tokens (XEP-0484): what the probe writes, and how
//! it reads the server's offer and answers.

use std::fmt;

use pipit_proto::jid::Jid;
use pipit_proto::sasl::Mechanism;
use pipit_proto::xml::{Element, escape_attr_value, ns};

use super::probe::Received;
use super::xmpp::{Plan, encode, message_to_self, random_hex, sasl_data, stream_error};

/// The Bind2 tag: the resource the server assigns starts with it (XEP-0386).
pub const TAG: &str = "pipit-check";

/// What the features after TLS offer through SASL2.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Offer {
    /// The mechanisms inside `<authentication/>` (XEP-0388 §2.1).
    pub mechanisms: Vec<String>,
    /// `<inline><bind xmlns='urn:xmpp:bind:0'/></inline>` (XEP-0386).
    pub bind2: bool,
    /// The `<config-version/>` value (XEP-0509), if announced.
    pub config_version: Option<String>,
    /// The HT mechanisms inside `<inline><fast xmlns='urn:xmpp:fast:0'/></inline>`
    /// (XEP-0484 §3.1); `None` without `<fast/>`.
    pub fast: Option<Vec<String>>,
    /// `<fast tls-0rtt='true'/>`: the server takes a FAST login in TLS 1.3 early data.
    pub zero_rtt: bool,
}

impl Offer {
    /// The SASL2 offer in `features`; `None` without `<authentication/>`.
    pub fn read(features: &Element) -> Option<Offer> {
        let auth = features.get_child("authentication", ns::SASL2)?;
        let inline = auth.get_child("inline", ns::SASL2);
        // The feature is a child of the features; inside <authentication/> is also taken.
        let version = [Some(features), Some(auth), inline]
            .into_iter()
            .flatten()
            .find_map(|parent| parent.get_child("config-version", ns::IAP))
            .and_then(|v| v.attr("value"))
            .map(str::to_owned);
        Some(Offer {
            mechanisms: auth
                .children()
                .filter(|c| c.is("mechanism", ns::SASL2))
                .map(|c| c.text().trim().to_owned())
                .collect(),
            bind2: inline.is_some_and(|i| i.get_child("bind", ns::BIND2).is_some()),
            config_version: version,
            fast: inline
                .and_then(|i| i.get_child("fast", ns::FAST))
                .map(|fast| {
                    fast.children()
                        .filter(|c| c.is("mechanism", ns::FAST))
                        .map(|c| c.text().trim().to_owned())
                        .collect()
                }),
            zero_rtt: inline
                .and_then(|i| i.get_child("fast", ns::FAST))
                .and_then(|fast| fast.attr("tls-0rtt"))
                .is_some_and(|v| v == "true" || v == "1"),
        })
    }

    /// The mechanism a SASL2 login uses: PLAIN (one step, so a whole login fits in one
    /// flight), else SCRAM-SHA-256, else SCRAM-SHA-1.
    pub fn mechanism(&self) -> Option<Mechanism> {
        [
            Mechanism::Plain,
            Mechanism::ScramSha256,
            Mechanism::ScramSha1,
        ]
        .into_iter()
        .find(|m| self.mechanisms.iter().any(|o| o == m.name()))
    }

    /// Whether a -PLUS mechanism is offered (the SCRAM GS2 flag says so, RFC 5802 §6).
    pub fn plus(&self) -> bool {
        self.mechanisms.iter().any(|m| m.ends_with("-PLUS"))
    }
}

/// A random UUID version 4 (RFC 9562 §5.4): the `<user-agent/>` id (XEP-0388 §2.3).
pub fn user_agent_id() -> String {
    let h = format!("{}{}", random_hex(), random_hex());
    let variant = match u8::from_str_radix(&h[16..17], 16).unwrap_or(0) & 3 {
        0 => '8',
        1 => '9',
        2 => 'a',
        _ => 'b',
    };
    format!(
        "{}-{}-4{}-{variant}{}-{}",
        &h[0..8],
        &h[8..12],
        &h[13..16],
        &h[17..20],
        &h[20..32]
    )
}

/// `<authenticate/>` (XEP-0388 §2.3) with the initial response, a user agent, an inline
/// Bind2 request with [`TAG`] (XEP-0386), `fast` (FAST's children, XEP-0484, as written
/// by [`request_token`] and [`fast`]) and, for a pipelined one, the config version it was
/// written against (XEP-0509).
pub fn authenticate(
    mechanism: &str,
    initial: &[u8],
    user_agent: &str,
    fast: &str,
    version: Option<&str>,
) -> String {
    let version = version
        .map(|v| {
            format!(
                "<config-version xmlns='urn:xmpp:iap:0' scheme='opaque' value='{}'/>",
                escape_attr_value(v)
            )
        })
        .unwrap_or_default();
    format!(
        "<authenticate xmlns='urn:xmpp:sasl:2' mechanism='{}'>\
         <initial-response>{}</initial-response>\
         <user-agent id='{}'><software>pipit check</software></user-agent>\
         <bind xmlns='urn:xmpp:bind:0'><tag>{TAG}</tag></bind>{fast}{version}</authenticate>",
        escape_attr_value(mechanism),
        encode(initial),
        escape_attr_value(user_agent)
    )
}

/// `<request-token/>` (XEP-0484 §3.2): asks for a token for `mechanism` with this login.
pub fn request_token(mechanism: &str) -> String {
    format!(
        "<request-token xmlns='urn:xmpp:fast:0' mechanism='{}'/>",
        escape_attr_value(mechanism)
    )
}

/// `<fast/>` (XEP-0484 §3.4): this login uses a token, with `count` (greater than any
/// count used with it before) and, with `invalidate`, ends the token (§3.6).
pub fn fast(count: u64, invalidate: bool) -> String {
    format!(
        "<fast xmlns='urn:xmpp:fast:0' count='{count}'{}/>",
        if invalidate { " invalidate='true'" } else { "" }
    )
}

/// `<response xmlns='urn:xmpp:sasl:2'>` (XEP-0388 §2.4).
pub fn response(data: &[u8]) -> String {
    format!(
        "<response xmlns='urn:xmpp:sasl:2'>{}</response>",
        encode(data)
    )
}

/// A SASL2 `<success/>` (XEP-0388 §2.6.1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Success {
    /// `<additional-data/>`, decoded (the SCRAM server-final message).
    pub additional_data: Option<Vec<u8>>,
    /// `<authorization-identifier/>`: the full JID when Bind2 bound a resource.
    pub identity: Option<String>,
    /// `<bound xmlns='urn:xmpp:bind:0'/>` (XEP-0386).
    pub bound: bool,
    /// `<token xmlns='urn:xmpp:fast:0'/>` (XEP-0484 §3.3), if one was issued.
    pub token: Option<Token>,
}

/// A FAST token the server issued (XEP-0484 §3.3). A secret: its `Debug` hides it.
#[derive(Clone, PartialEq, Eq)]
pub struct Token {
    /// The `token` attribute: the HMAC key of the HT mechanism.
    pub secret: String,
    /// The `expiry` attribute (XEP-0082 date-time), as sent.
    pub expiry: Option<String>,
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Token")
            .field("expiry", &self.expiry)
            .finish_non_exhaustive()
    }
}

impl Success {
    /// The full JID bound, checked against the account, or why the success is not a bound
    /// session.
    pub fn bound_jid(&self, local: &str, domain: &str) -> Result<String, String> {
        let Some(identity) = &self.identity else {
            return Err("<success/> without an <authorization-identifier/>".into());
        };
        let jid = Jid::parse(identity)
            .map_err(|e| format!("<success/> names {identity}, which is not a JID ({e})"))?;
        let account = Jid::bare(local, domain).ok();
        if account.is_some_and(|a| a != jid.to_bare()) {
            return Err(format!(
                "<success/> names {identity}, not the account {local}@{domain}"
            ));
        }
        if !jid.is_full() {
            return Err(format!(
                "<success/> names the bare JID {identity}: Bind2 bound no resource"
            ));
        }
        if !self.bound {
            return Err(format!("<success/> names {identity}, but without <bound/>"));
        }
        Ok(identity.clone())
    }
}

/// A SASL2 `<failure/>` (XEP-0388 §2.6.2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// Its conditions (the SASL one, then any application one) and text, for details.
    pub conditions: String,
    /// The SASL condition is `<aborted/>`.
    pub aborted: bool,
    /// The SASL condition is `<not-authorized/>` (RFC 6120 §6.5.10).
    pub not_authorized: bool,
    /// It carries `<config-version-mismatch xmlns='urn:xmpp:iap:0'/>` (XEP-0509).
    pub mismatch: bool,
}

/// A SASL2 answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// `<challenge/>`, decoded.
    Challenge(Vec<u8>),
    /// `<success/>`.
    Success(Success),
    /// `<failure/>`.
    Failure(Failure),
    /// `<continue/>`: the server wants tasks (XEP-0388 §2.6.3), which the probe does not do.
    Continue,
}

/// Reads one element as a SASL2 answer: `None` if it is not one, `Err` if it is
/// malformed (data that is not base64).
pub fn answer(e: &Element) -> Option<Result<Answer, String>> {
    if e.ns() != ns::SASL2 {
        return None;
    }
    let not_base64 = |what: &str| format!("SASL2 <{what}/> is not base64");
    Some(match e.name() {
        "challenge" => sasl_data(e)
            .map(Answer::Challenge)
            .ok_or_else(|| not_base64("challenge")),
        "success" => {
            let additional_data = match e.get_child("additional-data", ns::SASL2) {
                Some(data) => match sasl_data(data) {
                    Some(data) => Some(data),
                    None => return Some(Err(not_base64("additional-data"))),
                },
                None => None,
            };
            Ok(Answer::Success(Success {
                additional_data,
                identity: e
                    .get_child("authorization-identifier", ns::SASL2)
                    .map(|i| i.text().trim().to_owned()),
                bound: e.get_child("bound", ns::BIND2).is_some(),
                token: e.get_child("token", ns::FAST).and_then(|t| {
                    Some(Token {
                        secret: t.attr("token")?.to_owned(),
                        expiry: t.attr("expiry").map(str::to_owned),
                    })
                }),
            }))
        }
        "failure" => Ok(Answer::Failure(failure(e))),
        "continue" => Ok(Answer::Continue),
        _ => return None,
    })
}

/// A `<failure/>`'s conditions: `<aborted/> + <config-version-mismatch/>`, then the text.
fn failure(e: &Element) -> Failure {
    let mut conditions = e
        .children()
        .filter(|c| c.name() != "text")
        .map(|c| format!("<{}/>", c.name()))
        .collect::<Vec<_>>()
        .join(" + ");
    if conditions.is_empty() {
        conditions = "no condition".into();
    }
    if let Some(text) = e.get_child("text", ns::SASL2) {
        let text = text.text();
        let text = text.trim();
        if !text.is_empty() {
            let text: String = text.chars().take(200).collect();
            conditions.push_str(&format!(" \"{text}\""));
        }
    }
    Failure {
        conditions,
        aborted: e.get_child("aborted", ns::SASL).is_some(),
        not_authorized: e.get_child("not-authorized", ns::SASL).is_some(),
        mismatch: e.get_child("config-version-mismatch", ns::IAP).is_some(),
    }
}

/// How far a SASL2 login got, read from what the server sent.
#[derive(Debug, Default)]
pub struct Progress {
    /// A stream error, if one came.
    pub stream_error: Option<String>,
    /// The first SASL2 answer.
    pub answer: Option<Result<Answer, String>>,
    /// The message to self came back.
    pub message_back: bool,
    /// The message to self bounced with this condition.
    pub message_error: Option<String>,
    /// A stream header came after the answer: a restart, which SASL2 does not have.
    pub restarted: bool,
}

impl Progress {
    /// Whether there is nothing more to wait for: an answer that needs no message (a
    /// challenge, a failure), or a success and the message's fate, or a stream error.
    pub fn settled(&self) -> bool {
        self.stream_error.is_some()
            || match &self.answer {
                None => false,
                Some(Ok(Answer::Success(_))) => self.message_back || self.message_error.is_some(),
                Some(_) => true,
            }
    }
}

/// Reads a SASL2 login's progress from `received`, for the message to self of `plan`.
pub fn progress(received: &[Received], plan: &Plan) -> Progress {
    let mut p = Progress {
        stream_error: stream_error(received),
        ..Progress::default()
    };
    for r in received {
        let e = match r {
            Received::Header => {
                p.restarted |= p.answer.is_some();
                continue;
            }
            Received::Element(e) => e,
        };
        if p.answer.is_none()
            && let Some(answer) = answer(e)
        {
            p.answer = Some(answer);
            continue;
        }
        match message_to_self(e, plan) {
            Some(Ok(())) => p.message_back = true,
            Some(Err(cond)) => p.message_error = Some(cond),
            None => {}
        }
    }
    p
}

#[cfg(test)]
mod tests {
    use pipit_proto::xml::{Limits, StreamEvent, StreamParser};

    use super::*;
    use crate::check::xmpp::{Account, features};

    fn parse(xml: &str) -> Vec<Received> {
        let mut parser = StreamParser::new(Limits::default());
        parser.feed(
            format!(
                "<stream:stream xmlns='jabber:client' \
                 xmlns:stream='http://etherx.jabber.org/streams'>{xml}"
            )
            .as_bytes(),
        );
        let mut out = Vec::new();
        while let Ok(Some(event)) = parser.next_event() {
            match event {
                StreamEvent::Open(_) => out.push(Received::Header),
                StreamEvent::Element(e) => out.push(Received::Element(e)),
                StreamEvent::Close => break,
            }
        }
        out
    }

    fn plan() -> Plan {
        Plan::new(&Account {
            local: "alice".into(),
            domain: "localhost".into(),
            password: "pw".into(),
        })
    }

    #[test]
    fn reads_the_offer() {
        let received = parse(
            "<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>\
             <mechanism>PLAIN</mechanism></mechanisms>\
             <authentication xmlns='urn:xmpp:sasl:2'><mechanism>SCRAM-SHA-256-PLUS</mechanism>\
             <mechanism>SCRAM-SHA-256</mechanism><mechanism>PLAIN</mechanism>\
             <inline><bind xmlns='urn:xmpp:bind:0'/><fast xmlns='urn:xmpp:fast:0' tls-0rtt='true'>\
             <mechanism>HT-SHA-256-EXPR</mechanism><mechanism>HT-SHA-256-NONE</mechanism>\
             </fast></inline></authentication>\
             <config-version xmlns='urn:xmpp:iap:0' scheme='opaque' value='v1'/>\
             </stream:features>",
        );
        let offer = Offer::read(features(&received).unwrap()).unwrap();
        assert!(offer.bind2 && offer.plus());
        assert_eq!(
            offer.fast,
            Some(vec!["HT-SHA-256-EXPR".into(), "HT-SHA-256-NONE".into()])
        );
        assert_eq!(offer.config_version.as_deref(), Some("v1"));
        assert_eq!(offer.mechanism(), Some(Mechanism::Plain));

        let received = parse(
            "<stream:features><authentication xmlns='urn:xmpp:sasl:2'>\
             <mechanism>SCRAM-SHA-1</mechanism><mechanism>SCRAM-SHA-256</mechanism>\
             </authentication></stream:features>",
        );
        let offer = Offer::read(features(&received).unwrap()).unwrap();
        assert!(!offer.bind2 && !offer.plus());
        assert_eq!(offer.config_version, None);
        assert_eq!(offer.fast, None);
        assert_eq!(offer.mechanism(), Some(Mechanism::ScramSha256));

        let received = parse(
            "<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>\
             <mechanism>PLAIN</mechanism></mechanisms></stream:features>",
        );
        assert_eq!(Offer::read(features(&received).unwrap()), None);
    }

    #[test]
    fn writes_authenticate_with_bind2_and_the_version() {
        let xml = authenticate("PLAIN", b"\0a\0b", "ua", "", Some("v'1"));
        assert!(xml.starts_with("<authenticate xmlns='urn:xmpp:sasl:2' mechanism='PLAIN'>"));
        assert!(xml.contains("<initial-response>AGEAYg==</initial-response>"));
        assert!(xml.contains("<bind xmlns='urn:xmpp:bind:0'><tag>pipit-check</tag></bind>"));
        assert!(xml.contains("value='v&apos;1'/></authenticate>"), "{xml}");
        assert!(!authenticate("PLAIN", b"", "ua", "", None).contains("config-version"));
        let xml = authenticate("HT-SHA-256-NONE", b"a\0h", "ua", &fast(7, true), Some("v"));
        assert!(
            xml.contains(
                "</bind><fast xmlns='urn:xmpp:fast:0' count='7' invalidate='true'/>\
                 <config-version"
            ),
            "{xml}"
        );
        assert_eq!(fast(1, false), "<fast xmlns='urn:xmpp:fast:0' count='1'/>");
        assert_eq!(
            request_token("HT-SHA-256-NONE"),
            "<request-token xmlns='urn:xmpp:fast:0' mechanism='HT-SHA-256-NONE'/>"
        );
        let id = user_agent_id();
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4");
        assert!("89ab".contains(&id[19..20]), "{id}");
    }

    #[test]
    fn reads_a_bound_success_and_the_message() {
        let plan = plan();
        let received = parse(&format!(
            "<success xmlns='urn:xmpp:sasl:2'><additional-data>dj1hYmM=</additional-data>\
             <authorization-identifier>alice@localhost/pipit-check.x1</authorization-identifier>\
             <bound xmlns='urn:xmpp:bind:0'/></success>\
             <message type='chat'><body>{}</body></message>",
            plan.token
        ));
        let p = progress(&received, &plan);
        assert!(p.settled() && p.message_back && !p.restarted);
        let Some(Ok(Answer::Success(success))) = p.answer else {
            panic!("{p:?}");
        };
        assert_eq!(success.additional_data.as_deref(), Some(&b"v=abc"[..]));
        assert_eq!(success.token, None);
        assert_eq!(
            success.bound_jid("alice", "localhost"),
            Ok("alice@localhost/pipit-check.x1".into())
        );
        assert!(success.bound_jid("bob", "localhost").is_err());
        let bare = Success {
            identity: Some("alice@localhost".into()),
            ..success.clone()
        };
        assert!(
            bare.bound_jid("alice", "localhost")
                .unwrap_err()
                .contains("bare JID")
        );
        let unbound = Success {
            bound: false,
            ..success
        };
        assert!(
            unbound
                .bound_jid("alice", "localhost")
                .unwrap_err()
                .contains("without <bound/>")
        );
    }

    #[test]
    fn reads_an_issued_token_and_keeps_it_out_of_debug() {
        let received = parse(
            "<success xmlns='urn:xmpp:sasl:2'>\
             <token xmlns='urn:xmpp:fast:0' expiry='2026-01-01T00:00:00Z' token='s3cr3t'/>\
             <authorization-identifier>alice@localhost/x</authorization-identifier>\
             <bound xmlns='urn:xmpp:bind:0'/></success>",
        );
        let Some(Ok(Answer::Success(success))) = progress(&received, &plan()).answer else {
            panic!();
        };
        let token = success.token.clone().unwrap();
        assert_eq!(token.secret, "s3cr3t");
        assert_eq!(token.expiry.as_deref(), Some("2026-01-01T00:00:00Z"));
        assert!(!format!("{success:?}").contains("s3cr3t"));
        // A <token/> without the token is no token.
        let received = parse(
            "<success xmlns='urn:xmpp:sasl:2'><token xmlns='urn:xmpp:fast:0' expiry='x'/>\
             </success>",
        );
        let Some(Ok(Answer::Success(success))) = progress(&received, &plan()).answer else {
            panic!();
        };
        assert_eq!(success.token, None);
    }

    #[test]
    fn sees_a_restart_after_success() {
        let plan = plan();
        let mut received = parse(
            "<success xmlns='urn:xmpp:sasl:2'>\
             <authorization-identifier>alice@localhost/x</authorization-identifier>\
             <bound xmlns='urn:xmpp:bind:0'/></success>",
        );
        assert!(!progress(&received, &plan).restarted);
        received.push(Received::Header);
        assert!(progress(&received, &plan).restarted);
    }

    #[test]
    fn reads_failures_and_challenges() {
        let plan = plan();
        let received = parse(
            "<failure xmlns='urn:xmpp:sasl:2'><aborted xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>\
             <config-version-mismatch xmlns='urn:xmpp:iap:0'/></failure>",
        );
        let p = progress(&received, &plan);
        assert!(p.settled());
        assert_eq!(
            p.answer,
            Some(Ok(Answer::Failure(Failure {
                conditions: "<aborted/> + <config-version-mismatch/>".into(),
                aborted: true,
                not_authorized: false,
                mismatch: true,
            })))
        );
        let received = parse(
            "<failure xmlns='urn:xmpp:sasl:2'>\
             <not-authorized xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>\
             <text>nope</text></failure>",
        );
        let Some(Ok(Answer::Failure(f))) = progress(&received, &plan).answer else {
            panic!();
        };
        assert_eq!(f.conditions, "<not-authorized/> \"nope\"");
        assert!(!f.aborted && !f.mismatch && f.not_authorized);
        let received = parse("<challenge xmlns='urn:xmpp:sasl:2'>cj1hYmM=</challenge>");
        assert_eq!(
            progress(&received, &plan).answer,
            Some(Ok(Answer::Challenge(b"r=abc".to_vec())))
        );
        let received = parse("<challenge xmlns='urn:xmpp:sasl:2'>not base64!</challenge>");
        assert!(matches!(progress(&received, &plan).answer, Some(Err(_))));
        // A SASL1 success is no SASL2 answer.
        let received = parse("<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>");
        assert!(progress(&received, &plan).answer.is_none());
    }
}
