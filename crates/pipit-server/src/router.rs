//! The session registry: which resources of which accounts are online, their
//! presence, and the channel that reaches each session.

use std::collections::HashMap;
use std::sync::Mutex;

use pipit_proto::error::StreamError;
use pipit_proto::jid::Jid;
use pipit_proto::server::ConflictPolicy;
use pipit_proto::stanza::StanzaError;
use pipit_proto::xml::Element;
use tokio::sync::mpsc;

/// What the router hands to a session task.
#[derive(Debug)]
pub enum Delivery {
    /// A stanza to write to the client.
    Stanza(Element),
    /// End the session with this stream error (e.g. replaced by a new login).
    Close(StreamError),
}

/// The sending side of a session's queue.
pub type SessionSender = mpsc::UnboundedSender<Delivery>;

struct Resource {
    /// Distinguishes a session from a later one that replaced it on the same resource.
    session_id: u64,
    sender: SessionSender,
    /// The last available presence broadcast, `None` while not available (RFC 6121 §4.2).
    presence: Option<Element>,
    priority: i8,
    /// Message Carbons are on for this resource (XEP-0280, "Enabling Carbons"). Kept here, not in the
    /// session task, so it lasts while the session is detached and is resumed with it
    /// (XEP-0198 §5): the entry stays until the session ends for good.
    carbons: bool,
    /// The resource asked for the roster, so it gets roster pushes (an "interested
    /// resource", RFC 6121 §2.2).
    interested: bool,
    /// Where this resource sent directed available presence (RFC 6121 §4.6): they
    /// get its unavailable presence too.
    directed: Vec<Jid>,
}

/// All bound sessions, keyed by bare JID then resource.
#[derive(Default)]
pub struct Router {
    accounts: Mutex<HashMap<Jid, HashMap<String, Resource>>>,
    /// The most resources an account may have bound at once; 0 for no limit.
    max_resources: usize,
}

impl Router {
    /// A router that lets each account bind at most `max_resources` resources at
    /// once (0: no limit; [`Router::default`] has none).
    ///
    /// Detached sessions (XEP-0198 §5) keep their entry, so they count: each still
    /// holds a queue and receives stanzas until it is resumed or times out, and a
    /// client that drops its connection in a loop must not pile them up without
    /// bound. It also keeps resuming from ever failing for want of a place. A
    /// client that logs in again with the same resource replaces its detached
    /// session (conflict policy `replace`) and needs no new place.
    pub fn with_max_resources(max_resources: usize) -> Router {
        Router {
            max_resources,
            ..Router::default()
        }
    }

    /// Binds `resource` (or a server-chosen one) for the account `bare` under
    /// `policy` (RFC 6120 §7.7.2.2 conflict handling). `fresh` supplies random
    /// resource parts. A bind that would take the account past its limit fails
    /// with `<resource-constraint/>`, as RFC 6120 §7.6.2.1 has it; one that
    /// replaces a session takes no new place and is never refused for it.
    pub fn bind(
        &self,
        bare: &Jid,
        resource: Option<String>,
        policy: ConflictPolicy,
        session_id: u64,
        sender: SessionSender,
        mut fresh: impl FnMut() -> String,
    ) -> Result<Jid, StanzaError> {
        let mut accounts = self.lock();
        let resources = accounts.entry(bare.clone()).or_default();
        let mut resource = resource.unwrap_or_else(&mut fresh);
        if let Some(old) = resources.get(&resource) {
            match policy {
                ConflictPolicy::Replace => {
                    let _ = old.sender.send(Delivery::Close(StreamError::Conflict));
                }
                ConflictPolicy::Refuse => return Err(StanzaError::Conflict),
                ConflictPolicy::Rename => {
                    while resources.contains_key(&resource) {
                        resource = format!("{resource}.{}", fresh());
                    }
                }
            }
        }
        let full = bare
            .with_resource(&resource)
            .map_err(|_| StanzaError::BadRequest)?;
        let takes_a_place = !resources.contains_key(&resource);
        if takes_a_place && self.max_resources != 0 && resources.len() >= self.max_resources {
            return Err(StanzaError::ResourceConstraint);
        }
        resources.insert(
            resource,
            Resource {
                session_id,
                sender,
                presence: None,
                priority: 0,
                carbons: false,
                interested: false,
                directed: Vec::new(),
            },
        );
        Ok(full)
    }

