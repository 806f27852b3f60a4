//! No acknowledged message is lost when the server dies: `pipit serve` is killed
//! with SIGKILL while a client streams messages with stream management (XEP-0198),
//! then restarted on the same data dir. Every message the server had acknowledged
//! is there afterwards exactly once: in the offline recipient's queue
//! (XEP-0160), in each side's archive (XEP-0313).

mod support;

use std::collections::HashMap;
use std::time::Duration;

use pipit_client::{LoginOptions, Mode, Session, TlsSettings};
use pipit_proto::xml::{Element, ns};
use support::Server;

const PASSWORD: &str = "correct horse";
/// Acknowledged messages before each kill.
const KILL_AFTER: usize = 100;
/// Messages sent between ack requests: a few are always in flight.
const BURST: usize = 7;

async fn login(server: &Server, user: &str, initial: Vec<Element>) -> Session {
    let mut options =
        LoginOptions::new(&format!("{user}@localhost/test"), PASSWORD).expect("options");
    options.server = server.c2s.to_string();
    options.direct_tls = server.direct_tls.to_string();
    // SASL2 with Bind2 turns stream management on inline.
    options.mode = Mode::Sasl2;
    options.tls = TlsSettings::builder()
        .without_public_roots()
        .add_ca_file(&server.cafile())
        .expect("test CA")
        .build()
        .expect("TLS settings");
    options.initial_stanzas = initial;
    Session::login(&options)
        .await
        .unwrap_or_else(|e| server.fail(&format!("{user} login: {e}")))
}

fn presence() -> Element {
    Element::new("presence", ns::CLIENT)
}

fn ping(id: &str) -> Element {
    Element::new("iq", ns::CLIENT)
        .with_attr("type", "get")
        .with_attr("id", id)
        .with_child(Element::new("ping", ns::PING))
}

/// Message `key` to `to`, with an origin-id (XEP-0359) so a resend is recognised.
fn message(to: &str, key: &str) -> Element {
    Element::new("message", ns::CLIENT)
        .with_attr("to", to)
        .with_attr("type", "chat")
        .with_attr("id", key)
        .with_child(Element::new("body", ns::CLIENT).with_text(key))
        .with_child(Element::new("origin-id", ns::SID).with_attr("id", key))
}

/// Stanzas until the iq result `id`, which comes after everything before it.
async fn until_result(session: &mut Session, id: &str) -> Vec<Element> {
    let mut got = Vec::new();
    loop {
        let stanza = session
            .next_stanza(Duration::from_secs(30))
            .await
            .expect("reading")
            .expect("stream open");
        if stanza.name() == "iq" && stanza.attr("id") == Some(id) {
            assert_eq!(stanza.attr("type"), Some("result"), "{stanza}");
            return got;
        }
        got.push(stanza);
    }
}

/// Counts of each body in `messages`.
fn bodies<'a>(messages: impl Iterator<Item = &'a Element>) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for m in messages {
        if let Some(body) = m.get_child("body", ns::CLIENT) {
            *counts.entry(body.text()).or_insert(0) += 1;
        }
    }
    counts
}

/// Every message in the account's archive (XEP-0313), paging with RSM.
async fn archive(session: &mut Session) -> Vec<Element> {
    let mut all = Vec::new();
    let mut after: Option<String> = None;
    for page in 0.. {
        let mut set =
            Element::new("set", ns::RSM).with_child(Element::new("max", ns::RSM).with_text("100"));
        if let Some(after) = &after {
            set.append_child(Element::new("after", ns::RSM).with_text(after.clone()));
        }
        let id = format!("mam{page}");
        let query = Element::new("iq", ns::CLIENT)
            .with_attr("type", "set")
            .with_attr("id", id.clone())
            .with_child(Element::new("query", ns::MAM).with_child(set));
        session.send(&query).await.expect("sending a query");
        let mut last = None;
        for m in until_result(session, &id).await {
            let Some(result) = m.get_child("result", ns::MAM) else {
                continue;
            };
            last = result.attr("id").map(str::to_owned);
            let forwarded = result
                .get_child("forwarded", ns::FORWARD)
                .expect("forwarded");
            all.push(
                forwarded
                    .get_child("message", ns::CLIENT)
                    .expect("message")
                    .clone(),
            );
        }
        match last {
            Some(last) => after = Some(last),
            None => break,
        }
        assert!(page < 100, "the archive never ends");
    }
    all
}

