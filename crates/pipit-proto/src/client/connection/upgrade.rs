//! XEP-0480 SASL upgrade tasks on the client: asked for in a password login's
//! `<authenticate/>` when the server offers them, run when the server's
//! `<continue/>` names one, answered with the SaltedPassword of the task's hash
//! (RFC 5802 §3) so the server can re-salt the account without the password.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;

use super::{ClientConnection, State};
use crate::client::error::ClientError;
use crate::sasl::{SCRAM_UPGRADE_TASKS as TASKS, salted_password};
use crate::xml::{Element, ns};

impl ClientConnection {
    /// The `<upgrade/>` elements for a password login: every task we can run that
    /// the server offers.
    pub(super) fn upgrade_requests(&self) -> Vec<Element> {
        TASKS
            .iter()
            .filter(|(name, _)| self.learned.upgrade_tasks.iter().any(|t| t == name))
            .map(|(name, _)| Element::new("upgrade", ns::SASL_UPGRADE).with_text(*name))
            .collect()
    }

    /// XEP-0388 §2.6.3 `<continue/>`: the first one ends the SASL exchange (and
    /// proves the server); each names a task to start with `<next/>`. The stanzas
    /// pipelined behind the login met a stream not yet authenticated and were
    /// refused: they go again after `<success/>`.
    pub(super) fn continue2(&mut self, el: &Element) -> Result<(), ClientError> {
        match std::mem::replace(&mut self.state, State::Closed) {
            State::Sasl(sasl) => self.verify_server(sasl, el)?,
            State::Upgrading(_) => {}
            _ => return Err(ClientError::Unexpected("SASL2 <continue/>".into())),
        }
        let task = el
            .get_child("tasks", ns::SASL2)
            .and_then(|t| t.get_child("task", ns::SASL2))
            .map(|t| t.text().trim().to_owned())
            .unwrap_or_default();
        let requested = self.upgrade_requests();
        let hash = TASKS
            .iter()
            .find(|(name, _)| *name == task && requested.iter().any(|r| r.text() == *name))
            .map(|(_, hash)| *hash)
            .ok_or_else(|| {
                ClientError::Unexpected(format!("a task we did not ask for: {task:?}"))
            })?;
        self.queued
            .splice(0..0, std::mem::take(&mut self.in_flight));
        self.sm.refused();
        self.sent_bind = false;
        let next = Element::new("next", ns::SASL2).with_attr("task", task);
        self.write(&next.to_bytes(ns::STREAM));
        self.state = State::Upgrading(hash);
        Ok(())
    }

    /// XEP-0480 §3 `<task-data/>` with the salt and count: the SaltedPassword back.
    pub(super) fn task_data(&mut self, el: &Element) -> Result<(), ClientError> {
        let State::Upgrading(hash) = self.state else {
            return Err(ClientError::Unexpected("SASL2 <task-data/>".into()));
        };
        let salt = el.get_child("salt", ns::SCRAM_UPGRADE);
        let iterations = salt.and_then(|s| s.attr("iterations")?.trim().parse().ok());
        let salt = salt.and_then(|s| BASE64.decode(s.text().trim()).ok());
        let (Some(salt), Some(iterations)) = (salt, iterations) else {
            return Err(ClientError::Unexpected(
                "upgrade task data without a salt".into(),
            ));
        };
        let salted = salted_password(hash, &self.config.password, &salt, iterations)?;
        let answer = Element::new("task-data", ns::SASL2)
            .with_child(Element::new("hash", ns::SCRAM_UPGRADE).with_text(BASE64.encode(salted)));
        self.write(&answer.to_bytes(ns::STREAM));
        Ok(())
    }
}
