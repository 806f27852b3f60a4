//! The checks, one function each, each returning a [`Finding`] with the transcript as
//! evidence. Every wait is bounded by the timeout: a server that hangs is a finding.

use pipit_proto::xml::ns;

use super::Target;
use super::flows::{
    Stop, expect, handshake, has, login_after_tls, login_lockstep, login_pipelined, silence,
    starttls_lockstep,
};
use super::probe::{End, Probe, Received, Waited, describe_records, is_tls_records};
use super::report::{Finding, Verdict};
use super::tls::CountingStore;
use super::transcript::printable;
use super::xmpp::{
    Plan, STARTTLS, elements, header, header_then_features, mechanisms, plain_auth, progress,
    random_hex, stream_error,
};

/// Connects to `addr`, or returns the failing finding.
macro_rules! connect {
    ($check:expr, $addr:expr, $target:expr) => {
        match Probe::connect($addr, $target.timeout).await {
            Ok(probe) => probe,
            Err(why) => return Finding::new($check, Verdict::Fail, why),
        }
    };
}

/// Closes `probe` and makes the finding, with the transcript as evidence.
pub async fn finish(
    probe: Probe,
    check: &'static str,
    verdict: Verdict,
    detail: String,
    round_trips: Option<u32>,
) -> Finding {
    let transcript = probe.close().await;
    Finding::new(check, verdict, detail)
        .round_trips(round_trips)
        .evidence(transcript.text())
}

/// A step that stopped: not offered or failed, prefixed with `context`.
pub fn stopped(stop: Stop, context: &str) -> (Verdict, String) {
    match stop {
        Stop::NotOffered(why) => (Verdict::NotOffered, why),
        Stop::Failed(why) => (Verdict::Fail, format!("{context}{why}")),
    }
}

/// Not offered when PLAIN is known to be missing: a pipelined SASL1 login needs a
/// mechanism that completes in one step.
fn plain_missing(target: &Target) -> Option<String> {
    (!target.plain_offered()).then(|| {
        format!(
            "PLAIN is not offered after TLS ({}); a pipelined login needs a one-step mechanism",
            target
                .learned
                .mechanisms
                .as_deref()
                .unwrap_or_default()
                .join(" ")
        )
    })
}

/// `lockstep-login`: the RFC 6120 baseline, every step waiting for its answer. Also learns
/// the mechanisms offered after TLS. Fails the whole run only if the host is unreachable.
pub async fn lockstep_login(target: &Target) -> anyhow::Result<(Finding, Option<Vec<String>>)> {
    const CHECK: &str = "lockstep-login";
    let mut probe = Probe::connect(&target.addr, target.timeout)
        .await
        .map_err(anyhow::Error::msg)?;
    let plan = Plan::new(&target.account);
    let result = match starttls_lockstep(&mut probe, target).await {
        Err(stop) => Err(stopped(stop, "")),
        Ok(()) => match handshake(&mut probe).await {
            Err(why) => Err((Verdict::Fail, why)),
            Ok(()) => login_lockstep(&mut probe, target, &plan)
                .await
                .map_err(|why| (Verdict::Fail, why)),
        },
    };
    let offered = elements(probe.since(0))
        .filter(|e| e.is("features", ns::STREAM))
        .filter(|f| f.get_child("mechanisms", ns::SASL).is_some())
        .last()
        .map(mechanisms);
    let finding = match result {
        Ok(login) => {
            let detail = login.detail(&probe);
            let rtt = probe.round_trips();
            finish(probe, CHECK, Verdict::Pass, detail, Some(rtt)).await
        }
        Err((verdict, detail)) => finish(probe, CHECK, verdict, detail, None).await,
    };
    Ok((finding, offered))
}

