//! The FAST-in-0-RTT check (XEP-0484 §3.4 with TLS 1.3 early data, RFC 8446 §2.3):
//! `fast-0rtt`. Connection 1 gets a token (as the FAST checks do, for HT-SHA-256-ENDP when
//! offered, else -NONE); connection 2 is an ordinary TLS 1.3 connection with early data
//! enabled, for a ticket and the server's certificate (the -ENDP channel binding); on
//! connection 3 the stream header and the FAST `<authenticate/>` ride as early data with
//! the ClientHello, and the server must log in in its first flight. Presence and the
//! message to self never ride in early data (it can be replayed): they leave with the
//! client's Finished. Over Direct TLS only.

use std::sync::Arc;

use pipit_proto::sasl::{HtMechanism, end_point_hash, ht_initial_response, ht_verify_server};
use rustls::pki_types::CertificateDer;

use super::Target;
use super::fast_checks::{Evidence, Grant, graded, obtain};
use super::flows::{expect, silence};
use super::probe::Probe;
use super::report::{Finding, Verdict};
use super::sasl2::{self, Answer};
use super::tls::CountingStore;
use super::xmpp::{Plan, header, header_then_features};

/// What a 0-RTT login needs besides the token: the early-data configuration (its session
/// cache holds the ticket) and the channel binding data.
pub(super) struct Ticket {
    /// TLS 1.3 with early data enabled, resuming from the store that holds the ticket.
    pub(super) config: Arc<rustls::ClientConfig>,
    /// The -ENDP channel binding data (the hash of the server's certificate), or nothing.
    pub(super) cb_data: Vec<u8>,
}

/// What a connection that fetched a ticket saw: the server's certificate chain, as the
/// configuration's verifier accepted it, and the channel binding data for the token.
pub(super) struct Seen {
    /// The chain, the end-entity certificate first.
    pub(super) chain: Vec<CertificateDer<'static>>,
    /// The -ENDP channel binding data, or nothing for -NONE.
    pub(super) cb_data: Vec<u8>,
}

/// `fast-0rtt`: a FAST login in TLS 1.3 early data must be taken (the server accepts the
/// early data) and bound in the server's first flight: two round trips, the TCP connect
/// included. Not offered without Direct TLS, without `<fast tls-0rtt='true'/>`, or when
/// the server issues no ticket that allows early data.
pub async fn fast_0rtt(target: &Target) -> Finding {
    const CHECK: &str = "fast-0rtt";
    let mut evidence = Evidence::default();
    let (grant, addr) = match zero_rtt_grant(CHECK, target, &mut evidence).await {
        Ok(found) => found,
        Err(finding) => return finding,
    };
    let ticket = match ticket(&addr, target, &grant, &mut evidence).await {
        Ok(ticket) => ticket,
        Err((verdict, why)) => {
            let detail = format!("connection 2 (a TLS 1.3 connection for a ticket): {why}");
            return evidence.finding(CHECK, graded(verdict, detail));
        }
    };
    const WHAT: &str = "header + the token login in early data";
    let mut probe = match Probe::connect(&addr, target.timeout).await {
        Ok(probe) => probe,
        Err(why) => {
            evidence.add_failed(None, WHAT, &why).await;
            let detail = format!("connection 3: {why}");
            return evidence.finding(CHECK, graded(Verdict::Fail, detail));
        }
    };
    let outcome = match early_login(&mut probe, target, &grant, &ticket).await {
        Ok((verdict, detail, round_trips)) => (verdict, detail, round_trips),
        Err(why) => graded(Verdict::Fail, format!("connection 3: {why}")),
    };
    evidence.add(probe, WHAT).await;
    evidence.finding(CHECK, outcome)
}