    /// Removes a session, unless a newer one has taken its resource. Returns, if
    /// the session was available (so its unavailable presence should go out), where
    /// it had sent directed presence (RFC 6121 §4.6.3: they are told too).
    pub fn unbind(&self, full: &Jid, session_id: u64) -> Option<Vec<Jid>> {
        let mut accounts = self.lock();
        let bare = full.to_bare();
        let resources = accounts.get_mut(&bare)?;
        let resource = full.resource().unwrap_or_default();
        let departed = match resources.get(resource) {
            Some(r) if r.session_id == session_id => resources
                .remove(resource)
                .filter(|r| r.presence.is_some())
                .map(|r| r.directed),
            _ => None,
        };
        if resources.is_empty() {
            accounts.remove(&bare);
        }
        departed
    }

    /// Records a session's broadcast presence: `Some` available (with its priority,
    /// RFC 6121 §4.7.2.3), `None` unavailable.
    pub fn set_presence(&self, full: &Jid, presence: Option<Element>, priority: i8) {
        self.update(full, |r| {
            r.presence = presence;
            r.priority = priority;
        });
    }

    /// Marks a resource as interested in roster pushes (RFC 6121 §2.2): it asked
    /// for the roster.
    pub fn set_interested(&self, full: &Jid) {
        self.update(full, |r| r.interested = true);
    }

    /// The full JIDs of the resources of `bare` that get roster pushes.
    pub fn interested(&self, bare: &Jid) -> Vec<Jid> {
        self.resources_where(bare, |r| r.interested)
    }

    /// Records that `full` sent directed available presence to `to` (RFC 6121
    /// §4.6.2), or, with `available` false, directed unavailable presence, which
    /// ends that (§4.6.3).
    pub fn note_directed(&self, full: &Jid, to: &Jid, available: bool) {
        self.update(full, |r| {
            r.directed.retain(|j| j != to);
            if available {
                r.directed.push(to.clone());
            }
        });
    }

    /// Forgets, and returns, where `full` sent directed presence: it is going
    /// unavailable, and they are told (RFC 6121 §4.6.3).
    pub fn take_directed(&self, full: &Jid) -> Vec<Jid> {
        let mut taken = Vec::new();
        self.update(full, |r| taken = std::mem::take(&mut r.directed));
        taken
    }

    /// Turns Message Carbons on or off for one resource (XEP-0280, "Enabling Carbons", "Disabling Carbons").
    pub fn set_carbons(&self, full: &Jid, enabled: bool) {
        self.update(full, |r| r.carbons = enabled);
    }

    /// The full JIDs of the available resources of `bare` with carbons on: those
    /// that want copies of the account's conversations (XEP-0280).
    pub fn carbons_enabled(&self, bare: &Jid) -> Vec<Jid> {
        self.resources_where(bare, |r| r.carbons && r.presence.is_some())
    }

    /// The priority this session's available presence gave, `None` while it is
    /// not available.
    pub fn available_priority(&self, full: &Jid) -> Option<i8> {
        self.lock()
            .get(&full.to_bare())
            .and_then(|rs| rs.get(full.resource().unwrap_or_default()))
            .and_then(|r| r.presence.is_some().then_some(r.priority))
    }

    /// Whether `bare` has an available resource of at least `min_priority`: one a
    /// message to the bare JID would reach (RFC 6121 §8.5.2.1.1).
    pub fn has_available(&self, bare: &Jid, min_priority: i8) -> bool {
        self.lock().get(bare).is_some_and(|rs| {
            rs.values()
                .any(|r| r.presence.is_some() && r.priority >= min_priority)
        })
    }

    /// Whether `bare` has an available resource of at least `min_priority` other
    /// than `except`'s.
    pub fn has_available_besides(&self, except: &Jid, min_priority: i8) -> bool {
        let own = except.resource().unwrap_or_default();
        self.lock().get(&except.to_bare()).is_some_and(|rs| {
            rs.iter().any(|(name, r)| {
                name.as_str() != own && r.presence.is_some() && r.priority >= min_priority
            })
        })
    }

    /// Whether this resource is bound, available or not.
    pub fn is_connected(&self, full: &Jid) -> bool {
        self.lock()
            .get(&full.to_bare())
            .is_some_and(|rs| rs.contains_key(full.resource().unwrap_or_default()))
    }

    /// Delivers to one connected resource. Returns false if it is not connected.
    pub fn deliver_to_full(&self, full: &Jid, stanza: Element) -> bool {
        let accounts = self.lock();
        match accounts
            .get(&full.to_bare())
            .and_then(|rs| rs.get(full.resource().unwrap_or_default()))
        {
            Some(r) => r.sender.send(Delivery::Stanza(stanza)).is_ok(),
            None => false,
        }
    }

