//! The session-resumption registry (XEP-0198 §5): which SM-IDs name a resumable
//! session, whose they are, and how to reach the task that holds each one.
//!
//! A session task owns its state the whole time (connected, or detached after its
//! connection dropped); the registry only maps an SM-ID to the account and to that
//! task's control channel. A new connection that resumes sends the task a
//! takeover request; the task closes its old stream if it is still open (XEP-0198 §5:
//! the old stream SHOULD be terminated) and hands back everything the session owns
//! (a handover): the full JID, its router queue, its control channel and its SM
//! state. The router entry is untouched throughout, so stanzas routed to the
//! session meanwhile wait in its queue and follow the resent ones.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use pipit_proto::jid::Jid;
use pipit_proto::server::StreamManagement;
use tokio::sync::{mpsc, oneshot};

use crate::session::Session;

/// How long a resuming connection waits for the old session task to hand over.
const HANDOVER_TIMEOUT: Duration = Duration::from_secs(5);

/// A request to a session task: give the session to the connection that resumes it.
pub(crate) struct Takeover {
    pub reply: oneshot::Sender<Handover>,
}

/// Everything a resumed session carries to its new connection.
pub(crate) struct Handover {
    /// The bound full JID, which carries on.
    pub jid: Jid,
    /// Router queue, control channel and session id.
    pub session: Session,
    /// Counters and the stanzas the client has not acknowledged.
    pub sm: StreamManagement,
}

/// The sending side of a session task's control channel.
pub(crate) type ControlSender = mpsc::UnboundedSender<Takeover>;

struct Entry {
    /// The session's full JID: only its account may resume it.
    jid: Jid,
    session_id: u64,
    control: ControlSender,
}

/// SM-IDs of resumable sessions, connected or detached.
#[derive(Default)]
pub struct Resumption {
    entries: Mutex<HashMap<String, Entry>>,
}

impl Resumption {
    /// Records that session `session_id`, bound to `jid`, may be resumed as `id`.
    pub(crate) fn register(&self, id: String, jid: Jid, session_id: u64, control: ControlSender) {
        self.lock().insert(
            id,
            Entry {
                jid,
                session_id,
                control,
            },
        );
    }

    /// Forgets `id` when the session that registered it ends for good.
    pub(crate) fn remove(&self, id: &str, session_id: u64) {
        let mut entries = self.lock();
        if entries.get(id).is_some_and(|e| e.session_id == session_id) {
            entries.remove(id);
        }
    }

    /// Asks the task holding session `id` to hand it over, if it belongs to the
    /// account `bare`. `None` for an unknown or expired id, another account's id,
    /// or a session that ended meanwhile: all look the same to the client
    /// (`<item-not-found/>`), so an id reveals nothing about other accounts.
    pub(crate) async fn take_over(&self, id: &str, bare: &Jid) -> Option<Handover> {
        let control = {
            let entries = self.lock();
            let entry = entries.get(id)?;
            if entry.jid.to_bare() != *bare {
                return None;
            }
            entry.control.clone()
        };
        let (reply, handover) = oneshot::channel();
        control.send(Takeover { reply }).ok()?;
        // The task answers at once; a task that ended drops the request.
        tokio::time::timeout(HANDOVER_TIMEOUT, handover)
            .await
            .ok()?
            .ok()
    }

    /// How many sessions are resumable right now.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no session is resumable.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        // Each update is one insert or remove: a poisoned map is still consistent.
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pipit_proto::server::SmConfig;

    fn session(id: u64) -> (Session, ControlSender) {
        let (sender, inbox) = mpsc::unbounded_channel();
        let (control_sender, control) = mpsc::unbounded_channel();
        let session = Session {
            id,
            sender,
            inbox,
            control_sender: control_sender.clone(),
            control,
        };
        (session, control_sender)
    }

    /// A session task that hands over at the first request.
    fn serve(mut session: Session, jid: Jid) {
        tokio::spawn(async move {
            if let Some(request) = session.control.recv().await {
                let sm = StreamManagement::new(&SmConfig::default(), Some(("id1".into(), 300)));
                let _ = request.reply.send(Handover { jid, session, sm });
            }
        });
    }

    #[tokio::test]
    async fn only_the_owning_account_takes_over() {
        let registry = Resumption::default();
        let alice = Jid::parse("alice@x/phone").unwrap();
        let (session, control) = session(7);
        registry.register("id1".into(), alice.clone(), 7, control);
        serve(session, alice.clone());

        let bob = Jid::parse("bob@x").unwrap();
        assert!(registry.take_over("id1", &bob).await.is_none());
        assert!(registry.take_over("id2", &alice.to_bare()).await.is_none());
        let handover = registry.take_over("id1", &alice.to_bare()).await.unwrap();
        assert_eq!((handover.jid, handover.session.id), (alice.clone(), 7));
        // Still registered: the resumed session keeps its SM-ID.
        assert_eq!(registry.len(), 1);
        // Another session's end does not remove it; its own does.
        registry.remove("id1", 8);
        assert_eq!(registry.len(), 1);
        registry.remove("id1", 7);
        assert!(registry.is_empty());
    }

    #[tokio::test]
    async fn a_session_that_ended_is_not_found() {
        let registry = Resumption::default();
        let alice = Jid::parse("alice@x/phone").unwrap();
        let (session, control) = session(1);
        registry.register("gone".into(), alice.clone(), 1, control);
        drop(session);
        assert!(registry.take_over("gone", &alice.to_bare()).await.is_none());
    }
}
