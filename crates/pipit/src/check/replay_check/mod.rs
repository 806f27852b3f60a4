//! The 0-RTT replay check (RFC 8446 §8, XEP-0484 §3.4; DESIGN.md rule 7): `0rtt-replay`.
//! A 0-RTT FAST login is sent, then its first flight (the ClientHello and the early-data
//! records) is sent again, byte for byte, on a new TCP connection. The server must not
//! act on it: it rejects the early data at the TLS level (a single-use ticket, RFC 8446
//! §8.1), or it refuses the `<authenticate/>`, whose count it has already seen.
//!
//! To read the server's answer to the replayed flight, the replaying client must hold the
//! flight's keys, so both attempts run a TLS client built to write identical bytes: a
//! [`Deterministic`] family of configurations whose randomness, X25519 key and clock are
//! fixed from one seed. rustls hands out no copy of a ticket, so a second client of the
//! family reads the recorded server side of the connection that got the tickets and so
//! holds the same ones. What each attempt wrote before the server's first byte is
//! recorded on the wire by a [`Tap`] and compared; if the flights differ, the check says
//! it could not run rather than grade something that is not a replay.
//!
//! Connections: 1 gets a token (as `fast-0rtt`), 2 is a TLS 1.3 connection verified with
//! the probe's trust (its certificate is then pinned), 3 gets tickets for the
//! deterministic client, 4 is the original 0-RTT login, 5 the replay. When TLS rejects
//! the replayed early data, the replaying client completes the handshake and sends the
//! same header and `<authenticate/>` again, as a client whose early data was refused
//! would, so the count layer is graded as well. Over Direct TLS only.
//!
//! This file holds the check itself: the five connections and the grading. The
//! recording relay is in [`relay`], the deterministic TLS client in [`deterministic`].

mod deterministic;
mod relay;

use std::sync::Arc;

use deterministic::{Deterministic, follow};
use relay::Tap;

use super::Target;
use super::fast_checks::{Evidence, Grant, graded};
use super::flows::silence;
use super::probe::{End, Probe, Waited};
use super::report::{Finding, Verdict};
use super::sasl2::{self, Answer};
use super::tls::CountingStore;
use super::xmpp::Plan;
use super::zero_rtt_checks::{
    Ticket, early_config, early_flight, early_login, fetch_ticket, zero_rtt_grant,
};

/// `0rtt-replay`: the first flight of a 0-RTT FAST login, sent again byte for byte, must
/// log nobody in. Not offered without Direct TLS, `<fast tls-0rtt='true'/>` or a ticket
/// that allows early data; says it could not run when the original login does not
/// complete in 0-RTT or the replayed flight is not byte-identical.
pub async fn zero_rtt_replay(target: &Target) -> Finding {
    const CHECK: &str = "0rtt-replay";
    let mut evidence = Evidence::default();
    let (grant, addr) = match zero_rtt_grant(CHECK, target, &mut evidence).await {
        Ok(found) => found,
        Err(finding) => return finding,
    };
    let (verdict, detail) = replayed(&addr, target, &grant, &mut evidence)
        .await
        .unwrap_or_else(|stopped| stopped);
    evidence.finding(CHECK, graded(verdict, detail))
}

