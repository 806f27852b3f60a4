//! Roster and subscription steps the roster and presence tests share.

use super::{WireClient, expect, send};

/// Waits until every one of `needles` has arrived; returns all text so far.
pub async fn expect_all(w: &mut WireClient, needles: &[&str]) -> String {
    let needles: Vec<String> = needles.iter().map(|n| n.to_string()).collect();
    w.wait(move |c| needles.iter().all(|n| c.text.contains(n.as_str())))
        .await;
    w.client.take_text()
}

/// Sends a roster get with this id (and `ver`, if given); returns the answer. The
/// resource becomes interested in roster pushes (RFC 6121 §2.2).
pub async fn roster_get(w: &mut WireClient, id: &str, ver: Option<&str>) -> String {
    let ver = ver.map(|v| format!(" ver='{v}'")).unwrap_or_default();
    send(
        w,
        &format!("<iq type='get' id='{id}'><query xmlns='jabber:iq:roster'{ver}/></iq>"),
    )
    .await;
    expect(w, &format!("id='{id}'")).await
}

/// Sends a roster set of `item` (the `<item/>` XML) with this id; returns what came
/// back up to its answer and everything in `also` (the push, for an interested
/// resource, which may come in the same read as the answer or later).
pub async fn roster_set(w: &mut WireClient, id: &str, item: &str, also: &[&str]) -> String {
    send(
        w,
        &format!("<iq type='set' id='{id}'><query xmlns='jabber:iq:roster'>{item}</query></iq>"),
    )
    .await;
    let answer = format!("id='{id}'");
    let mut needles = vec![answer.as_str()];
    needles.extend_from_slice(also);
    expect_all(w, &needles).await
}

/// A subscription stanza of `kind` to `to`.
pub fn subscription(kind: &str, to: &str) -> String {
    format!("<presence type='{kind}' to='{to}'/>")
}

/// Takes `a` and `b` (each an available, interested resource of the accounts
/// `a_jid` and `b_jid`) through the handshake of RFC 6121 §3.1 both ways, to
/// `both`; each has seen the other's presence when it returns.
pub async fn befriend(a: &mut WireClient, a_jid: &str, b: &mut WireClient, b_jid: &str) {
    send(a, &subscription("subscribe", b_jid)).await;
    expect(b, "type='subscribe'").await;
    send(b, &subscription("subscribed", a_jid)).await;
    expect_all(a, &["subscription='to'", &format!("from='{b_jid}/")]).await;
    send(b, &subscription("subscribe", a_jid)).await;
    expect(a, "type='subscribe'").await;
    send(a, &subscription("subscribed", b_jid)).await;
    expect_all(b, &["subscription='both'", &format!("from='{a_jid}/")]).await;
    expect(a, "subscription='both'").await;
}

/// Sends a ping to the server and waits for its answer: everything the server had
/// queued for this resource before it has then arrived.
pub async fn settle(w: &mut WireClient, id: &str) -> String {
    send(
        w,
        &format!("<iq type='get' id='{id}' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>"),
    )
    .await;
    expect(w, &format!("id='{id}'")).await
}
