//! Authentication: RFC 6120 SASL with the pipelined restart (DESIGN.md rules 4
//! and 5), and SASL2 (XEP-0388) with Bind2 and stream management inline.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;

use super::{ClientConnection, ClientEvent, Sasl, State};
use crate::client::config::{FastToken, Mode};
use crate::client::error::ClientError;
use crate::jid::Jid;
use crate::sasl::{
    ChannelBindingType, Mechanism, ScramClient, ht_verify_server, plain_initial_response,
};
use crate::xml::{Element, StreamParser, ns};

impl ClientConnection {
    /// Rule 9: pipeline only on credentials that worked before; SASL2 also needs
    /// the config version to pipeline `<authenticate/>` safely (XEP-0509 §3.2).
    pub(super) fn may_pipeline(&self) -> bool {
        self.config.mode != Mode::Lockstep
            && self.config.known.as_ref().is_some_and(|k| {
                k.credentials_ok && (!self.config.mode.sasl2() || k.config_version.is_some())
            })
    }

    /// Sends `<auth/>` with the chosen mechanism (RFC 6120 §6.4.2), and with PLAIN
    /// on known ground, the restart and bind behind it.
    pub(super) fn authenticate(&mut self) -> Result<(), ClientError> {
        if self.config.mode.fast() || (self.config.mode == Mode::SmResume && self.has_token()) {
            return self.authenticate_fast();
        }
        let mechanism = self.choose_mechanism()?;
        self.mechanism = Some(mechanism.name());
        let local = self.config.jid.local().unwrap_or_default().to_owned();
        let (initial, sasl) = if mechanism == Mechanism::Plain {
            (
                plain_initial_response(None, &local, &self.config.password),
                Sasl::Plain,
            )
        } else {
            let cb = if mechanism.is_plus() {
                let data = self.transport.exporter().ok_or_else(|| {
                    ClientError::NoMechanism("channel binding needs TLS 1.3".into())
                })?;
                Some((ChannelBindingType::TlsExporter, data))
            } else {
                None
            };
            let server_plus = self.learned.mechanisms.iter().any(|m| m.ends_with("-PLUS"));
            let mut nonce = [0u8; 18];
            self.random.fill(&mut nonce);
            let scram = ScramClient::new(
                mechanism,
                &local,
                &self.config.password,
                None,
                &BASE64.encode(nonce),
                cb,
                server_plus,
            )?;
            (scram.client_first(), Sasl::ScramFirst(scram))
        };
        if self.config.mode.sasl2() {
            let auth = self.authenticate2(mechanism.name(), &initial, None);
            self.write(&auth.to_bytes(ns::STREAM));
            let last_message = matches!(sasl, Sasl::Plain);
            self.state = State::Sasl(sasl);
            if last_message {
                self.release_after_sasl2();
            }
            return Ok(());
        }
        let auth = Element::new("auth", ns::SASL)
            .with_attr("mechanism", mechanism.name())
            .with_text(BASE64.encode(initial));
        self.write(&auth.to_bytes(ns::STREAM));
        let plain = matches!(sasl, Sasl::Plain);
        self.state = State::Sasl(sasl);
        if plain {
            self.pipeline_restart();
        }
        Ok(())
    }

    /// XEP-0388 §2.3 `<authenticate/>` with inline Bind2 (XEP-0386 §3) and the
    /// config version it was built against (XEP-0509 §3.2).
    pub(super) fn authenticate2(
        &mut self,
        mechanism: &str,
        initial: &[u8],
        fast_count: Option<u64>,
    ) -> Element {
        let mut auth = Element::new("authenticate", ns::SASL2)
            .with_attr("mechanism", mechanism)
            .with_child(
                Element::new("initial-response", ns::SASL2).with_text(BASE64.encode(initial)),
            );
        if let Some(id) = &self.config.user_agent {
            auth.append_child(
                Element::new("user-agent", ns::SASL2)
                    .with_attr("id", id.clone())
                    .with_child(Element::new("software", ns::SASL2).with_text("pipit")),
            );
        }
        // XEP-0198 §5 inline: resume the session an earlier login left, the Bind2
        // request below being the fallback should that fail.
        let resume = (self.config.mode == Mode::SmResume && self.learned.sm_resume_inline)
            .then(|| self.resumable())
            .flatten();
        if let Some(session) = &resume {
            auth.append_child(
                Element::new("resume", ns::SM)
                    .with_attr("previd", session.id.clone())
                    .with_attr("h", session.h.to_string()),
            );
        }
        let mut bind = Element::new("bind", ns::BIND2)
            .with_child(Element::new("tag", ns::BIND2).with_text(self.config.resource.clone()));
        // XEP-0386 §4: stream management with the bind, at no extra round trip.
        if self.learned.sm_inline {
            bind.append_child(Element::new("enable", ns::SM).with_attr("resume", "true"));
        }
        if resume.is_some() || self.learned.sm_inline {
            self.sm.requested(resume);
        }
        auth.append_child(bind);
        // XEP-0484 §3.2: ask for a token (or a fresh one, rotating it) whenever the
        // server offers FAST; a channel-bound mechanism where one can be used.
        self.token_requested = self.token_mechanism();
        if let Some(mech) = self.token_requested {
            auth.append_child(Element::new("request-token", ns::FAST).with_attr("mechanism", mech));
        }
        if let Some(count) = fast_count {
            auth.append_child(Element::new("fast", ns::FAST).with_attr("count", count.to_string()));
        } else {
            // XEP-0480 §2.2: a password login lets the server re-salt the account.
            for upgrade in self.upgrade_requests() {
                auth.append_child(upgrade);
            }
        }
        if let Some(version) = &self.learned.config_version {
            auth.append_child(
                Element::new("config-version", ns::IAP)
                    .with_attr("scheme", "opaque")
                    .with_attr("value", version.clone()),
            );
        }
        auth
    }