/// `starttls-pipelined`: header and `<starttls/>` in one write, before the features came;
/// the server must answer with the features, then `<proceed/>`. The login after TLS is
/// pipelined when the server takes that, else in lockstep.
pub async fn starttls_pipelined(target: &Target) -> Finding {
    const CHECK: &str = "starttls-pipelined";
    let mut probe = connect!(CHECK, &target.addr, target);
    let mark = probe.mark();
    let flight = format!("{}{STARTTLS}", header(&target.account.domain, true));
    probe
        .flight("header + <starttls/>", flight.as_bytes(), b"")
        .await;
    let answered = expect(&mut probe, mark, "<proceed/>", |r| {
        has(r, "proceed", ns::TLS) || has(r, "failure", ns::TLS) || no_starttls(r)
    })
    .await;
    let received = probe.since(mark);
    let (verdict, detail, rtt) = if no_starttls(received) {
        (
            Verdict::NotOffered,
            "the server does not offer STARTTLS".to_owned(),
            None,
        )
    } else if let Err(why) = answered {
        (Verdict::Fail, why, None)
    } else if !has(received, "proceed", ns::TLS) {
        (
            Verdict::Fail,
            "the server answered the pipelined <starttls/> with <failure/>".to_owned(),
            None,
        )
    } else if !proceed_after_features(received) {
        (
            Verdict::Fail,
            "the server sent <proceed/> before its stream features".to_owned(),
            None,
        )
    } else {
        let plan = Plan::new(&target.account);
        let login = match probe.start_tls(&target.tls, &target.server_name, false) {
            Ok(()) => login_after_tls(&mut probe, target, &plan).await,
            Err(why) => Err(why),
        };
        match login {
            Ok(login) => (
                Verdict::Pass,
                format!("features, then <proceed/>; {}", login.detail(&probe)),
                Some(probe.round_trips()),
            ),
            Err(why) => (
                Verdict::Fail,
                format!("features, then <proceed/>, but the login after it failed: {why}"),
                None,
            ),
        }
    };
    finish(probe, CHECK, verdict, detail, rtt).await
}

/// Whether `raw` starts as XML does (`<` after any whitespace), or holds a `<success`.
fn looks_like_xml(raw: &[u8]) -> bool {
    let text = raw.trim_ascii_start();
    text.starts_with(b"<") || raw.windows(8).any(|w| w == b"<success")
}

/// What a connection ended with, or that it timed out: for details.
fn what_happened(probe: &Probe) -> String {
    match (stream_error(probe.since(0)), probe.end()) {
        (Some(err), _) => format!("stream error {err}"),
        (None, Some(end)) => end.to_string(),
        (None, None) => format!("no answer within {} s", probe.timeout().as_secs()),
    }
}

/// Whether the first features (those before TLS) came without STARTTLS.
fn no_starttls(received: &[Received]) -> bool {
    elements(received)
        .find(|e| e.is("features", ns::STREAM))
        .is_some_and(|f| f.get_child("starttls", ns::TLS).is_none())
}

/// Whether the stream features arrived before `<proceed/>`.
fn proceed_after_features(received: &[Received]) -> bool {
    let mut seen_features = false;
    for e in elements(received) {
        if e.is("features", ns::STREAM) {
            seen_features = true;
        }
        if e.is("proceed", ns::TLS) {
            return seen_features;
        }
    }
    false
}

/// `stunt-clienthello`: header, `<starttls/>` and the TLS ClientHello in one write (the
/// login buffered behind the handshake when the server takes pipelined logins); the
/// handshake must complete and the login work.
pub async fn stunt_clienthello(target: &Target) -> Finding {
    const CHECK: &str = "stunt-clienthello";
    let mut probe = connect!(CHECK, &target.addr, target);
    let plan = Plan::new(&target.account);
    if let Err(why) = probe.start_tls(&target.tls, &target.server_name, true) {
        return finish(probe, CHECK, Verdict::Fail, why, None).await;
    }
    let plain = format!("{}{STARTTLS}", header(&target.account.domain, true));
    let pipelined = target.learned.auth_pipelining && target.plain_offered();
    let mark = probe.mark();
    let login = if pipelined {
        let flight = plan.pipelined_login(&target.account, true);
        probe
            .flight(
                "header + <starttls/>, then in TLS: header + auth PLAIN + restart header + \
                 bind + presence + message to self",
                plain.as_bytes(),
                flight.as_bytes(),
            )
            .await;
        let waited = probe
            .wait(|p| progress(p.since(mark), &plan).finished())
            .await;
        progress(probe.since(mark), &plan)
            .outcome(&silence(&probe, waited))
            .map(|bound| super::flows::Login {
                bound,
                how: "PLAIN, pipelined".into(),
            })
    } else {
        probe
            .flight("header + <starttls/> + ClientHello", plain.as_bytes(), b"")
            .await;
        match handshake(&mut probe).await {
            Ok(()) => login_lockstep(&mut probe, target, &plan).await,
            Err(why) => Err(why),
        }
    };
    let received = probe.since(mark);
    let proceeded = has(received, "proceed", ns::TLS);
    let (verdict, detail, rtt) = match login {
        Ok(login) => (
            Verdict::Pass,
            login.detail(&probe),
            Some(probe.round_trips()),
        ),
        Err(_) if no_starttls(received) => (
            Verdict::NotOffered,
            "the server does not offer STARTTLS".into(),
            None,
        ),
        Err(_) if !proceeded => (
            Verdict::Fail,
            format!(
                "no <proceed/> for <starttls/> (sent with a ClientHello): {}",
                what_happened(&probe)
            ),
            None,
        ),
        Err(_) if probe.handshaking() || matches!(probe.end(), Some(End::Tls(_))) => (
            Verdict::Fail,
            format!(
                "<proceed/>, but the TLS handshake with the ClientHello sent behind \
                 <starttls/> failed: {} (the server dropped or garbled it)",
                what_happened(&probe)
            ),
            None,
        ),
        Err(why) => (
            Verdict::Fail,
            format!("TLS worked, but the login after it failed: {why}"),
            None,
        ),
    };
    finish(probe, CHECK, verdict, detail, rtt).await
}

