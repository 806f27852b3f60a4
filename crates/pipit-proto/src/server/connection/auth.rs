//! Authentication on the connection: RFC 6120 SASL and SASL2 (XEP-0388), the
//! pipelined restart after it, and what a SASL2 success carries inline.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;

use super::{Profile, SaslExchange, ServerConnection, State};
use crate::error::StreamError;
use crate::jid::{Jid, prep_local};
use crate::sasl::{
    ChannelBindingInfo, ChannelBindingType, HtMechanism, Mechanism, SaslError, ServerSession, Step,
    StoredCredentials,
};
use crate::server::Event;
use crate::server::early_data;
use crate::server::fast;
use crate::server::features;
use crate::server::sasl2::{self, Authenticate};
use crate::server::scram_upgrade;
use crate::server::sm::Via;
use crate::xml::{Element, ns};

impl ServerConnection {
    /// Answers [`Event::NeedCredentials`]: `None` for no such account.
    pub fn provide_credentials(&mut self, credentials: Option<StoredCredentials>) {
        let State::SaslCredentials(mut exchange) = std::mem::replace(&mut self.state, State::Open)
        else {
            return;
        };
        let nonce = self.nonce();
        exchange.stored_iterations = credentials.as_ref().map(|c| c.iterations);
        let step = exchange.session.credentials(credentials.as_ref(), &nonce);
        self.sasl_continue(exchange, step);
        self.process();
        self.transport.flush(&mut self.out);
    }

    /// RFC 6120 §6.4.2: the client picks a mechanism.
    pub(super) fn auth(&mut self, el: &Element) -> Result<(), StreamError> {
        if self.early.came_early() {
            // DESIGN.md rule 7: never a password in early data, which is neither
            // forward-secret nor safe from replay.
            let error = SaslError::MalformedRequest("no password in TLS early data".into());
            self.sasl_failure(&Profile::Sasl1, error);
            return Ok(());
        }
        let initial = decode_sasl_payload(&el.text());
        self.start_sasl(el.attr("mechanism"), initial, Profile::Sasl1)
    }

    /// XEP-0388 §2.3: SASL2 `<authenticate/>`, with its inline requests.
    pub(super) fn authenticate2(&mut self, el: &Element) -> Result<(), StreamError> {
        let Some(request) = Authenticate::parse(el) else {
            let error = SaslError::MalformedRequest("no mechanism".into());
            self.write_element_in(&sasl2::failure(&error, None), ns::STREAM);
            return Ok(());
        };
        if self.early.came_early() && HtMechanism::from_name(&request.mechanism).is_none() {
            // DESIGN.md rule 7: never a password in early data, which is neither
            // forward-secret nor safe from replay; only a FAST token with a count.
            let error = SaslError::MalformedRequest("no password in TLS early data".into());
            self.write_element_in(&sasl2::failure(&error, None), ns::STREAM);
            return Ok(());
        }
        if early_data::needs_count(&request, self.early.came_early()) {
            // XEP-0484 §3.4: without a count nothing tells a replay of the early
            // data from the client's own request.
            let error = SaslError::MalformedRequest(
                "a FAST authentication in TLS early data needs a count".into(),
            );
            self.write_element_in(&sasl2::failure(&error, None), ns::STREAM);
            return Ok(());
        }
        // XEP-0509 §3.2: a request pipelined against another configuration is
        // refused without prejudice: no failed login is counted, and the client,
        // which has the new features by now, retries.
        if request
            .config_version
            .as_ref()
            .is_some_and(|v| Some(v) != self.config_version.as_ref())
        {
            let mismatch = Element::new("config-version-mismatch", ns::IAP);
            let failure = sasl2::failure(&SaslError::Aborted, Some(mismatch));
            self.write_element_in(&failure, ns::STREAM);
            return Ok(());
        }
        let initial = match &request.initial_response {
            Some(text) => decode_sasl_payload(text).map(|d| Some(d.unwrap_or_default())),
            None => Ok(None),
        };
        let mechanism = request.mechanism.clone();
        self.start_sasl(Some(&mechanism), initial, Profile::Sasl2(Box::new(request)))
    }

