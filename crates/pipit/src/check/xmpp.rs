//! What the probe writes (stream headers, STARTTLS, SASL, bind, stanzas) and how it reads
//! the server's answers (features, SASL outcome, bind result, the message to self).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use pipit_proto::sasl::plain_initial_response;
use pipit_proto::xml::{Element, escape_attr_value, ns};

use super::probe::Received;

/// `<starttls/>` (RFC 6120 §5.4.2.1).
pub const STARTTLS: &str = "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>";
/// Initial presence (RFC 6121 §4.2).
pub const PRESENCE: &str = "<presence/>";

/// The account the probe logs in as.
#[derive(Clone, Debug)]
pub struct Account {
    /// The localpart, used as the SASL username (RFC 6120 §6.3.8).
    pub local: String,
    /// The domainpart: the stream `to` and the TLS server name.
    pub domain: String,
    /// The password.
    pub password: String,
}

/// A client stream header (RFC 6120 §4.7), with or without an XML declaration.
pub fn header(domain: &str, declaration: bool) -> String {
    format!(
        "{}<stream:stream to='{}' version='1.0' xmlns='jabber:client' \
         xmlns:stream='http://etherx.jabber.org/streams'>",
        if declaration {
            "<?xml version='1.0'?>"
        } else {
            ""
        },
        escape_attr_value(domain)
    )
}

/// `<auth mechanism='PLAIN'>` (RFC 4616, RFC 6120 §6.4.2).
pub fn plain_auth(local: &str, password: &str) -> String {
    auth("PLAIN", &plain_initial_response(None, local, password))
}

/// `<auth>` with an initial response.
pub fn auth(mechanism: &str, initial: &[u8]) -> String {
    format!(
        "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='{}'>{}</auth>",
        escape_attr_value(mechanism),
        encode(initial)
    )
}

/// `<response>` (RFC 6120 §6.4.3).
pub fn response(data: &[u8]) -> String {
    format!(
        "<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>{}</response>",
        encode(data)
    )
}

/// SASL data in base64; `=` for empty data (RFC 6120 §6.4.2).
pub fn encode(data: &[u8]) -> String {
    if data.is_empty() {
        "=".into()
    } else {
        BASE64.encode(data)
    }
}

/// The data in a SASL element's text, or `None` if it is not base64.
pub fn sasl_data(element: &Element) -> Option<Vec<u8>> {
    let text: String = element.text().split_whitespace().collect();
    if text.is_empty() || text == "=" {
        return Some(Vec::new());
    }
    BASE64.decode(text).ok()
}

/// What one login attempt uses: a resource, ids and a token unique to it.
#[derive(Clone, Debug)]
pub struct Plan {
    /// The resource asked for in the bind request.
    pub resource: String,
    /// The id of the bind request.
    pub bind_id: String,
    /// The id and body of the message to self.
    pub token: String,
    /// `local@domain/resource`, where the message to self goes.
    pub full_jid: String,
}

impl Plan {
    /// A fresh plan for `account`, with random names so that logins never collide.
    pub fn new(account: &Account) -> Plan {
        let tag = random_hex();
        let resource = format!("pipit-check-{tag}");
        Plan {
            full_jid: format!("{}@{}/{resource}", account.local, account.domain),
            resource,
            bind_id: format!("bind-{tag}"),
            token: format!("pipit-check-{tag}"),
        }
    }

    /// The bind request (RFC 6120 §7.6).
    pub fn bind(&self) -> String {
        format!(
            "<iq type='set' id='{}'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>\
             <resource>{}</resource></bind></iq>",
            self.bind_id, self.resource
        )
    }

    /// The message to self; `type='chat'` so that a renamed resource still gets it
    /// through the bare JID (RFC 6121 §8.5.3.2.1).
    pub fn message(&self) -> String {
        format!(
            "<message to='{}' type='chat' id='{}'><body>{}</body></message>",
            escape_attr_value(&self.full_jid),
            self.token,
            self.token
        )
    }

    /// Presence and the message to self.
    pub fn stanzas(&self) -> String {
        format!("{PRESENCE}{}", self.message())
    }

    /// Presence and the message to self sent to the bare JID: for logins where the
    /// server picks the resource (Bind2), unknown when the message is written. The
    /// presence makes this resource available, so it gets the message (RFC 6121 §8.5.2.1.1).
    pub fn stanzas_to_bare(&self) -> String {
        let bare = self
            .full_jid
            .split_once('/')
            .map_or(self.full_jid.as_str(), |(bare, _)| bare);
        format!(
            "{PRESENCE}<message to='{}' type='chat' id='{}'><body>{}</body></message>",
            escape_attr_value(bare),
            self.token,
            self.token
        )
    }

