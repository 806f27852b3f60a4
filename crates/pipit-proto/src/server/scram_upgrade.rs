//! XEP-0480 SASL upgrade tasks for SCRAM, run as XEP-0388 `<continue/>` tasks: how a
//! server raises an account's PBKDF2 iteration count without ever seeing the
//! password.
//!
//! Pipit keeps SCRAM-SHA-1 and SCRAM-SHA-256 keys for every account, sharing one salt
//! and one iteration count, so no mechanism is ever missing; what ages is the count
//! (`scram-iterations` raised by the operator leaves older accounts behind). When a
//! client that asked for both tasks logs in with its password (PLAIN or SCRAM, never a
//! FAST token, which proves no password) and its account's count is below the
//! configured one, the server sends `<continue/>` for each task in turn, hands out a
//! fresh salt with the new count, and takes back the SaltedPassword of each hash
//! (RFC 5802 §3). Both or neither: with one shared salt, half an upgrade cannot be
//! stored. Stanzas a client pipelined behind its last SASL message meet a stream that
//! is not yet authenticated and are answered `not-authorized` (as after a SASL
//! failure, DESIGN.md rule 5); the client sends them again after `<success/>`.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;

use crate::jid::Jid;
use crate::sasl::ScramHash;
use crate::server::sasl2::Authenticate;
use crate::xml::{Element, ns};

/// The tasks, in the order they run.
pub(crate) use crate::sasl::SCRAM_UPGRADE_TASKS as TASKS;

/// The `<upgrade/>` elements for SASL2's `<authentication/>` feature (XEP-0480 §2.1).
pub(crate) fn features() -> impl Iterator<Item = Element> {
    TASKS
        .iter()
        .map(|(name, _)| Element::new("upgrade", ns::SASL_UPGRADE).with_text(*name))
}

/// Whether this login upgrades: the client asked for every task, and the account's
/// count is below the configured one.
pub(crate) fn wanted(requested: &[String], stored_iterations: u32, configured: u32) -> bool {
    stored_iterations < configured
        && TASKS
            .iter()
            .all(|(name, _)| requested.iter().any(|r| r == name))
}

/// An upgrade under way: the authenticated account (not yet told to the driver or
/// acted on as such), what `<success/>` will carry, the new salt and count, and the
/// SaltedPasswords received so far, one per task in [`TASKS`] order.
#[derive(Debug)]
pub(crate) struct Upgrade {
    pub jid: Jid,
    pub mechanism: &'static str,
    pub request: Authenticate,
    pub salt: Vec<u8>,
    pub iterations: u32,
    pub salted: Vec<Vec<u8>>,
    /// The client has sent `<next/>` for the current task: its `<hash/>` is due.
    pub started: bool,
}

impl Upgrade {
    /// The task under way (the first without a SaltedPassword), if any is left.
    pub fn current(&self) -> Option<(&'static str, ScramHash)> {
        TASKS.get(self.salted.len()).copied()
    }
}

/// XEP-0388 §2.6.3 `<continue/>` naming the next task; the SASL additional data (the
/// SCRAM server signature) goes in the first one, since `<success/>` comes last.
pub(crate) fn continue_element(additional_data: Option<&[u8]>, task: &str) -> Element {
    let mut el = Element::new("continue", ns::SASL2);
    if let Some(data) = additional_data {
        el.append_child(Element::new("additional-data", ns::SASL2).with_text(BASE64.encode(data)));
    }
    el.with_child(
        Element::new("tasks", ns::SASL2)
            .with_child(Element::new("task", ns::SASL2).with_text(task)),
    )
}

/// XEP-0480 §3: the salt and count to compute the SaltedPassword with.
pub(crate) fn salt_element(salt: &[u8], iterations: u32) -> Element {
    Element::new("task-data", ns::SASL2).with_child(
        Element::new("salt", ns::SCRAM_UPGRADE)
            .with_attr("iterations", iterations.to_string())
            .with_text(BASE64.encode(salt)),
    )
}

/// The SaltedPassword in a client's `<task-data/>`, if it is one for `hash`.
pub(crate) fn parse_hash(task_data: &Element, hash: ScramHash) -> Option<Vec<u8>> {
    let text = task_data.get_child("hash", ns::SCRAM_UPGRADE)?.text();
    let salted = BASE64.decode(text.trim()).ok()?;
    (salted.len() == hash.output_len()).then_some(salted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_tasks_and_an_older_count_are_needed() {
        let both: Vec<String> = TASKS.iter().map(|(n, _)| n.to_string()).collect();
        assert!(wanted(&both, 4096, 8192));
        assert!(!wanted(&both, 8192, 8192), "already current");
        assert!(
            !wanted(&both[..1], 4096, 8192),
            "half an upgrade cannot be stored"
        );
        assert!(!wanted(&[], 4096, 8192));
    }

    #[test]
    fn a_hash_must_have_its_digest_length() {
        let data = |bytes: &[u8]| {
            Element::new("task-data", ns::SASL2)
                .with_child(Element::new("hash", ns::SCRAM_UPGRADE).with_text(BASE64.encode(bytes)))
        };
        assert_eq!(
            parse_hash(&data(&[7; 20]), ScramHash::Sha1),
            Some(vec![7; 20])
        );
        assert_eq!(parse_hash(&data(&[7; 20]), ScramHash::Sha256), None);
        let garbage = Element::new("task-data", ns::SASL2)
            .with_child(Element::new("hash", ns::SCRAM_UPGRADE).with_text("%%"));
        assert_eq!(parse_hash(&garbage, ScramHash::Sha1), None);
        assert_eq!(
            parse_hash(&Element::new("task-data", ns::SASL2), ScramHash::Sha1),
            None
        );
    }
}
