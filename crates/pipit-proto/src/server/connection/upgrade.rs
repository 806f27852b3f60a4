//! XEP-0480 SASL upgrade tasks on the connection: `<continue/>`, the client's
//! `<next/>`, the salt, its SaltedPassword, and then the `<success/>` the login
//! would have had. The rules are in [`scram_upgrade`](crate::server::scram_upgrade).

use super::{Profile, ServerConnection, State};
use crate::error::StreamError;
use crate::jid::Jid;
use crate::sasl::{SaslError, StoredCredentials};
use crate::server::Event;
use crate::server::sasl2::Authenticate;
use crate::server::scram_upgrade::{self, Upgrade};
use crate::xml::{Element, ns};

impl ServerConnection {
    /// A SASL2 password login succeeded and calls for an upgrade: the first
    /// `<continue/>`. The account counts as authenticated only once the tasks are
    /// done (a stanza meanwhile gets `not-authorized`).
    pub(super) fn start_upgrade(
        &mut self,
        jid: Jid,
        mechanism: &'static str,
        request: Authenticate,
        additional_data: Option<Vec<u8>>,
    ) {
        let mut salt = vec![0u8; 16];
        self.random.fill(&mut salt);
        let upgrade = Upgrade {
            jid,
            mechanism,
            request,
            salt,
            iterations: self.config.scram_iterations,
            salted: Vec::new(),
            started: false,
        };
        let (task, _) = scram_upgrade::TASKS[0];
        let el = scram_upgrade::continue_element(additional_data.as_deref(), task);
        self.write_element_in(&el, ns::STREAM);
        self.state = State::Sasl2Upgrade(Box::new(upgrade));
    }

    /// XEP-0388 §2.6.3 `<next task='…'/>`: the client starts the task we named; it
    /// gets the salt and count (XEP-0480 §3).
    pub(super) fn upgrade_next(&mut self, el: &Element) -> Result<(), StreamError> {
        let State::Sasl2Upgrade(upgrade) = &mut self.state else {
            return self.upgrade_refused("<next/> without a task under way");
        };
        let due = upgrade.current().map(|(name, _)| name);
        if upgrade.started || el.attr("task") != due {
            return self.upgrade_refused("<next/> names another task than the one under way");
        }
        upgrade.started = true;
        let salt = scram_upgrade::salt_element(&upgrade.salt, upgrade.iterations);
        self.write_element_in(&salt, ns::STREAM);
        Ok(())
    }

    /// The client's `<task-data/>` with the SaltedPassword: the next task, or done.
    pub(super) fn upgrade_task_data(&mut self, el: &Element) -> Result<(), StreamError> {
        let State::Sasl2Upgrade(upgrade) = &mut self.state else {
            return self.upgrade_refused("<task-data/> without a task under way");
        };
        let Some((_, hash)) = upgrade.current().filter(|_| upgrade.started) else {
            return self.upgrade_refused("<task-data/> before <next/>");
        };
        let Some(salted) = scram_upgrade::parse_hash(el, hash) else {
            return self.upgrade_refused("no SaltedPassword of the task's hash in <task-data/>");
        };
        upgrade.salted.push(salted);
        upgrade.started = false;
        if let Some((task, _)) = upgrade.current() {
            let next = scram_upgrade::continue_element(None, task);
            self.write_element_in(&next, ns::STREAM);
            return Ok(());
        }
        let State::Sasl2Upgrade(upgrade) = std::mem::replace(&mut self.state, State::Open) else {
            return Ok(());
        };
        self.finish_upgrade(*upgrade);
        Ok(())
    }

    /// Every task is done: the driver stores the new credentials (before anything
    /// else this login asked for, such as a FAST token), and the login succeeds.
    fn finish_upgrade(&mut self, upgrade: Upgrade) {
        let Upgrade {
            jid,
            mechanism,
            request,
            salt,
            iterations,
            salted,
            ..
        } = upgrade;
        self.events.push_back(Event::Authenticated {
            jid: jid.clone(),
            mechanism,
            user_agent: request.user_agent.clone(),
        });
        if let [sha1, sha256] = salted.as_slice()
            && let Some(credentials) =
                StoredCredentials::from_salted(&salt, iterations, sha1, sha256)
        {
            self.events.push_back(Event::CredentialsUpgraded {
                jid: jid.clone(),
                credentials,
            });
        }
        self.authenticated = Some(jid.clone());
        self.sasl2_success(jid, request, None);
    }

    /// A task went wrong: the login fails (XEP-0388 §2.6.2), and the client may try
    /// again on this stream.
    fn upgrade_refused(&mut self, why: &str) -> Result<(), StreamError> {
        self.state = State::Open;
        let error = SaslError::MalformedRequest(why.into());
        self.sasl_failure(&Profile::Sasl2(Box::default()), error);
        Ok(())
    }
}