    /// The whole pipelined login after TLS: header, PLAIN auth, restart header, bind,
    /// presence and the message to self.
    pub fn pipelined_login(&self, account: &Account, restart_declaration: bool) -> String {
        format!(
            "{}{}{}{}{}",
            header(&account.domain, true),
            plain_auth(&account.local, &account.password),
            header(&account.domain, restart_declaration),
            self.bind(),
            self.stanzas()
        )
    }
}

/// 8 random bytes in hex (the time, should the OS refuse randomness: uniqueness is all
/// that is needed).
pub fn random_hex() -> String {
    let mut bytes = [0u8; 8];
    if getrandom::getrandom(&mut bytes).is_err() {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        bytes = (nanos as u64).to_be_bytes();
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The elements among `received`.
pub fn elements(received: &[Received]) -> impl Iterator<Item = &Element> {
    received.iter().filter_map(|r| match r {
        Received::Element(e) => Some(e),
        Received::Header => None,
    })
}

/// The last `<stream:features/>` among `received`.
pub fn features(received: &[Received]) -> Option<&Element> {
    elements(received)
        .filter(|e| e.is("features", ns::STREAM))
        .last()
}

/// Whether `received` holds a stream header followed by features: the answer to a
/// stream (re)start.
pub fn header_then_features(received: &[Received]) -> bool {
    received
        .iter()
        .position(|r| matches!(r, Received::Header))
        .is_some_and(|at| features(&received[at..]).is_some())
}

/// The SASL mechanisms a features element offers.
pub fn mechanisms(features: &Element) -> Vec<String> {
    features
        .get_child("mechanisms", ns::SASL)
        .map(|m| {
            m.children()
                .filter(|c| c.is("mechanism", ns::SASL))
                .map(|c| c.text().trim().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// An error element's condition: `<cond/>` plus its text, if any (RFC 6120 §4.9.2, §8.3.2).
pub fn condition(element: &Element) -> String {
    let mut cond = element
        .children()
        .find(|c| c.name() != "text" && c.name() != "error")
        .map(|c| format!("<{}/>", c.name()))
        .unwrap_or_else(|| "no condition".into());
    if let Some(text) = element.children().find(|c| c.name() == "text") {
        let text = text.text();
        let text = text.trim();
        if !text.is_empty() {
            cond.push_str(&format!(
                " \"{}\"",
                text.chars().take(200).collect::<String>()
            ));
        }
    }
    cond
}

/// The condition of the first stream error among `received`.
pub fn stream_error(received: &[Received]) -> Option<String> {
    elements(received)
        .find(|e| e.is("error", ns::STREAM))
        .map(condition)
}

/// The condition of a stanza's `<error/>` child.
pub fn stanza_error(stanza: &Element) -> String {
    stanza
        .children()
        .find(|c| c.name() == "error")
        .map(condition)
        .unwrap_or_else(|| "no condition".into())
}

/// How far a login got, read from what the server sent.
#[derive(Debug, Default)]
pub struct Progress {
    /// A stream error, if one came.
    pub stream_error: Option<String>,
    /// The first SASL outcome: `Ok` for `<success/>`, the condition for `<failure/>`.
    pub sasl: Option<Result<(), String>>,
    /// The bind result: the bound JID, or the error condition.
    pub bound: Option<Result<String, String>>,
    /// The message to self came back.
    pub message_back: bool,
    /// The message to self bounced with this condition.
    pub message_error: Option<String>,
}

impl Progress {
    /// Whether the login is over, one way or the other.
    pub fn finished(&self) -> bool {
        self.stream_error.is_some()
            || matches!(self.sasl, Some(Err(_)))
            || matches!(self.bound, Some(Err(_)))
            || self.message_back
            || self.message_error.is_some()
    }

    /// The bound JID if the whole login worked, else why not (`silence` says what the
    /// server's silence was: a timeout or a close).
    pub fn outcome(&self, silence: &str) -> Result<String, String> {
        if let Some(err) = &self.stream_error {
            return Err(format!("stream error {err}"));
        }
        match &self.sasl {
            None => return Err(format!("no answer to the auth: {silence}")),
            Some(Err(cond)) => return Err(format!("authentication failed: {cond}")),
            Some(Ok(())) => {}
        }
        let bound = match &self.bound {
            None => return Err(format!("authenticated, but no bind result: {silence}")),
            Some(Err(cond)) => return Err(format!("bind failed: {cond}")),
            Some(Ok(jid)) => jid.clone(),
        };
        if let Some(cond) = &self.message_error {
            return Err(format!(
                "bound {bound}, but the message to self bounced: {cond}"
            ));
        }
        if !self.message_back {
            return Err(format!(
                "bound {bound}, but the message to self did not come back: {silence}"
            ));
        }
        Ok(bound)
    }
}

/// Reads a login's progress from `received`, for the ids in `plan`.
pub fn progress(received: &[Received], plan: &Plan) -> Progress {
    let mut p = Progress::default();
    for e in elements(received) {
        if e.is("error", ns::STREAM) && p.stream_error.is_none() {
            p.stream_error = Some(condition(e));
        } else if e.is("success", ns::SASL) && p.sasl.is_none() {
            p.sasl = Some(Ok(()));
        } else if e.is("failure", ns::SASL) && p.sasl.is_none() {
            p.sasl = Some(Err(condition(e)));
        } else if e.name() == "iq" && e.attr("id") == Some(plan.bind_id.as_str()) {
            p.bound = Some(match e.attr("type") {
                Some("result") => Ok(e
                    .get_child("bind", ns::BIND)
                    .and_then(|b| b.get_child("jid", ns::BIND))
                    .map(|j| j.text().trim().to_owned())
                    .unwrap_or_else(|| "(no jid in the bind result)".into())),
                _ => Err(stanza_error(e)),
            });
        } else if let Some(answer) = message_to_self(e, plan) {
            match answer {
                Ok(()) => p.message_back = true,
                Err(cond) => p.message_error = Some(cond),
            }
        }
    }
    p
}

/// If `e` is the message to self of `plan`: `Ok` when it came back, the condition when
/// it bounced.
pub fn message_to_self(e: &Element, plan: &Plan) -> Option<Result<(), String>> {
    if e.name() != "message"
        || e.get_child("body", e.ns()).map(|b| b.text()).as_deref() != Some(plan.token.as_str())
    {
        return None;
    }
    Some(if e.attr("type") == Some("error") {
        Err(stanza_error(e))
    } else {
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use pipit_proto::xml::{Limits, StreamEvent, StreamParser};

    use super::*;

    fn parse(xml: &str) -> Vec<Received> {
        let mut parser = StreamParser::new(Limits::default());
        parser.feed(xml.as_bytes());
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

    fn account() -> Account {
        Account {
            local: "alice".into(),
            domain: "localhost".into(),
            password: "pw".into(),
        }
    }

    #[test]
    fn reads_a_whole_login() {
        let plan = Plan::new(&account());
        let xml = format!(
            "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>\
             <success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>\
             <iq type='result' id='{}'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>\
             <jid>{}</jid></bind></iq>\
             <message from='{}' type='chat'><body>{}</body></message>",
            plan.bind_id, plan.full_jid, plan.full_jid, plan.token
        );
        let p = progress(&parse(&xml), &plan);
        assert!(p.finished());
        assert_eq!(p.outcome("x"), Ok(plan.full_jid.clone()));
    }

    #[test]
    fn reads_failures_and_stream_errors() {
        let plan = Plan::new(&account());
        let xml = "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>\
             <failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><not-authorized/></failure>";
        let p = progress(&parse(xml), &plan);
        assert_eq!(
            p.outcome("x"),
            Err("authentication failed: <not-authorized/>".into())
        );
        let xml = "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>\
             <stream:error><not-well-formed xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>\
             <text xmlns='urn:ietf:params:xml:ns:xmpp-streams'>bad</text></stream:error>";
        assert_eq!(
            stream_error(&parse(xml)).as_deref(),
            Some("<not-well-formed/> \"bad\"")
        );
    }

    #[test]
    fn reads_mechanisms() {
        let xml = "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>\
             <stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>\
             <mechanism>SCRAM-SHA-1</mechanism><mechanism>PLAIN</mechanism></mechanisms>\
             </stream:features>";
        let received = parse(xml);
        assert!(header_then_features(&received));
        assert_eq!(
            mechanisms(features(&received).unwrap()),
            ["SCRAM-SHA-1", "PLAIN"]
        );
    }
}