    /// XEP-0509 §3.2: the pipelined `<authenticate/>` met a new configuration. The
    /// features that came before this failure are the current ones: retry once.
    pub(super) fn config_version_mismatch(&mut self) -> Result<(), ClientError> {
        if self.iap_retried {
            return Err(ClientError::Unexpected(
                "config version mismatch twice".into(),
            ));
        }
        self.iap_retried = true;
        self.queued = std::mem::take(&mut self.in_flight);
        self.authenticate()
    }

    /// The strongest mechanism offered that we can use, or the one configured.
    pub(super) fn choose_mechanism(&self) -> Result<Mechanism, ClientError> {
        let offered = &self.learned.mechanisms;
        let is_offered = |m: Mechanism| offered.iter().any(|o| o == m.name());
        let usable = |m: Mechanism| {
            is_offered(m)
                && (!m.is_plus()
                    || (self.transport.exporter().is_some()
                        && self
                            .learned
                            .channel_bindings
                            .iter()
                            .any(|c| c == "tls-exporter")))
        };
        match self.config.mechanism {
            Some(m) if usable(m) => Ok(m),
            Some(_) => Err(ClientError::NoMechanism(offered.join(" "))),
            None => Mechanism::ALL
                .into_iter()
                .find(|m| usable(*m))
                .ok_or_else(|| ClientError::NoMechanism(offered.join(" "))),
        }
    }

    /// With grounds to expect success, the restart header and the bind request
    /// follow the last SASL message without waiting (rules 4 and 6).
    pub(super) fn pipeline_restart(&mut self) {
        if self.may_pipeline() && !self.sent_restart {
            self.write_header(false);
            self.sent_restart = true;
            self.send_bind();
        }
    }

    pub(super) fn challenge(&mut self, el: &Element) -> Result<(), ClientError> {
        let State::Sasl(Sasl::ScramFirst(mut scram)) =
            std::mem::replace(&mut self.state, State::Closed)
        else {
            return Err(ClientError::Unexpected("SASL challenge".into()));
        };
        let server_first = decode(el)?;
        // XEP-0474: the server-first hashes what the server advertised; by now this
        // stream's features have arrived (even when auth was pipelined), so compare
        // with what we saw here. Not required: servers without XEP-0474 still work.
        let mechanisms: Vec<&str> = self.learned.mechanisms.iter().map(String::as_str).collect();
        let bindings: Vec<&str> = self
            .learned
            .channel_bindings
            .iter()
            .map(String::as_str)
            .collect();
        scram.expect_downgrade_protection(&mechanisms, &bindings, false);
        let client_final = scram.handle_server_first(&server_first)?;
        let response = Element::new("response", el.ns()).with_text(BASE64.encode(client_final));
        self.write(&response.to_bytes(ns::STREAM));
        self.state = State::Sasl(Sasl::ScramFinal(scram));
        if el.ns() == ns::SASL {
            self.pipeline_restart();
        } else {
            self.release_after_sasl2();
        }
        Ok(())
    }

    /// Bind2 rode inside `<authenticate/>`: once the client's last SASL message is
    /// out, stanzas may follow at once (rule 6); the server takes them after the
    /// bind. Not before: during a challenge they would meet an unauthenticated stream.
    pub(super) fn release_after_sasl2(&mut self) {
        self.sent_bind = true;
        self.flush_queued();
    }