/// `plaintext-after-starttls-ignored`: header, `<starttls/>`, then in the same write a
/// plaintext stream header, PLAIN auth with a decoy password (the real one must never
/// cross the wire in clear; any XMPP answer, even `<failure/>`, shows the server parsed
/// the bytes), a restart and a bind. Only
/// `<proceed/>` and TLS records (an alert) or a close may follow: an XMPP answer means the
/// server acted on bytes that arrived before TLS (the CVE-2011-0411 class).
pub async fn plaintext_after_starttls(target: &Target) -> Finding {
    const CHECK: &str = "plaintext-after-starttls-ignored";
    let mut probe = connect!(CHECK, &target.addr, target);
    let account = &target.account;
    let plan = Plan::new(account);
    // The injected part opens a new stream first, as the client would after TLS: a server
    // that wrongly hands the rest of the read to its fresh post-TLS parser then answers it.
    let flight = format!(
        "{}{STARTTLS}{}{}{}{}",
        header(&account.domain, true),
        header(&account.domain, false),
        plain_auth(&account.local, &format!("decoy-{}", random_hex())),
        header(&account.domain, false),
        plan.bind()
    );
    probe
        .flight(
            "header + <starttls/> + plaintext: header + auth PLAIN (decoy password) + \
             restart header + bind",
            flight.as_bytes(),
            b"",
        )
        .await;
    let waited = probe.wait(|_| false).await;
    let received = probe.since(0);
    let raw = probe.after_proceed();
    let (verdict, detail) = if !has(received, "proceed", ns::TLS) {
        let accepted = elements(received).any(|e| e.is("success", ns::SASL));
        if accepted {
            (
                Verdict::Fail,
                "SECURITY: no <proceed/>, and the server accepted the auth sent in plaintext"
                    .to_owned(),
            )
        } else if no_starttls(received) {
            (
                Verdict::NotOffered,
                "the server does not offer STARTTLS".into(),
            )
        } else {
            let what = stream_error(received)
                .map(|e| format!("stream error {e}"))
                .unwrap_or_else(|| silence(&probe, waited));
            (
                Verdict::Fail,
                format!("no <proceed/> for <starttls/>: {what}"),
            )
        }
    } else if !is_tls_records(raw) && looks_like_xml(raw) {
        // Whatever it says, XML after <proceed/> means the injected bytes were read as XMPP.
        let holds = |needle: &[u8]| raw.windows(needle.len()).any(|w| w == needle);
        let answer = if holds(b"<success") && holds(plan.bind_id.as_bytes()) {
            "<success/> and the bind result: it set up a session from bytes injected before TLS"
                .to_owned()
        } else if holds(b"<success") {
            "<success/>: it authenticated with the auth injected before TLS".to_owned()
        } else {
            printable(raw, 200)
        };
        (
            Verdict::Fail,
            format!(
                "SECURITY: after <proceed/> the server read the injected plaintext as XMPP \
                 and answered {answer}"
            ),
        )
    } else if !is_tls_records(raw) {
        (
            Verdict::Fail,
            format!(
                "after <proceed/> the server sent {} bytes that are neither TLS nor XML",
                raw.len()
            ),
        )
    } else {
        let then = match (raw.is_empty(), probe.end()) {
            (true, Some(_)) => "closed the connection".to_owned(),
            (false, Some(_)) => format!("sent {} and closed", describe_records(raw)),
            (true, None) => format!(
                "kept the connection open without answering for {} s",
                target.timeout.as_secs()
            ),
            (false, None) => format!("sent {}", describe_records(raw)),
        };
        (
            Verdict::Pass,
            format!("<proceed/>, then the server {then}: the plaintext was never acted on"),
        )
    };
    finish(probe, CHECK, verdict, detail, None).await
}