/// What every 0-RTT check needs first: a FAST token (obtained first, so that a
/// server that cannot issue one fails here too), a Direct TLS address, and the
/// server's word that it takes FAST in early data; otherwise the finding to report.
pub async fn zero_rtt_grant(
    check: &'static str,
    target: &Target,
    evidence: &mut Evidence,
) -> Result<(Grant, String), Finding> {
    let grant = match obtain(check, target, evidence, true).await {
        Ok(grant) => grant,
        Err((verdict, detail)) => {
            return Err(std::mem::take(evidence).finding(check, graded(verdict, detail)));
        }
    };
    let Some(addr) = target.direct_tls.clone() else {
        let why = "0-RTT is tried over Direct TLS only: no --direct-tls given".to_owned();
        return Err(std::mem::take(evidence).finding(check, graded(Verdict::NotOffered, why)));
    };
    if !grant.zero_rtt {
        let why = "<fast xmlns='urn:xmpp:fast:0'/> does not say tls-0rtt='true' \
                   (XEP-0484 §3.4)"
            .to_owned();
        return Err(std::mem::take(evidence).finding(check, graded(Verdict::NotOffered, why)));
    }
    Ok((grant, addr))
}

/// Connection 2: TLS 1.3 with early data enabled, the header, the features; the session
/// cache then holds a ticket (or the check is not offered). Returns the configuration
/// and, for -ENDP, the hash of the server's certificate.
async fn ticket(
    addr: &str,
    target: &Target,
    grant: &Grant,
    evidence: &mut Evidence,
) -> Result<Ticket, (Verdict, String)> {
    let store = CountingStore::new();
    let config = early_config(target, Some(Arc::clone(&store)))
        .map_err(|e| (Verdict::Fail, e.to_string()))?;
    const WHAT: &str = "TLS 1.3 with early data enabled, for a ticket";
    let seen = fetch_ticket(addr, target, grant, evidence, (&config, &store), WHAT).await?;
    Ok(Ticket {
        config,
        cb_data: seen.cb_data,
    })
}

/// The probe's Direct TLS configuration for TLS 1.3 alone, with early data enabled,
/// resuming through `store`.
pub(super) fn early_config(
    target: &Target,
    store: Option<Arc<CountingStore>>,
) -> anyhow::Result<Arc<rustls::ClientConfig>> {
    let config = target
        .trust
        .config(&[&rustls::version::TLS13], true, store)?;
    let mut config = (*config).clone();
    config.enable_early_data = true;
    Ok(Arc::new(config))
}

/// One connection (`what`, into `evidence`) with `config`: TLS 1.3, the header, the
/// features; `store`, which `config` resumes through, then holds a ticket that allows
/// early data, or the check is not offered. Returns what the connection saw.
pub(super) async fn fetch_ticket(
    addr: &str,
    target: &Target,
    grant: &Grant,
    evidence: &mut Evidence,
    (config, store): (&Arc<rustls::ClientConfig>, &CountingStore),
    what: &str,
) -> Result<Seen, (Verdict, String)> {
    let fail = |why: String| (Verdict::Fail, why);
    let mut probe = Probe::connect(addr, target.timeout).await.map_err(fail)?;
    let result = async {
        probe.start_tls(config, &target.server_name, false)?;
        let mark = probe.mark();
        let head = header(&target.account.domain, true);
        probe.send("stream header", &head).await;
        expect(
            &mut probe,
            mark,
            "the stream features",
            header_then_features,
        )
        .await?;
        let chain = probe
            .tls()
            .and_then(|c| c.peer_certificates())
            .filter(|certs| !certs.is_empty())
            .ok_or("the server sent no certificate")?
            .iter()
            .map(|c| c.clone().into_owned())
            .collect::<Vec<_>>();
        Ok::<_, String>((end_point_hash(chain[0].as_ref()), chain))
    }
    .await;
    evidence.add(probe, what).await;
    let (hash, chain) = result.map_err(fail)?;
    if store.early_tickets() == 0 {
        return Err((
            Verdict::NotOffered,
            format!(
                "the server issued {} TLS 1.3 ticket(s), none allowing early data \
                 (max_early_data_size 0)",
                store.tickets()
            ),
        ));
    }
    let cb_data = match grant.mechanism {
        HtMechanism::Sha256Endp => hash.ok_or_else(|| {
            fail("no tls-server-end-point hash for the server's certificate".into())
        })?,
        _ => Vec::new(),
    };
    Ok(Seen { chain, cb_data })
}

