//! RFC 6120 §7 resource binding, and the stanzas that wait for it.

use super::{BIND_ID, ClientConnection, ClientEvent, State};
use crate::client::config::Mode;
use crate::client::error::ClientError;
use crate::jid::Jid;
use crate::xml::{Element, ns};

impl ClientConnection {
    pub(super) fn send_bind(&mut self) {
        let bind = Element::new("iq", ns::CLIENT)
            .with_attr("type", "set")
            .with_attr("id", BIND_ID)
            .with_child(Element::new("bind", ns::BIND).with_child(
                Element::new("resource", ns::BIND).with_text(self.config.resource.clone()),
            ));
        self.write(&bind.to_bytes(ns::CLIENT));
        self.sent_bind = true;
        // Lockstep waits for the bind result before anything else.
        if self.config.mode != Mode::Lockstep {
            self.flush_queued();
        }
    }

    pub(super) fn flush_queued(&mut self) {
        for stanza in std::mem::take(&mut self.queued) {
            self.write(&stanza.to_bytes(ns::CLIENT));
            self.sm.sent(&stanza);
            if !self.is_bound() {
                // Pipelined ahead of the login: kept until it is known to have
                // landed, since a refused login takes them down with it.
                self.in_flight.push(stanza);
            }
        }
    }

    pub(super) fn bind_result(&mut self, iq: &Element) -> Result<(), ClientError> {
        if iq.attr("type") != Some("result") {
            let condition = iq
                .get_child("error", ns::CLIENT)
                .and_then(|e| e.children().next())
                .map(|c| c.name().to_owned())
                .unwrap_or_else(|| "unknown".into());
            return Err(ClientError::Bind(condition));
        }
        let jid = iq
            .get_child("bind", ns::BIND)
            .and_then(|b| b.get_child("jid", ns::BIND))
            .and_then(|j| Jid::parse(&j.text()).ok())
            .ok_or_else(|| ClientError::Unexpected("bind result without a JID".into()))?;
        self.state = State::Bound;
        self.flush_queued();
        self.in_flight.clear();
        self.events.push_back(ClientEvent::Bound(jid));
        Ok(())
    }
}