/// `auth-restart-bind-pipelined` (and `-no-xml-decl`): STARTTLS in lockstep, then header,
/// PLAIN auth, restart header, bind, presence and a message to self in one flight.
pub async fn auth_pipelined(target: &Target, restart_declaration: bool) -> Finding {
    let check = if restart_declaration {
        "auth-restart-bind-pipelined"
    } else {
        "auth-restart-bind-pipelined-no-xml-decl"
    };
    if let Some(why) = plain_missing(target) {
        return Finding::new(check, Verdict::NotOffered, why);
    }
    let mut probe = connect!(check, &target.addr, target);
    if let Err(stop) = starttls_lockstep(&mut probe, target).await {
        let (verdict, detail) = stopped(stop, "before the pipelined login: ");
        return finish(probe, check, verdict, detail, None).await;
    }
    if let Err(why) = handshake(&mut probe).await {
        return finish(probe, check, Verdict::Fail, why, None).await;
    }
    let plan = Plan::new(&target.account);
    let (verdict, detail, rtt) =
        match login_pipelined(&mut probe, target, &plan, restart_declaration).await {
            Ok(mut login) => (
                Verdict::Pass,
                {
                    login.how.push_str(" after STARTTLS in lockstep");
                    login.detail(&probe)
                },
                Some(probe.round_trips()),
            ),
            Err(why) => (Verdict::Fail, why, None),
        };
    finish(probe, check, verdict, detail, rtt).await
}

/// `sasl-failure-pipelined-restart`: a pipelined login with a wrong password; the server
/// must answer `<failure/>`, treat the pipelined restart sanely, execute none of the
/// pipelined stanzas, and take a correct auth on the same connection. The detail starts
/// with "graceful" (pass), "error" or "hang" (fail), or "inconclusive" (the given password
/// failed as well).
pub async fn sasl_failure_restart(target: &Target) -> Finding {
    const CHECK: &str = "sasl-failure-pipelined-restart";
    if let Some(why) = plain_missing(target) {
        return Finding::new(CHECK, Verdict::NotOffered, why);
    }
    let mut probe = connect!(CHECK, &target.addr, target);
    if let Err(stop) = starttls_lockstep(&mut probe, target).await {
        let (verdict, detail) = stopped(stop, "before the pipelined login: ");
        return finish(probe, CHECK, verdict, detail, None).await;
    }
    if let Err(why) = handshake(&mut probe).await {
        return finish(probe, CHECK, Verdict::Fail, why, None).await;
    }
    let (verdict, detail, rtt) = match failure_then_retry(&mut probe, target).await {
        Ok(detail) => (Verdict::Pass, detail, Some(probe.round_trips())),
        Err(detail) => (Verdict::Fail, detail, None),
    };
    finish(probe, CHECK, verdict, detail, rtt).await
}