/// Connections 2 to 5 (see the module docs). The error is the grade of what stopped the
/// check before the classifier could grade the replay.
async fn replayed(
    addr: &str,
    target: &Target,
    grant: &Grant,
    evidence: &mut Evidence,
) -> Result<(Verdict, String), (Verdict, String)> {
    // Connection 2: the probe's trust decides which certificate the replaying client pins.
    let store = CountingStore::new();
    let trusted = early_config(target, Some(Arc::clone(&store)))
        .map_err(|e| (Verdict::Fail, e.to_string()))?;
    const VERIFIED: &str = "TLS 1.3 with the certificate verified, for the replaying client to pin";
    let seen = fetch_ticket(addr, target, grant, evidence, (&trusted, &store), VERIFIED)
        .await
        .map_err(|(verdict, why)| (verdict, format!("connection 2 ({VERIFIED}): {why}")))?;
    let family =
        Deterministic::new(seen.chain, target.server_name.clone()).map_err(not_runnable)?;
    let [original_store, replay_store] = tickets(addr, target, grant, &family, evidence).await?;
    let ticket = Ticket {
        config: family
            .config(b"flight", &original_store)
            .map_err(not_runnable)?,
        cb_data: seen.cb_data,
    };
    let original = original(addr, target, grant, &ticket, evidence).await?;
    let ticket = Ticket {
        config: family
            .config(b"flight", &replay_store)
            .map_err(not_runnable)?,
        ..ticket
    };
    let (layers, length) = replay(addr, target, grant, &ticket, &original, evidence).await?;
    let (verdict, detail) = grade(&layers.0, layers.1.as_ref());
    Ok((
        verdict,
        format!(
            "{detail} [the replayed first flight: {} bytes, byte-identical to the original \
             0-RTT login's, which was bound]",
            length
        ),
    ))
}

/// Connection 3: the deterministic client gets tickets, through a tap; a second client
/// made the same way then reads the server's side of it and so holds the same tickets
/// (rustls hands out no copy of a ticket). Returns the two stores: one for the original,
/// one for the replay.
async fn tickets(
    addr: &str,
    target: &Target,
    grant: &Grant,
    family: &Deterministic,
    evidence: &mut Evidence,
) -> Result<[Arc<CountingStore>; 2], (Verdict, String)> {
    const WHAT: &str = "TLS 1.3 with the deterministic client, through a relay that records \
                        it, for tickets";
    let context =
        |(verdict, why): (Verdict, String)| (verdict, format!("connection 3 ({WHAT}): {why}"));
    let tap = Tap::open(addr, target.timeout)
        .await
        .map_err(|why| context((Verdict::Fail, why)))?;
    let stores = [CountingStore::new(), CountingStore::new()];
    let config = family.config(b"ticket", &stores[0]).map_err(not_runnable)?;
    fetch_ticket(
        &tap.addr,
        target,
        grant,
        evidence,
        (&config, &stores[0]),
        WHAT,
    )
    .await
    .map_err(context)?;
    let server_side = tap.recording().to_client;
    drop(tap);
    let config = family.config(b"ticket", &stores[1]).map_err(not_runnable)?;
    follow(config, &target.server_name, &server_side).map_err(|why| {
        not_runnable(format!(
            "a second deterministic client could not follow connection 3: {why}"
        ))
    })?;
    let (original, replay) = (stores[0].tickets(), stores[1].tickets());
    if original != replay {
        return Err(not_runnable(format!(
            "a second deterministic client following connection 3 got {replay} ticket(s), \
             the first {original}"
        )));
    }
    Ok(stores)
}

/// A grade for what stopped the check before it could replay anything.
fn not_runnable(why: String) -> (Verdict, String) {
    (Verdict::NotOffered, format!("could not run: {why}"))
}

/// Connection 4: the original 0-RTT login, through a tap. Returns its first flight.
async fn original(
    addr: &str,
    target: &Target,
    grant: &Grant,
    ticket: &Ticket,
    evidence: &mut Evidence,
) -> Result<Vec<u8>, (Verdict, String)> {
    const WHAT: &str = "the original: header + the token login in early data";
    let (tap, mut probe) = tapped(addr, target, WHAT, evidence).await?;
    let result = early_login(&mut probe, target, grant, ticket).await;
    let flight = tap.first_flight();
    evidence.add(probe, WHAT).await;
    drop(tap);
    match result {
        Ok((Verdict::Pass, _, _)) => Ok(flight),
        Ok((_, why, _)) | Err(why) => Err(not_runnable(format!(
            "the original 0-RTT login (connection 4) did not complete, so there is nothing \
             to replay (fast-0rtt grades it): {why}"
        ))),
    }
}