/// The early data of a 0-RTT token login: the stream header and the FAST
/// `<authenticate/>` with count 1 (with the config version, when known) and Bind2.
/// Returns what it holds, for the transcript, and the XML. The same arguments give the
/// same bytes.
pub(super) fn early_flight(target: &Target, grant: &Grant, cb_data: &[u8]) -> (String, String) {
    let account = &target.account;
    let initial = ht_initial_response(grant.mechanism, &account.local, &grant.token, cb_data);
    let mut early = header(&account.domain, true);
    early.push_str(&sasl2::authenticate(
        grant.mechanism.name(),
        &initial,
        &grant.user_agent,
        &sasl2::fast(1, false),
        grant.version.as_deref(),
    ));
    let what = format!(
        "header + authenticate {} (FAST count 1) + Bind2",
        grant.mechanism.name()
    );
    (what, early)
}

/// Connection 3: the header and the token login (count 1) as early data with the
/// ClientHello; on `<success/>`, presence and a message to self with the Finished.
pub(super) async fn early_login(
    probe: &mut Probe,
    target: &Target,
    grant: &Grant,
    ticket: &Ticket,
) -> Result<(Verdict, String, Option<u32>), String> {
    let account = &target.account;
    let plan = Plan::new(account);
    probe.start_tls(&ticket.config, &target.server_name, false)?;
    let (what, early) = early_flight(target, grant, &ticket.cb_data);
    let mark = probe.mark();
    if !probe.early(&what, early.as_bytes()).await {
        return Ok(graded(
            Verdict::NotOffered,
            "the resumed connection could not send early data: no ticket allowing \
             enough of it"
                .into(),
        ));
    }
    let waited = probe
        .wait(|p| {
            let progress = sasl2::progress(p.since(mark), &plan);
            progress.answer.is_some() || progress.stream_error.is_some()
        })
        .await;
    let round_trips = probe.round_trips();
    let accepted = probe.tls().is_some_and(|c| c.is_early_data_accepted());
    let progress = sasl2::progress(probe.since(mark), &plan);
    if let Some(err) = progress.stream_error {
        return Err(format!("stream error {err}"));
    }
    if !accepted {
        return Err(format!(
            "the server refused the early data (RFC 8446 §4.2.10) although its ticket \
             allows it and <fast/> says tls-0rtt='true'{}",
            if probe.handshaking() {
                String::new()
            } else {
                "; the handshake completed".into()
            }
        ));
    }
    let success = match progress.answer {
        None => {
            return Err(format!(
                "no answer to the early <authenticate/>: {}",
                silence(probe, waited)
            ));
        }
        Some(Err(why)) => return Err(why),
        Some(Ok(Answer::Success(success))) => success,
        Some(Ok(Answer::Failure(failure))) => {
            return Err(format!(
                "the token login in early data got <failure/> {}",
                failure.conditions
            ));
        }
        Some(Ok(_)) => return Err("the token login in early data got no <success/>".into()),
    };
    // Mutual authentication, as for every FAST login (draft-schmaus-kitten-sasl-ht §3.3).
    let proof = success.additional_data.as_deref().ok_or_else(|| {
        "the early-data token login's <success/> has no <additional-data/>: no server proof"
            .to_string()
    })?;
    if !ht_verify_server(grant.mechanism, &grant.token, &ticket.cb_data, proof) {
        return Err(
            "the server's proof (<additional-data/>) for the early-data token login is wrong"
                .into(),
        );
    }
    let bound = success.bound_jid(&account.local, &account.domain)?;
    // Stanzas only now: they leave with the client's Finished, never in early data.
    let mark = probe.mark();
    probe
        .send("presence + message to self", &plan.stanzas_to_bare())
        .await;
    let waited = probe
        .wait(|p| {
            let progress = sasl2::progress(p.since(mark), &plan);
            progress.message_back || progress.message_error.is_some()
        })
        .await;
    let after = sasl2::progress(probe.since(mark), &plan);
    if let Some(cond) = after.message_error {
        return Err(format!(
            "bound {bound}, but the message to self bounced: {cond}"
        ));
    }
    if !after.message_back {
        return Err(format!(
            "bound {bound}, but the message to self did not come back: {}",
            silence(probe, waited)
        ));
    }
    Ok((
        Verdict::Pass,
        format!(
            "bound {bound} in the server's first flight: header + SASL2 {} token (count 1) \
             in TLS 1.3 early data, accepted; presence and message to self after the \
             Finished came back",
            grant.mechanism.name()
        ),
        Some(round_trips),
    ))
}