/// The body of `sasl-failure-pipelined-restart`, after TLS.
async fn failure_then_retry(probe: &mut Probe, target: &Target) -> Result<String, String> {
    let account = &target.account;
    let bad = Plan::new(account);
    let wrong = format!("{}-wrong-{}", account.password, random_hex());
    let flight = format!(
        "{}{}{}{}{}",
        header(&account.domain, true),
        plain_auth(&account.local, &wrong),
        header(&account.domain, true),
        bad.bind(),
        bad.message()
    );
    let mark = probe.mark();
    probe
        .flight(
            "header + auth PLAIN (wrong password) + restart header + bind + message",
            b"",
            flight.as_bytes(),
        )
        .await;
    let waited = probe
        .wait(|p| {
            let pr = progress(p.since(mark), &bad);
            pr.sasl.is_some() || pr.stream_error.is_some()
        })
        .await;
    let pr = progress(probe.since(mark), &bad);
    let failure = match pr.sasl {
        Some(Ok(())) => return Err("SECURITY: the server accepted a wrong password".into()),
        Some(Err(cond)) => cond,
        None => {
            return Err(match (pr.stream_error, waited) {
                (Some(err), _) => format!("error: stream error {err} instead of <failure/>"),
                (None, Waited::TimedOut) => format!(
                    "hang: no answer to the auth with a wrong password within {} s",
                    target.timeout.as_secs()
                ),
                (None, _) => format!("error: {} instead of <failure/>", silence(probe, waited)),
            });
        }
    };

    // What follows the failure: the answers to the pipelined restart and stanzas.
    let after_failure = mark
        + probe
            .since(mark)
            .iter()
            .position(|r| matches!(r, Received::Element(e) if e.is("failure", ns::SASL)))
            .map_or(0, |i| i + 1);
    let waited = probe
        .wait(|p| {
            let rest = p.since(after_failure);
            let pr = progress(rest, &bad);
            (header_then_features(rest)
                && pr.bound.is_some()
                && (pr.message_back || pr.message_error.is_some()))
                || pr.stream_error.is_some()
        })
        .await;
    let rest = probe.since(after_failure);
    let pr = progress(rest, &bad);
    if let Some(Ok(jid)) = &pr.bound {
        return Err(format!(
            "SECURITY: after <failure/> the server executed the pipelined bind ({jid})"
        ));
    }
    if pr.message_back {
        return Err("SECURITY: after <failure/> the server delivered the pipelined message".into());
    }
    if let Some(err) = &pr.stream_error {
        return Err(format!(
            "error: <failure/> {failure}, then stream error {err} (the pipelined restart was refused)"
        ));
    }
    if let Some(end) = probe.end() {
        return Err(format!("error: <failure/> {failure}, then {end}"));
    }
    let restart = if header_then_features(rest) {
        "the pipelined restart got a fresh header and features".to_owned()
    } else {
        format!(
            "no answer to the pipelined restart within {} s",
            target.timeout.as_secs()
        )
    };
    let answer = |x: Option<String>| x.unwrap_or_else(|| "no answer".into());
    let stanzas = format!(
        "bind → {}, message → {}",
        answer(pr.bound.and_then(Result::err)),
        answer(pr.message_error)
    );
    if waited == Waited::TimedOut {
        probe.note("(some pipelined elements got no answer; retrying anyway)");
    }
    let summary = format!("<failure/> {failure}; {restart}; {stanzas}");

    // The retry, on the same connection.
    let good = Plan::new(account);
    let flight = format!(
        "{}{}{}{}",
        plain_auth(&account.local, &account.password),
        header(&account.domain, true),
        good.bind(),
        good.stanzas()
    );
    let mark = probe.mark();
    probe
        .flight(
            "auth PLAIN (right password) + restart header + bind + presence + message to self",
            b"",
            flight.as_bytes(),
        )
        .await;
    let waited = probe
        .wait(|p| progress(p.since(mark), &good).finished())
        .await;
    let retry = progress(probe.since(mark), &good);
    match retry.outcome(&silence(probe, waited)) {
        Ok(bound) => Ok(format!(
            "graceful: {summary}; the retry on the same connection bound {bound} and the \
             message to self came back; {} round trips",
            probe.round_trips()
        )),
        Err(why) if matches!(retry.sasl, Some(Err(_))) => Err(format!(
            "inconclusive: {summary}; then the retry with the given password failed too ({why}): \
             are the credentials right?"
        )),
        Err(why) if waited == Waited::TimedOut => Err(format!("hang: {summary}; the retry: {why}")),
        Err(why) => Err(format!("error: {summary}; the retry failed: {why}")),
    }
}