/// Connection 5: the original's first flight again, through a tap. Returns what the two
/// layers did with it and its length, once it is known to be byte-identical to `original`.
async fn replay(
    addr: &str,
    target: &Target,
    grant: &Grant,
    ticket: &Ticket,
    original: &[u8],
    evidence: &mut Evidence,
) -> Result<((TlsLayer, Option<CountLayer>), usize), (Verdict, String)> {
    const WHAT: &str = "the replay: the same ClientHello and early data again";
    let (tap, mut probe) = tapped(addr, target, WHAT, evidence).await?;
    let result = replay_on(&mut probe, target, grant, ticket).await;
    let flight = tap.first_flight();
    let same = same_flight(original, &flight);
    probe.note(&match &same {
        Ok(()) => format!(
            "the first flight, as the relay saw it, is connection 4's byte for byte ({} bytes)",
            flight.len()
        ),
        Err(why) => format!("the first flight is not connection 4's: {why}"),
    });
    evidence.add(probe, WHAT).await;
    drop(tap);
    if let Err(why) = same {
        return Err(not_runnable(format!(
            "the replaying client's first flight is not the original's ({why}), so it \
             would not be a replay"
        )));
    }
    result
        .map(|layers| (layers, flight.len()))
        .map_err(not_runnable)
}

/// A tap to `addr` and a probe connected through it; a failure goes into `evidence`.
async fn tapped(
    addr: &str,
    target: &Target,
    what: &str,
    evidence: &mut Evidence,
) -> Result<(Tap, Probe), (Verdict, String)> {
    let opened = match Tap::open(addr, target.timeout).await {
        Ok(tap) => Probe::connect(&tap.addr, target.timeout)
            .await
            .map(|probe| (tap, probe)),
        Err(why) => Err(why),
    };
    match opened {
        Ok((tap, mut probe)) => {
            probe.note(&format!(
                "a relay on this machine to {addr}, which records what the probe writes \
                 before the server's first byte"
            ));
            Ok((tap, probe))
        }
        Err(why) => {
            evidence.add_failed(None, what, &why).await;
            Err((Verdict::Fail, why))
        }
    }
}

/// The body of [`replay`]: the ClientHello with the same early data; if TLS rejects it,
/// the handshake's end and the same header and `<authenticate/>` again. An error means
/// the replaying client itself failed.
async fn replay_on(
    probe: &mut Probe,
    target: &Target,
    grant: &Grant,
    ticket: &Ticket,
) -> Result<(TlsLayer, Option<CountLayer>), String> {
    let plan = Plan::new(&target.account);
    probe.start_tls(&ticket.config, &target.server_name, false)?;
    let (what, early) = early_flight(target, grant, &ticket.cb_data);
    let mark = probe.mark();
    if !probe
        .early(&format!("the same again: {what}"), early.as_bytes())
        .await
    {
        return Err("the replaying client could not send early data with its ticket".into());
    }
    let waited = probe
        .wait(|p| {
            let progress = sasl2::progress(p.since(mark), &plan);
            progress.answer.is_some()
                || progress.stream_error.is_some()
                || (!p.handshaking() && !p.tls().is_some_and(|c| c.is_early_data_accepted()))
        })
        .await;
    if probe.handshaking() {
        return match probe.end() {
            Some(End::Tls(rustls::Error::InvalidCertificate(e))) => Err(format!(
                "the server showed another certificate than on connection 2 ({e:?})"
            )),
            Some(end) => Ok((TlsLayer::Ended(end.to_string()), None)),
            None => Ok((TlsLayer::Silent(silence(probe, waited)), None)),
        };
    }
    if probe.tls().is_some_and(|c| c.is_early_data_accepted()) {
        let count = count_layer(probe, mark, &plan, waited);
        return Ok((TlsLayer::Accepted, Some(count)));
    }
    // Rejected: a client sends its early data again after the handshake (RFC 8446 §4.2.10).
    let mark = probe.mark();
    probe
        .send(
            &format!("the same again after the handshake (the early data was rejected): {what}"),
            &early,
        )
        .await;
    let waited = probe
        .wait(|p| {
            let progress = sasl2::progress(p.since(mark), &plan);
            progress.answer.is_some() || progress.stream_error.is_some()
        })
        .await;
    Ok((
        TlsLayer::Rejected,
        Some(count_layer(probe, mark, &plan, waited)),
    ))
}