    /// Starts an exchange in either profile.
    pub(super) fn start_sasl(
        &mut self,
        mechanism: Option<&str>,
        initial: Result<Option<Vec<u8>>, SaslError>,
        profile: Profile,
    ) -> Result<(), StreamError> {
        if self.authenticated.is_some() {
            return Err(StreamError::PolicyViolation("already authenticated".into()));
        }
        if !matches!(self.state, State::Open) {
            self.state = State::Open;
            let error = SaslError::MalformedRequest("exchange in progress".into());
            self.sasl_failure(&profile, error);
            return Ok(());
        }
        if !self.transport.is_tls() {
            // RFC 6120 §6.5.3: no authentication before TLS, on either port.
            let failure = Element::new("failure", profile.ns())
                .with_child(Element::new("encryption-required", ns::SASL));
            self.write_element_in(&failure, ns::STREAM);
            return Ok(());
        }
        let bindings = self.transport.channel_bindings(self.end_point_hash());
        let offered: Vec<_> = bindings.iter().map(|(t, _)| *t).collect();
        if let Profile::Sasl2(request) = &profile
            && let Some(ht) = mechanism
                .and_then(HtMechanism::from_name)
                .filter(|m| fast::offered(&offered).contains(m))
        {
            match initial {
                Ok(initial) => self.start_fast(ht, initial, (**request).clone()),
                Err(e) => self.sasl_failure(&profile, e),
            }
            return Ok(());
        }
        let Some(mechanism) = mechanism
            .and_then(Mechanism::from_name)
            .filter(|m| features::offered_mechanisms(&offered).contains(m))
        else {
            self.sasl_failure(&profile, SaslError::InvalidMechanism);
            return Ok(());
        };
        let initial = match initial {
            Ok(initial) => initial,
            Err(e) => {
                self.sasl_failure(&profile, e);
                return Ok(());
            }
        };
        let cb = ChannelBindingInfo {
            plus_advertised: !offered.is_empty(),
            data: bindings,
        };
        match ServerSession::start(mechanism, initial.as_deref(), &cb) {
            Ok((mut session, step)) => {
                session.set_decoy_secret(&self.config.decoy_secret, self.config.scram_iterations);
                // XEP-0474: the SCRAM server-first carries a hash of what this profile
                // advertised, which is the same list for SASL1 and SASL2 here and
                // never includes FAST's HT-* mechanisms (advertised apart, inside
                // <fast/>), so clients that hash what they saw agree with us.
                let names: Vec<&str> = features::offered_mechanisms(&offered)
                    .into_iter()
                    .map(Mechanism::name)
                    .collect();
                let cb_names: Vec<&str> = offered.iter().map(|t| t.name()).collect();
                session.set_downgrade_protection(&names, &cb_names);
                let exchange = SaslExchange {
                    session,
                    mechanism,
                    username: String::new(),
                    profile,
                    stored_iterations: None,
                };
                self.sasl_continue(exchange, Ok(step));
            }
            Err(e) => self.sasl_failure(&profile, e),
        }
        Ok(())
    }

    pub(super) fn sasl_response(&mut self, el: &Element) -> Result<(), StreamError> {
        let State::SaslChallenge(mut exchange) = std::mem::replace(&mut self.state, State::Open)
        else {
            let profile = if el.ns() == ns::SASL2 {
                Profile::Sasl2(Box::default())
            } else {
                Profile::Sasl1
            };
            let error = SaslError::MalformedRequest("no exchange in progress".into());
            self.sasl_failure(&profile, error);
            return Ok(());
        };
        let step = match decode_sasl_payload(&el.text()) {
            Ok(data) => exchange.session.respond(&data.unwrap_or_default()),
            Err(e) => Err(e),
        };
        self.sasl_continue(exchange, step);
        Ok(())
    }

    /// Acts on one SASL step: a challenge to send, credentials to fetch, or the end.
    pub(super) fn sasl_continue(
        &mut self,
        mut exchange: SaslExchange,
        step: Result<Step, SaslError>,
    ) {
        let domain = self.domain.clone().unwrap_or_else(|| self.default_domain());
        match step {
            Ok(Step::Challenge(data)) => {
                let challenge = Element::new("challenge", exchange.profile.ns())
                    .with_text(encode_sasl_payload(&data));
                self.write_element_in(&challenge, ns::STREAM);
                self.state = State::SaslChallenge(exchange);
            }
            Ok(Step::NeedCredentials { username, authzid }) => {
                let Ok(username) = prep_local(&username) else {
                    // No account can have this name; fail as for a wrong password.
                    let nonce = self.nonce();
                    let step = exchange.session.credentials(None, &nonce);
                    return self.sasl_continue(exchange, step);
                };
                // RFC 6120 §6.4.6: an authzid must be the account's own bare JID.
                let own = Jid::bare(&username, &domain).ok();
                if authzid.is_some_and(|a| Jid::parse(&a).ok() != own) {
                    self.state = State::Open;
                    return self.sasl_failure(&exchange.profile, SaslError::InvalidAuthzid);
                }
                exchange.username = username.clone();
                self.events
                    .push_back(Event::NeedCredentials { username, domain });
                self.state = State::SaslCredentials(exchange);
            }
            Ok(Step::Success { additional_data }) => {
                let Ok(jid) = Jid::bare(&exchange.username, &domain) else {
                    self.state = State::Open;
                    return self.sasl_failure(&exchange.profile, SaslError::NotAuthorized);
                };
                let user_agent = match &exchange.profile {
                    Profile::Sasl2(request) => request.user_agent.clone(),
                    Profile::Sasl1 => None,
                };
                if let Profile::Sasl2(request) = &exchange.profile
                    && exchange.stored_iterations.is_some_and(|i| {
                        scram_upgrade::wanted(&request.upgrades, i, self.config.scram_iterations)
                    })
                {
                    let Profile::Sasl2(request) = exchange.profile else {
                        return;
                    };
                    let mechanism = exchange.mechanism.name();
                    return self.start_upgrade(jid, mechanism, *request, additional_data);
                }
                self.events.push_back(Event::Authenticated {
                    jid: jid.clone(),
                    mechanism: exchange.mechanism.name(),
                    user_agent,
                });
                self.authenticated = Some(jid.clone());
                match exchange.profile {
                    Profile::Sasl1 => {
                        let text = additional_data
                            .as_deref()
                            .map(encode_sasl_payload)
                            .unwrap_or_default();
                        self.write_element_in(
                            &Element::new("success", ns::SASL).with_text(text),
                            ns::STREAM,
                        );
                        self.restart();
                    }
                    Profile::Sasl2(request) => self.sasl2_success(jid, *request, additional_data),
                }
            }
            Err(e) => {
                self.state = State::Open;
                self.sasl_failure(&exchange.profile, e);
                // Only once a username was looked up was a password tried.
                if !exchange.username.is_empty() {
                    self.events.push_back(Event::AuthFailed {
                        username: exchange.username,
                        domain,
                        mechanism: exchange.mechanism.name(),
                    });
                }
            }
        }
    }