/// Alice's client, logged in and with its login stanzas acknowledged.
async fn sender(server: &Server) -> Session {
    let mut alice = login(server, "alice", vec![ping("ready")]).await;
    until_result(&mut alice, "ready").await;
    assert_eq!(alice.unacknowledged(), 1, "stream management is on");
    alice.request_ack().await.expect("asking for an ack");
    for _ in 0..100 {
        if alice.unacknowledged() == 0 {
            break;
        }
        // The ack is no stanza: reading for a moment takes it in.
        match alice.next_stanza(Duration::from_millis(100)).await {
            Ok(Some(_)) | Err(pipit_client::Error::Timeout(_)) => {}
            other => panic!("reading: {other:?}"),
        }
    }
    assert_eq!(alice.unacknowledged(), 0, "the login stanzas acknowledged");
    alice
}

/// One round: Alice sends to Bob (offline) and Carol (online) in bursts, asking
/// for acks, until KILL_AFTER are acknowledged; then one more burst with its ack
/// request, and `delay` later the server is killed while it stores and
/// acknowledges that burst. What it acknowledged in its last moment still reaches
/// the client and counts. Returns what was sent, in order, and how many of those
/// (from the start) were acknowledged.
async fn load_then_kill(
    server: &mut Server,
    round: usize,
    delay: Duration,
) -> (Vec<(&'static str, String)>, usize) {
    let carol = login(server, "carol", vec![presence()]).await;
    let mut alice = sender(server).await;
    let mut sent: Vec<(&str, String)> = Vec::new();
    let key = |i: usize| format!("r{round}k{i}");
    loop {
        let to = if sent.len().is_multiple_of(2) {
            "bob@localhost"
        } else {
            "carol@localhost"
        };
        let k = key(sent.len());
        alice.send(&message(to, &k)).await.expect("sending");
        sent.push((to, k));
        if !sent.len().is_multiple_of(BURST) {
            continue;
        }
        alice.request_ack().await.expect("asking for an ack");
        while let Ok(Some(_)) = alice.next_stanza(Duration::from_millis(20)).await {}
        if sent.len() - alice.unacknowledged() >= KILL_AFTER {
            break;
        }
    }
    for _ in 0..BURST {
        let k = key(sent.len());
        let _ = alice.send(&message("bob@localhost", &k)).await;
        sent.push(("bob@localhost", k));
    }
    let _ = alice.request_ack().await;
    tokio::time::sleep(delay).await;
    server.kill9();
    while let Ok(Some(_)) | Err(pipit_client::Error::Timeout(_)) =
        alice.next_stanza(Duration::from_millis(100)).await
    {}
    let acked = sent.len() - alice.unacknowledged();
    drop(carol);
    (sent, acked)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_load_loses_no_acknowledged_message() {
    let mut server = Server::start();
    for user in ["alice", "bob", "carol"] {
        server.add_user((&format!("{user}@localhost"), PASSWORD));
    }
    // Four crashes at different moments of the last burst's store and ack.
    let mut sent = Vec::new();
    let mut acked = Vec::new();
    for (round, delay_ms) in [0, 1, 2, 4].into_iter().enumerate() {
        let (round_sent, round_acked) =
            load_then_kill(&mut server, round, Duration::from_millis(delay_ms)).await;
        assert!(
            round_acked >= KILL_AFTER,
            "round {round}: only {round_acked} acknowledged"
        );
        acked.extend(round_sent[..round_acked].iter().map(|(_, k)| k.clone()));
        sent.extend(round_sent);
        server.restart(&[]);
    }
    let acked: std::collections::HashSet<String> = acked.into_iter().collect();

    let mut bob = login(&server, "bob", vec![presence(), ping("drained")]).await;
    let offline = until_result(&mut bob, "drained").await;
    let offline = bodies(offline.iter().filter(|m| m.name() == "message"));
    let bob_archive = bodies(archive(&mut bob).await.iter());
    let mut carol = login(&server, "carol", Vec::new()).await;
    let carol_archive = bodies(archive(&mut carol).await.iter());
    let mut alice = login(&server, "alice", Vec::new()).await;
    let alice_archive = bodies(archive(&mut alice).await.iter());

    for (to, key) in &sent {
        let count = |map: &HashMap<String, usize>| map.get(key).copied().unwrap_or(0);
        let places: &[(&str, &HashMap<String, usize>)] = if *to == "bob@localhost" {
            &[
                ("bob's offline queue", &offline),
                ("bob's archive", &bob_archive),
            ]
        } else {
            &[("carol's archive", &carol_archive)]
        };
        for (place, map) in places.iter().chain([&("alice's archive", &alice_archive)]) {
            if acked.contains(key) {
                assert_eq!(count(map), 1, "acknowledged {key} in {place}");
            } else {
                assert!(count(map) <= 1, "unacknowledged {key} twice in {place}");
            }
        }
    }
    println!(
        "4 crashes: {} sent, {} acknowledged; after restart all {} found once in each \
         place, {} of the {} unacknowledged stored too",
        sent.len(),
        acked.len(),
        acked.len(),
        alice_archive.len() - acked.len(),
        sent.len() - acked.len()
    );
}