/// What the server answered to the `<authenticate/>` sent after `mark`.
fn count_layer(probe: &Probe, mark: usize, plan: &Plan, waited: Waited) -> CountLayer {
    let progress = sasl2::progress(probe.since(mark), plan);
    match progress.answer {
        Some(Ok(Answer::Success(success))) => CountLayer::LoggedIn(
            success
                .identity
                .map(|id| format!(" as {id}"))
                .unwrap_or_default(),
        ),
        Some(Ok(Answer::Failure(failure))) => CountLayer::Refused(failure.conditions),
        Some(Ok(other)) => CountLayer::Unclear(format!("{other:?} instead of an answer")),
        Some(Err(why)) => CountLayer::Unclear(why),
        None => CountLayer::Unclear(match progress.stream_error {
            Some(err) => format!("stream error {err}"),
            None => silence(probe, waited),
        }),
    }
}

/// What TLS did with the replayed flight.
#[derive(Clone, Debug, PartialEq, Eq)]
enum TlsLayer {
    /// The server took the early data (RFC 8446 §4.2.10): the count decides.
    Accepted,
    /// It completed a handshake without it: the early data was skipped unread.
    Rejected,
    /// It ended the connection before a handshake completed (an alert, a close): why.
    Ended(String),
    /// It said nothing: why.
    Silent(String),
}

/// What the server answered to the replayed `<authenticate/>`: in early data when TLS
/// accepted it, else sent again after the handshake.
#[derive(Clone, Debug, PartialEq, Eq)]
enum CountLayer {
    /// `<success/>`, with " as JID" when it named one.
    LoggedIn(String),
    /// `<failure/>`, with its conditions.
    Refused(String),
    /// Neither: why.
    Unclear(String),
}

/// The grade: a pass when the server did not act on the replayed login, saying which
/// layer refused it; a fail when it logged in, or when it took the early data and left
/// it unclear whether it acted on it.
fn grade(tls: &TlsLayer, count: Option<&CountLayer>) -> (Verdict, String) {
    const REJECTED: &str = "TLS rejected the replayed early data (its ticket is single-use, \
                            RFC 8446 §8.1) and the handshake completed without it";
    const AGAIN: &str = "the same <authenticate/> sent again after the handshake";
    match (tls, count) {
        (TlsLayer::Accepted, Some(CountLayer::LoggedIn(who))) => (
            Verdict::Fail,
            format!(
                "SECURITY: the server accepted the replayed early data and logged the replayed \
                 <authenticate/> (FAST count 1, already used) in{who}: whoever records a 0-RTT \
                 login can log in again (RFC 8446 §8, XEP-0484 §3.4)"
            ),
        ),
        (TlsLayer::Accepted, Some(CountLayer::Refused(conditions))) => (
            Verdict::Pass,
            format!(
                "refused by the count: TLS accepted the replayed early data, and the replayed \
                 <authenticate/> got <failure/> {conditions} (count 1 was already used, \
                 XEP-0484 §3.4)"
            ),
        ),
        (TlsLayer::Accepted, Some(CountLayer::Unclear(why))) => (
            Verdict::Fail,
            format!(
                "the server accepted the replayed early data but did not refuse the replayed \
                 <authenticate/>: {why}"
            ),
        ),
        (TlsLayer::Accepted, None) => (
            Verdict::Fail,
            "the server accepted the replayed early data but did not answer the replayed \
             <authenticate/>"
                .into(),
        ),
        (TlsLayer::Rejected, Some(CountLayer::Refused(conditions))) => (
            Verdict::Pass,
            format!(
                "refused by TLS and by the count: {REJECTED}; {AGAIN} got <failure/> \
                 {conditions} (count 1 was already used, XEP-0484 §3.4)"
            ),
        ),
        (TlsLayer::Rejected, Some(CountLayer::LoggedIn(who))) => (
            Verdict::Pass,
            format!(
                "refused by TLS: {REJECTED}; but {AGAIN} logged in{who}, so the count, which \
                 no layer else checks, is not (fast-replay-refused grades that)"
            ),
        ),
        (TlsLayer::Rejected, Some(CountLayer::Unclear(why))) => (
            Verdict::Pass,
            format!("refused by TLS: {REJECTED}; {AGAIN} got no answer: {why}"),
        ),
        (TlsLayer::Rejected, None) => (Verdict::Pass, format!("refused by TLS: {REJECTED}")),
        (TlsLayer::Ended(why), _) => (
            Verdict::Pass,
            format!("refused by TLS: the server ended the replayed handshake: {why}"),
        ),
        (TlsLayer::Silent(why), _) => (
            Verdict::Fail,
            format!("the server neither answered nor refused the replayed first flight: {why}"),
        ),
    }
}