    /// XEP-0388 §2.6.1: SASL2 success; no restart. With `<bound/>` the session is
    /// usable at once (XEP-0386 §3); otherwise bind the RFC 6120 way.
    pub(super) fn success2(&mut self, el: &Element) -> Result<(), ClientError> {
        match std::mem::replace(&mut self.state, State::Closed) {
            // The server proved itself in the first <continue/>.
            State::Upgrading(_) => {}
            State::Sasl(sasl) => self.verify_server(sasl, el)?,
            _ => return Err(ClientError::Unexpected("SASL2 success".into())),
        }
        self.success2_verified(el)
    }

    /// XEP-0388: the additional data of the SASL2 element that ends the exchange
    /// (`<success/>`, or the first `<continue/>`) must prove the server: the SCRAM
    /// server signature, or FAST's server proof.
    pub(super) fn verify_server(&self, sasl: Sasl, el: &Element) -> Result<(), ClientError> {
        let additional = el
            .get_child("additional-data", ns::SASL2)
            .map(decode)
            .transpose()?
            .unwrap_or_default();
        match sasl {
            Sasl::Plain => {}
            Sasl::ScramFinal(scram) => scram.verify_server_final(&additional)?,
            // Mutual authentication: the server proves it knows the token too.
            Sasl::Fast {
                mechanism,
                token,
                cb_data,
            } => {
                if !ht_verify_server(mechanism, &token, &cb_data, &additional) {
                    return Err(ClientError::Unexpected(
                        "FAST server proof does not verify".into(),
                    ));
                }
            }
            Sasl::ScramFirst(_) => {
                return Err(ClientError::Unexpected(
                    "SASL2 outcome before the SCRAM exchange ended".into(),
                ));
            }
        }
        Ok(())
    }

    /// The rest of a SASL2 success, once the server has proved itself.
    fn success2_verified(&mut self, el: &Element) -> Result<(), ClientError> {
        self.learned.credentials_ok = true;
        if let Some(issued) = el.get_child("token", ns::FAST) {
            let requested = self.token_requested.map(str::to_owned);
            if let (Some(token), Some(mechanism)) = (issued.attr("token"), requested) {
                self.learned.fast_token = Some(FastToken {
                    token: token.to_owned(),
                    mechanism,
                    expiry: issued.attr("expiry").unwrap_or_default().to_owned(),
                    count: 0,
                });
            }
        }
        let identity = el
            .get_child("authorization-identifier", ns::SASL2)
            .and_then(|i| Jid::parse(&i.text()).ok())
            .ok_or_else(|| ClientError::Unexpected("success without an identity".into()))?;
        self.sm.success(el);
        self.learned.sm_session = self.sm.session();
        if el.get_child("bound", ns::BIND2).is_some() || self.sm.resumed() {
            self.state = State::Bound;
            self.flush_queued();
            self.in_flight.clear();
            self.events.push_back(ClientEvent::Bound(identity));
        } else {
            self.sent_bind = false;
            self.send_bind();
            self.state = State::Binding;
        }
        Ok(())
    }

    /// RFC 6120 §6.4.6: success; the SCRAM server signature must verify before
    /// anything else is believed. Then the stream restarts.
    pub(super) fn success(&mut self, el: &Element) -> Result<(), ClientError> {
        match std::mem::replace(&mut self.state, State::Closed) {
            State::Sasl(Sasl::Plain) => {}
            State::Sasl(Sasl::ScramFinal(scram)) => scram.verify_server_final(&decode(el)?)?,
            _ => return Err(ClientError::Unexpected("SASL success".into())),
        }
        self.learned.credentials_ok = true;
        let rest = self.parser.take_unparsed();
        self.parser = StreamParser::new(Default::default());
        self.parser.feed(&rest);
        if !self.sent_restart {
            self.write_header(false);
            self.sent_restart = true;
        }
        self.state = State::Restarted;
        Ok(())
    }
}

fn decode(el: &Element) -> Result<Vec<u8>, ClientError> {
    let text = el.text();
    match text.trim() {
        "" | "=" => Ok(Vec::new()),
        b64 => BASE64
            .decode(b64)
            .map_err(|_| ClientError::Unexpected(format!("bad base64 in <{}/>", el.name()))),
    }
}

/// The condition and text of a SASL `<failure/>` (RFC 6120 §6.5).
pub(super) fn auth_failure(el: &Element) -> ClientError {
    let condition = el
        .children()
        .find(|c| c.name() != "text")
        .map(|c| c.name().to_owned())
        .unwrap_or_else(|| "unknown".into());
    let text = el.get_child("text", ns::SASL).map(|t| t.text());
    ClientError::AuthFailed { condition, text }
}