    /// XEP-0388 §2.6.1: SASL2 success, with no stream restart: a FAST token if one
    /// was asked for, then inline Bind2 if asked for, then `<success/>`.
    pub(super) fn sasl2_success(
        &mut self,
        jid: Jid,
        request: Authenticate,
        additional_data: Option<Vec<u8>>,
    ) {
        let mut extra: Vec<Element> = self.issue_fast_token(&jid, &request).into_iter().collect();
        // XEP-0198 §5 inline in SASL2: a resumption is tried before anything else;
        // the `<success/>` waits for the driver's answer (`complete_resume`).
        if let Some(resume) = &request.sm_resume {
            match self.sm.check_resume(resume, &self.config.stream_management) {
                Ok((previd, h)) => {
                    let via = Via::Sasl2 {
                        request: Box::new(request),
                        additional_data,
                        extra,
                    };
                    let event = self.sm.start_resume(jid.to_bare(), previd, h, via);
                    self.events.push_back(event);
                    self.state = State::Open;
                    return;
                }
                Err(failed) => extra.push(failed),
            }
        }
        self.sasl2_bind(jid, request, additional_data, extra);
    }

    /// The rest of a SASL2 success: inline Bind2 if asked for, else `<success/>`.
    pub(super) fn sasl2_bind(
        &mut self,
        jid: Jid,
        request: Authenticate,
        additional_data: Option<Vec<u8>>,
        extra: Vec<Element>,
    ) {
        match request.bind {
            Some(tag) => {
                let sm_enable = request.bind_sm_enable.clone();
                let carbons = request.bind_carbons;
                self.bind2(
                    jid,
                    tag.as_deref(),
                    additional_data,
                    extra,
                    sm_enable,
                    carbons,
                )
            }
            None => {
                let success = sasl2::success(additional_data.as_deref(), &jid, None, extra);
                self.write_element_in(&success, ns::STREAM);
                self.state = State::Open;
            }
        }
    }

    /// RFC 6120 §6.4.5 / XEP-0388 §2.6.2: `<failure/>`. The client may retry on this
    /// stream; if it had pipelined a SASL1 restart, that header is taken as a restart
    /// of the unauthenticated stream (DESIGN.md rule 5).
    pub(super) fn sasl_failure(&mut self, profile: &Profile, error: SaslError) {
        let failure = match profile {
            Profile::Sasl2(_) => sasl2::failure(&error, None),
            Profile::Sasl1 => {
                let mut failure = sasl_failure_element(error.condition());
                // A malformed request says what was wrong (RFC 6120 §6.4.5 allows
                // <text/>); other failures say nothing an attacker could learn from.
                if let SaslError::MalformedRequest(why) = &error {
                    failure.append_child(
                        Element::new("text", ns::SASL)
                            .with_attr("xml:lang", "en")
                            .with_text(why.clone()),
                    );
                }
                failure
            }
        };
        self.write_element_in(&failure, ns::STREAM);
        self.restart_after_failure = true;
    }

    /// The channel-binding types this stream offers: in 0-RTT, those the finished
    /// handshake will have, so that the features (and their config version) are the
    /// same as on any other login.
    pub(super) fn channel_binding_types(&self) -> Vec<ChannelBindingType> {
        self.transport
            .offered_channel_bindings(self.end_point_hash())
    }
}

fn sasl_failure_element(condition: &str) -> Element {
    Element::new("failure", ns::SASL).with_child(Element::new(condition, ns::SASL))
}

/// RFC 6120 §6.4.2: no text is "no initial response", `=` is an empty one.
fn decode_sasl_payload(text: &str) -> Result<Option<Vec<u8>>, SaslError> {
    match text.trim() {
        "" => Ok(None),
        "=" => Ok(Some(Vec::new())),
        b64 => BASE64
            .decode(b64)
            .map(Some)
            .map_err(|_| SaslError::IncorrectEncoding),
    }
}

fn encode_sasl_payload(data: &[u8]) -> String {
    if data.is_empty() {
        "=".into()
    } else {
        BASE64.encode(data)
    }
}