/// Whether the replay's first flight is the original's, byte for byte; or how they differ.
fn same_flight(original: &[u8], replay: &[u8]) -> Result<(), String> {
    if original.is_empty() {
        return Err("nothing was recorded of the original".into());
    }
    match original.iter().zip(replay).position(|(a, b)| a != b) {
        None if original.len() == replay.len() => Ok(()),
        None => Err(format!(
            "{} bytes, the original {}",
            replay.len(),
            original.len()
        )),
        Some(at) => Err(format!("they differ from byte {at} on")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused() -> CountLayer {
        CountLayer::Refused("<not-authorized/>".into())
    }

    #[test]
    fn a_replayed_login_that_logs_in_fails() {
        let (verdict, detail) = grade(
            &TlsLayer::Accepted,
            Some(&CountLayer::LoggedIn(" as a@b/c".into())),
        );
        assert_eq!(verdict, Verdict::Fail);
        assert!(detail.starts_with("SECURITY:"), "{detail}");
        assert!(detail.contains("in as a@b/c"), "{detail}");
    }

    #[test]
    fn each_layer_that_refuses_is_named() {
        let (verdict, detail) = grade(&TlsLayer::Rejected, Some(&refused()));
        assert_eq!(verdict, Verdict::Pass);
        assert!(
            detail.starts_with("refused by TLS and by the count:")
                && detail.contains("got <failure/> <not-authorized/>"),
            "{detail}"
        );
        let (verdict, detail) = grade(&TlsLayer::Accepted, Some(&refused()));
        assert_eq!(verdict, Verdict::Pass);
        assert!(detail.starts_with("refused by the count:"), "{detail}");
        let (verdict, detail) = grade(&TlsLayer::Ended("TLS alert".into()), None);
        assert_eq!(verdict, Verdict::Pass);
        assert!(detail.starts_with("refused by TLS:"), "{detail}");
    }

    #[test]
    fn tls_alone_refusing_passes_and_says_the_count_did_not() {
        let (verdict, detail) = grade(
            &TlsLayer::Rejected,
            Some(&CountLayer::LoggedIn(String::new())),
        );
        assert_eq!(verdict, Verdict::Pass);
        assert!(
            detail.starts_with("refused by TLS:") && detail.contains("fast-replay-refused"),
            "{detail}"
        );
        let (verdict, _) = grade(
            &TlsLayer::Rejected,
            Some(&CountLayer::Unclear("no answer".into())),
        );
        assert_eq!(verdict, Verdict::Pass);
    }

    #[test]
    fn accepted_early_data_without_a_refusal_or_silence_fails() {
        for count in [
            None,
            Some(CountLayer::Unclear("no answer within 1 s".into())),
        ] {
            let (verdict, _) = grade(&TlsLayer::Accepted, count.as_ref());
            assert_eq!(verdict, Verdict::Fail, "{count:?}");
        }
        let (verdict, _) = grade(&TlsLayer::Silent("no answer".into()), None);
        assert_eq!(verdict, Verdict::Fail);
    }

    #[test]
    fn flights_are_compared_byte_for_byte() {
        assert_eq!(same_flight(b"abc", b"abc"), Ok(()));
        assert!(same_flight(b"abc", b"abd").unwrap_err().contains("byte 2"));
        assert!(same_flight(b"abc", b"ab").unwrap_err().contains("2 bytes"));
        assert!(same_flight(b"", b"").is_err());
    }
}