/// `tls13-resumption` / `tls12-resumption`: two STARTTLS connections sharing one client
/// configuration restricted to `version`; the second handshake must be a resumption.
pub async fn resumption(
    target: &Target,
    version: &'static rustls::SupportedProtocolVersion,
) -> Finding {
    let tls13 = version.version == rustls::ProtocolVersion::TLSv1_3;
    let (check, name) = if tls13 {
        ("tls13-resumption", "TLS 1.3")
    } else {
        ("tls12-resumption", "TLS 1.2")
    };
    let store = CountingStore::new();
    let config = match target
        .trust
        .config(&[version], false, Some(std::sync::Arc::clone(&store)))
    {
        Ok(config) => config,
        Err(e) => return Finding::new(check, Verdict::Fail, e.to_string()),
    };
    let scoped = Target {
        tls: config,
        ..target.clone()
    };
    let mut evidence = String::new();
    let mut handshakes = Vec::new();
    for n in 1..=2 {
        let mut probe = connect!(check, &target.addr, target);
        let outcome = tls_session(&mut probe, &scoped).await;
        let kind = probe.tls().and_then(|c| c.handshake_kind());
        let protocol_refused = matches!(
            probe.end(),
            Some(End::Tls(
                rustls::Error::AlertReceived(
                    rustls::AlertDescription::ProtocolVersion
                        | rustls::AlertDescription::HandshakeFailure
                        | rustls::AlertDescription::InsufficientSecurity
                ) | rustls::Error::PeerIncompatible(_)
            ))
        );
        evidence.push_str(&format!("== connection {n} ==\n"));
        evidence.push_str(probe.close().await.text());
        match outcome {
            Ok(rtts) => handshakes.push((kind, rtts)),
            Err(why) => {
                let verdict = if n == 1 && protocol_refused {
                    Verdict::NotOffered
                } else {
                    Verdict::Fail
                };
                let detail = if verdict == Verdict::NotOffered {
                    format!("the server does not speak {name}: {why}")
                } else {
                    format!("connection {n}: {why}")
                };
                return Finding::new(check, verdict, detail).evidence(evidence);
            }
        }
    }
    let issued = if tls13 {
        format!("{} tickets issued", store.tickets())
    } else {
        format!("{} sessions stored", store.sessions())
    };
    let rtts = |i: usize| handshakes.get(i).map_or(0, |h| h.1);
    let (verdict, how) = match handshakes.get(1).and_then(|h| h.0) {
        Some(rustls::HandshakeKind::Resumed) => (Verdict::Pass, "the second connection resumed"),
        _ => (Verdict::Fail, "the second connection did a full handshake"),
    };
    Finding::new(
        check,
        verdict,
        format!(
            "{how} ({name}, {issued}; handshake round trips: {} then {})",
            rtts(0),
            rtts(1)
        ),
    )
    .evidence(evidence)
}

/// STARTTLS in lockstep, the handshake, and a stream header answered with features (by
/// then any TLS 1.3 tickets have arrived). Returns the round trips the handshake took.
async fn tls_session(probe: &mut Probe, target: &Target) -> Result<u32, String> {
    starttls_lockstep(probe, target)
        .await
        .map_err(|stop| match stop {
            Stop::NotOffered(why) | Stop::Failed(why) => why,
        })?;
    let before = probe.round_trips();
    handshake(probe).await?;
    let mark = probe.mark();
    probe
        .send("stream header", &header(&target.account.domain, true))
        .await;
    let rtts = probe.round_trips().saturating_sub(before);
    expect(probe, mark, "the stream features", header_then_features).await?;
    Ok(rtts)
}

/// `direct-tls`: XEP-0368 on `--direct-tls`: the ClientHello (ALPN `xmpp-client`), then the
/// login, pipelined behind the handshake when the server takes pipelined logins.
pub async fn direct_tls(target: &Target) -> Finding {
    const CHECK: &str = "direct-tls";
    let Some(addr) = &target.direct_tls else {
        return Finding::new(CHECK, Verdict::NotOffered, "no --direct-tls address given");
    };
    let mut probe = connect!(CHECK, addr, target);
    if let Err(why) = probe.start_tls(&target.direct, &target.server_name, false) {
        return finish(probe, CHECK, Verdict::Fail, why, None).await;
    }
    let plan = Plan::new(&target.account);
    let (verdict, detail, rtt) = match login_after_tls(&mut probe, target, &plan).await {
        Ok(login) => {
            let alpn = match probe.tls().and_then(|c| c.alpn_protocol()) {
                Some(p) => format!("ALPN {}", String::from_utf8_lossy(p)),
                None => "no ALPN".into(),
            };
            (
                Verdict::Pass,
                format!("{}; {alpn}", login.detail(&probe)),
                Some(probe.round_trips()),
            )
        }
        Err(why) if probe.handshaking() || matches!(probe.end(), Some(End::Tls(_))) => {
            (Verdict::Fail, format!("TLS handshake failed: {why}"), None)
        }
        Err(why) => (Verdict::Fail, why, None),
    };
    finish(probe, CHECK, verdict, detail, rtt).await
}
