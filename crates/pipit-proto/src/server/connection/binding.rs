//! Resource binding: RFC 6120 §7 `<bind/>`, and Bind2 (XEP-0386) inline in a
//! SASL2 success.

use super::{ServerConnection, State};
use crate::jid::{Jid, prep_resource};
use crate::server::Event;
use crate::server::sasl2;
use crate::stanza::{StanzaError, error_reply};
use crate::xml::{Element, ns};

impl ServerConnection {
    /// Answers [`Event::BindRequest`](crate::server::Event::BindRequest) with the full JID bound, or the stanza error
    /// (`conflict` under the refuse policy).
    pub fn complete_bind(&mut self, result: Result<Jid, StanzaError>) {
        let id = match std::mem::replace(&mut self.state, State::Open) {
            State::Binding { id } => id,
            State::Bind2 {
                additional_data,
                extra,
                sm_enable,
            } => {
                // XEP-0386 §3: on success the full JID is the authorization identifier;
                // if binding failed the session is still authenticated and the
                // client may bind the RFC 6120 way.
                let identity = result
                    .as_ref()
                    .ok()
                    .or(self.authenticated.as_ref())
                    .cloned();
                let bound = result.is_ok();
                self.bound = result.ok();
                // Inline requests run once the resource is bound; their results go
                // inside <bound/>.
                let inline = bound.then(|| {
                    sm_enable
                        .as_ref()
                        .map(|enable| self.enable_sm(enable))
                        .into_iter()
                        .collect::<Vec<_>>()
                });
                if let Some(identity) = identity {
                    let success =
                        sasl2::success(additional_data.as_deref(), &identity, inline, extra);
                    self.write_element_in(&success, ns::STREAM);
                }
                self.process();
                self.transport.flush(&mut self.out);
                return;
            }
            other => {
                self.state = other;
                return;
            }
        };
        let request = Element::new("iq", ns::CLIENT)
            .with_attr("type", "set")
            .with_attr("id", id.clone());
        match result {
            Ok(jid) => {
                let bind = Element::new("bind", ns::BIND)
                    .with_child(Element::new("jid", ns::BIND).with_text(jid.to_string()));
                let reply = Element::new("iq", ns::CLIENT)
                    .with_attr("type", "result")
                    .with_attr("id", id)
                    .with_child(bind);
                self.bound = Some(jid);
                self.write_element(&reply);
            }
            Err(error) => {
                if let Some(reply) = error_reply(&request, error) {
                    self.write_element(&reply);
                }
            }
        }
        self.process();
        self.transport.flush(&mut self.out);
    }

    /// XEP-0386 §3: inline Bind2. The resource is the client's tag and a random part;
    /// the driver binds it (under the conflict policy, which a random part makes moot)
    /// and the SASL2 `<success/>` reports the full JID.
    pub(super) fn bind2(
        &mut self,
        jid: Jid,
        tag: Option<&str>,
        additional_data: Option<Vec<u8>>,
        extra: Vec<Element>,
        sm_enable: Option<Element>,
        carbons: bool,
    ) {
        let random_part = self.random.hex(4);
        let resource =
            prep_resource(&sasl2::bind2_resource(tag, &random_part)).unwrap_or(random_part);
        self.events.push_back(Event::BindRequest {
            jid,
            resource: Some(resource),
            carbons,
        });
        self.state = State::Bind2 {
            additional_data,
            extra,
            sm_enable,
        };
    }

    /// RFC 6120 §7.6: a bind request; the driver decides on the resource.
    pub(super) fn bind(&mut self, iq: &Element) {
        let id = iq.attr("id").unwrap_or_default().to_string();
        let requested = iq
            .get_child("bind", ns::BIND)
            .and_then(|b| b.get_child("resource", ns::BIND))
            .map(|r| r.text())
            .filter(|r| !r.is_empty());
        let resource = match requested.map(|r| prep_resource(&r)).transpose() {
            Ok(resource) => resource,
            Err(_) => {
                if let Some(reply) = error_reply(iq, StanzaError::BadRequest) {
                    self.write_element(&reply);
                }
                return;
            }
        };
        let Some(jid) = self.authenticated.clone() else {
            return;
        };
        self.events.push_back(Event::BindRequest {
            jid,
            resource,
            carbons: false,
        });
        self.state = State::Binding { id };
    }
}

pub(super) fn is_bind_request(el: &Element) -> bool {
    el.name() == "iq" && el.attr("type") == Some("set") && el.get_child("bind", ns::BIND).is_some()
}