    /// Delivers a copy to each available resource of `bare` whose priority is at
    /// least `min_priority`. Returns the resources that got one (carbons skip them,
    /// XEP-0280 "Receiving Messages").
    pub fn deliver_to_available(
        &self,
        bare: &Jid,
        stanza: &Element,
        min_priority: i8,
    ) -> Vec<String> {
        let accounts = self.lock();
        let Some(resources) = accounts.get(bare) else {
            return Vec::new();
        };
        resources
            .iter()
            .filter(|(_, r)| r.presence.is_some() && r.priority >= min_priority)
            .filter(|(_, r)| r.sender.send(Delivery::Stanza(stanza.clone())).is_ok())
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// The current presence of each available resource of `bare`.
    pub fn presences(&self, bare: &Jid) -> Vec<Element> {
        self.lock()
            .get(bare)
            .map(|rs| rs.values().filter_map(|r| r.presence.clone()).collect())
            .unwrap_or_default()
    }

    /// The current presence of each available resource of `bare` except `except`.
    pub fn presences_of_others(&self, bare: &Jid, except: &str) -> Vec<Element> {
        let accounts = self.lock();
        accounts
            .get(bare)
            .map(|rs| {
                rs.iter()
                    .filter(|(name, _)| name.as_str() != except)
                    .filter_map(|(_, r)| r.presence.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Changes one bound resource's entry; nothing if it is not bound.
    fn update(&self, full: &Jid, change: impl FnOnce(&mut Resource)) {
        if let Some(r) = self
            .lock()
            .get_mut(&full.to_bare())
            .and_then(|rs| rs.get_mut(full.resource().unwrap_or_default()))
        {
            change(r);
        }
    }

    /// The full JIDs of the resources of `bare` for which `keep` holds.
    fn resources_where(&self, bare: &Jid, keep: impl Fn(&Resource) -> bool) -> Vec<Jid> {
        self.lock().get(bare).map_or_else(Vec::new, |resources| {
            resources
                .iter()
                .filter(|(_, r)| keep(r))
                .filter_map(|(name, _)| bare.with_resource(name).ok())
                .collect()
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Jid, HashMap<String, Resource>>> {
        // A panic while holding the lock cannot leave the maps half-updated (each
        // update is one insert or remove), so a poisoned lock is still usable.
        self.accounts.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session() -> (SessionSender, mpsc::UnboundedReceiver<Delivery>) {
        mpsc::unbounded_channel()
    }

    #[test]
    fn conflict_policies() {
        let router = Router::default();
        let bare = Jid::parse("a@x").unwrap();
        let (tx1, mut rx1) = session();
        let fresh = || "r4nd".to_string();
        let jid = router
            .bind(
                &bare,
                Some("home".into()),
                ConflictPolicy::Replace,
                1,
                tx1,
                fresh,
            )
            .unwrap();
        assert_eq!(jid.to_string(), "a@x/home");

        let (tx2, _rx2) = session();
        assert_eq!(
            router.bind(
                &bare,
                Some("home".into()),
                ConflictPolicy::Refuse,
                2,
                tx2,
                fresh
            ),
            Err(StanzaError::Conflict)
        );

        let (tx3, _rx3) = session();
        let renamed = router
            .bind(
                &bare,
                Some("home".into()),
                ConflictPolicy::Rename,
                3,
                tx3,
                fresh,
            )
            .unwrap();
        assert_eq!(renamed.to_string(), "a@x/home.r4nd");

        let (tx4, _rx4) = session();
        router
            .bind(
                &bare,
                Some("home".into()),
                ConflictPolicy::Replace,
                4,
                tx4,
                fresh,
            )
            .unwrap();
        assert!(matches!(
            rx1.try_recv(),
            Ok(Delivery::Close(StreamError::Conflict))
        ));
        // The replaced session's clean-up must not remove its successor.
        assert_eq!(router.unbind(&jid, 1), None);
        assert!(router.deliver_to_full(&jid, Element::new("message", "jabber:client")));
    }

    #[test]
    fn an_account_binds_at_most_its_limit_and_replacing_takes_no_place() {
        let router = Router::with_max_resources(2);
        let bare = Jid::parse("a@x").unwrap();
        let mut receivers = Vec::new();
        let mut bind = |resource: &str, policy, id| {
            let (tx, rx) = session();
            receivers.push(rx);
            router.bind(&bare, Some(resource.into()), policy, id, tx, || "r".into())
        };
        let one = bind("1", ConflictPolicy::Replace, 1).unwrap();
        bind("2", ConflictPolicy::Replace, 2).unwrap();
        assert_eq!(
            bind("3", ConflictPolicy::Replace, 3),
            Err(StanzaError::ResourceConstraint)
        );
        // Renaming makes a new resource: refused too.
        assert_eq!(
            bind("1", ConflictPolicy::Rename, 4),
            Err(StanzaError::ResourceConstraint)
        );
        // Replacing takes the old session's place.
        bind("2", ConflictPolicy::Replace, 5).unwrap();
        // Another account is counted on its own.
        let (tx, _rx) = session();
        let other = Jid::parse("b@x").unwrap();
        router
            .bind(&other, None, ConflictPolicy::Replace, 6, tx, || "r".into())
            .unwrap();
        router.unbind(&one, 1);
        bind("3", ConflictPolicy::Replace, 7).unwrap();
    }

    #[test]
    fn only_available_resources_get_bare_jid_stanzas() {
        let router = Router::default();
        let bare = Jid::parse("a@x").unwrap();
        let (tx1, mut rx1) = session();
        let (tx2, mut rx2) = session();
        let one = router
            .bind(
                &bare,
                Some("1".into()),
                ConflictPolicy::Replace,
                1,
                tx1,
                String::new,
            )
            .unwrap();
        router
            .bind(
                &bare,
                Some("2".into()),
                ConflictPolicy::Replace,
                2,
                tx2,
                String::new,
            )
            .unwrap();
        let presence = Element::new("presence", "jabber:client");
        router.set_presence(&one, Some(presence), 0);
        let msg = Element::new("message", "jabber:client");
        assert_eq!(router.deliver_to_available(&bare, &msg, 0), ["1"]);
        assert!(rx1.try_recv().is_ok());
        assert!(rx2.try_recv().is_err());
        assert_eq!(router.unbind(&one, 1), Some(Vec::new()));
    }

    #[test]
    fn pushes_go_to_interested_resources_and_directed_presence_is_kept_until_taken() {
        let router = Router::default();
        let bare = Jid::parse("a@x").unwrap();
        let mut jids = Vec::new();
        for (id, name) in [(1, "asked"), (2, "quiet")] {
            let (tx, _) = session();
            let jid = router
                .bind(
                    &bare,
                    Some(name.into()),
                    ConflictPolicy::Replace,
                    id,
                    tx,
                    String::new,
                )
                .unwrap();
            jids.push(jid);
        }
        router.set_interested(&jids[0]);
        assert_eq!(router.interested(&bare), std::slice::from_ref(&jids[0]));

        let (b, c) = (Jid::parse("b@x").unwrap(), Jid::parse("c@x/r").unwrap());
        router.note_directed(&jids[0], &b, true);
        router.note_directed(&jids[0], &c, true);
        router.note_directed(&jids[0], &b, true);
        // Directed unavailable presence ends it for that recipient.
        router.note_directed(&jids[0], &c, false);
        assert_eq!(router.take_directed(&jids[0]), std::slice::from_ref(&b));
        assert!(router.take_directed(&jids[0]).is_empty());
        // Ending an available session hands its directed presence over.
        router.set_presence(&jids[0], Some(Element::new("presence", "jabber:client")), 0);
        router.note_directed(&jids[0], &b, true);
        assert_eq!(router.unbind(&jids[0], 1), Some(vec![b]));
        // An unavailable one has nobody to tell.
        assert_eq!(router.unbind(&jids[1], 2), None);
    }

    #[test]
    fn carbons_go_to_available_resources_that_enabled_them() {
        let router = Router::default();
        let bare = Jid::parse("a@x").unwrap();
        let mut jids = Vec::new();
        for (id, name) in [(1, "on"), (2, "off"), (3, "away")] {
            // Nothing is sent here: the receiving ends may go.
            let (tx, _) = session();
            let jid = router
                .bind(
                    &bare,
                    Some(name.into()),
                    ConflictPolicy::Replace,
                    id,
                    tx,
                    String::new,
                )
                .unwrap();
            jids.push(jid);
        }
        let presence = Element::new("presence", "jabber:client");
        router.set_presence(&jids[0], Some(presence.clone()), -1);
        router.set_presence(&jids[1], Some(presence), 0);
        router.set_carbons(&jids[0], true);
        router.set_carbons(&jids[2], true);
        // Negative priority still gets copies; no presence, none.
        assert_eq!(router.carbons_enabled(&bare), [jids[0].clone()]);
        router.set_carbons(&jids[0], false);
        assert!(router.carbons_enabled(&bare).is_empty());
    }
}
