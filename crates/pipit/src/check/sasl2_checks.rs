//! The SASL2 checks: `sasl2-bind2` (SASL2 with inline Bind2 once the features came),
//! `iap-pipelined` (the stream header and `<authenticate/>` in one flight, against the
//! config version learnt on an earlier connection) and `iap-stale-version-refused` (a
//! made-up version is refused without prejudice, and a retry on the same stream works).
//! Over Direct TLS when `--direct-tls` is given, else after STARTTLS in lockstep.

use pipit_proto::sasl::{
    HtMechanism, Mechanism, ht_initial_response, ht_verify_server, plain_initial_response,
};

use super::Target;
use super::checks::{finish, stopped};
use super::flows::{Login, Stop, expect, scram_client, silence, starttls_lockstep};
use super::probe::Probe;
use super::report::{Finding, Verdict};
use super::sasl2::{self, Answer, Failure, Offer, Success};
use super::xmpp::{Plan, features, header, header_then_features, random_hex};

/// Where the SASL2 checks connect, and the name of how TLS starts there.
pub fn transport(target: &Target) -> (&str, &'static str) {
    match &target.direct_tls {
        Some(addr) => (addr, "Direct TLS"),
        None => (&target.addr, "STARTTLS"),
    }
}

/// Connects for `check`, or returns its failing finding.
pub async fn connect(check: &'static str, target: &Target) -> Result<Probe, Finding> {
    Probe::connect(transport(target).0, target.timeout)
        .await
        .map_err(|why| Finding::new(check, Verdict::Fail, why))
}

/// Starts TLS: at once on Direct TLS, after STARTTLS in lockstep otherwise. The handshake
/// is left to the next wait, so what is written now leaves with the client's Finished.
pub async fn start_tls(probe: &mut Probe, target: &Target) -> Result<(), Stop> {
    if target.direct_tls.is_some() {
        probe.start_tls(&target.direct, &target.server_name, false)?;
    } else {
        starttls_lockstep(probe, target).await?;
    }
    Ok(())
}

/// What a SASL2 login can use of the features after TLS, or why the check is not offered
/// (`iap`: the config version is needed as well).
fn usable(offer: Option<Offer>, iap: bool) -> Result<(Offer, Mechanism), Stop> {
    let not_offered = |why: String| Err(Stop::NotOffered(why));
    let Some(offer) = offer else {
        return not_offered("the features after TLS offer no SASL2 (XEP-0388)".into());
    };
    if !offer.bind2 {
        return not_offered("SASL2 is offered without inline Bind2 (XEP-0386)".into());
    }
    if iap && offer.config_version.is_none() {
        return not_offered("the features after TLS carry no <config-version/> (XEP-0509)".into());
    }
    match offer.mechanism() {
        Some(mechanism) => Ok((offer, mechanism)),
        None => not_offered(format!(
            "no mechanism the probe speaks (PLAIN, SCRAM-SHA-256, SCRAM-SHA-1) is offered \
             through SASL2: {}",
            offer.mechanisms.join(" ")
        )),
    }
}

/// After TLS: a stream header (out with the end of the handshake), then the features;
/// what of their SASL2 offer a login can use.
pub async fn offer_after_tls(
    probe: &mut Probe,
    target: &Target,
    iap: bool,
) -> Result<(Offer, Mechanism), Stop> {
    let mark = probe.mark();
    probe
        .send("stream header", &header(&target.account.domain, true))
        .await;
    expect(probe, mark, "the stream features", header_then_features).await?;
    usable(features(probe.since(mark)).and_then(Offer::read), iap)
}

/// How one SASL2 exchange ended, challenges answered on the way.
pub struct Attempt {
    /// The last answer: `<success/>` or `<failure/>`.
    pub outcome: Result<Success, Failure>,
    /// The message to self: `Ok` when it came back, the condition when it bounced.
    pub message: Option<Result<(), String>>,
    /// What the server's silence was, if the message did not come.
    pub silence: String,
    /// The server restarted the stream after `<success/>`.
    pub restarted: bool,
}

impl Attempt {
    /// The full JID bound, if the login worked: `<success/>` naming a full JID with
    /// `<bound/>`, and the message to self came back.
    pub fn login(&self, target: &Target) -> Result<String, String> {
        let success = match &self.outcome {
            Ok(success) => success,
            Err(failure) => {
                return Err(format!("authentication failed: {}", failure.conditions));
            }
        };
        let bound = success.bound_jid(&target.account.local, &target.account.domain)?;
        if self.restarted {
            return Err(format!(
                "bound {bound}, but the server restarted the stream after <success/>, \
                 which SASL2 does not do (XEP-0388 §2.6.1)"
            ));
        }
        match &self.message {
            Some(Ok(())) => Ok(bound),
            Some(Err(cond)) => Err(format!(
                "bound {bound}, but the message to self bounced: {cond}"
            )),
            None => Err(format!(
                "bound {bound}, but the message to self did not come back: {}",
                self.silence
            )),
        }
    }
}

/// What proves the account in an `<authenticate/>`.
pub enum Credential<'a> {
    /// The password, with PLAIN or SCRAM; `plus`: a -PLUS mechanism is offered (the SCRAM
    /// GS2 flag says so, RFC 5802 §6).
    Password { mechanism: Mechanism, plus: bool },
    /// A FAST token (XEP-0484 §3.4) with the HT mechanism it was issued for and this
    /// connection's data for that mechanism's channel binding (empty for -NONE).
    Token {
        mechanism: HtMechanism,
        token: &'a str,
        cb_data: Vec<u8>,
    },
}

impl Credential<'_> {
    /// The password with the mechanism a SASL2 login uses for `offer`.
    pub fn password(offer: &Offer, mechanism: Mechanism) -> Credential<'static> {
        Credential::Password {
            mechanism,
            plus: offer.plus(),
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Credential::Password { mechanism, .. } => mechanism.name(),
            Credential::Token { mechanism, .. } => mechanism.name(),
        }
    }
}

/// One `<authenticate/>` and what goes with it.
pub struct Request<'a> {
    /// What proves the account.
    pub credential: Credential<'a>,
    /// The `<user-agent/>` id (XEP-0388 §2.3): FAST ties a token to it (XEP-0484 §3.2).
    pub user_agent: String,
    /// FAST's children (XEP-0484) and how the transcript names them, if any.
    pub fast: Option<(String, String)>,
    /// The config version it is written against (XEP-0509), to pipeline it.
    pub version: Option<&'a str>,
    /// A stream header to send in the same flight.
    pub lead: Option<&'a str>,
}

impl<'a> Request<'a> {
    /// `credential` alone: a fresh user agent, no FAST, no config version, no header.
    pub fn new(credential: Credential<'a>) -> Request<'a> {
        Request {
            credential,
            user_agent: sasl2::user_agent_id(),
            fast: None,
            version: None,
            lead: None,
        }
    }
}

/// One SASL2 exchange: the request's header (to pipeline with it) and `<authenticate/>`
/// with Bind2 in one flight; presence and the message to self in the flight that
/// completes the exchange (PLAIN and FAST's HT: that one; SCRAM: the `<response/>`).
/// The server's SCRAM signature or HT proof is verified.
pub async fn exchange(
    probe: &mut Probe,
    target: &Target,
    plan: &Plan,
    request: Request<'_>,
) -> Result<Attempt, String> {
    let account = &target.account;
    let mut scram = None;
    let initial = match &request.credential {
        Credential::Password {
            mechanism: Mechanism::Plain,
            ..
        } => plain_initial_response(None, &account.local, &account.password),
        Credential::Password { mechanism, plus } => {
            let client = scram_client(target, *mechanism, *plus)?;
            let first = client.client_first();
            scram = Some(client);
            first
        }
        Credential::Token {
            mechanism,
            token,
            cb_data,
        } => ht_initial_response(*mechanism, &account.local, token, cb_data),
    };
    let name = request.credential.name();
    let (fast, fast_what) = request.fast.clone().unwrap_or_default();
    let mut flight = request.lead.unwrap_or_default().to_owned();
    flight.push_str(&sasl2::authenticate(
        name,
        &initial,
        &request.user_agent,
        &fast,
        request.version,
    ));
    let mut what = format!(
        "{}authenticate {name}{fast_what} + Bind2",
        if request.lead.is_some() {
            "header + "
        } else {
            ""
        },
    );
    if let Some(version) = request.version {
        what.push_str(&format!(" + config version '{version}'"));
    }
    if scram.is_none() {
        flight.push_str(&plan.stanzas_to_bare());
        what.push_str(" + presence + message to self");
    }
    let mark = probe.mark();
    probe.flight(&what, b"", flight.as_bytes()).await;
    let (mut answer, mut progress, mut quiet) = settle(probe, mark, plan).await?;

    if let Answer::Challenge(server_first) = &answer {
        let Some(client) = &mut scram else {
            return Err(format!("a SASL2 <challenge/> to {name}"));
        };
        let client_final = client
            .handle_server_first(server_first)
            .map_err(|e| format!("bad SCRAM challenge from the server: {e}"))?;
        let mark = probe.mark();
        let flight = format!(
            "{}{}",
            sasl2::response(&client_final),
            plan.stanzas_to_bare()
        );
        probe
            .flight(
                "response + presence + message to self",
                b"",
                flight.as_bytes(),
            )
            .await;
        (answer, progress, quiet) = settle(probe, mark, plan).await?;
    }
    let outcome = match answer {
        Answer::Success(success) => {
            if let Some(client) = &scram {
                let data = success.additional_data.as_deref().ok_or(
                    "SCRAM <success/> without <additional-data/>: no server signature to verify",
                )?;
                client
                    .verify_server_final(data)
                    .map_err(|e| format!("the server's SCRAM signature is wrong: {e}"))?;
            }
            if let Credential::Token {
                mechanism,
                token,
                cb_data,
            } = &request.credential
            {
                let data = success.additional_data.as_deref().ok_or_else(|| {
                    format!(
                        "{name} <success/> without <additional-data/>: no server proof to \
                         verify (draft-schmaus-kitten-sasl-ht §3.3)"
                    )
                })?;
                if !ht_verify_server(*mechanism, token, cb_data, data) {
                    return Err(format!(
                        "the server's {name} proof (<additional-data/>) is wrong: it does not \
                         hold the token, or bound it to other channel-binding data"
                    ));
                }
            }
            Ok(success)
        }
        Answer::Failure(failure) => Err(failure),
        Answer::Challenge(_) => return Err("a second SASL2 <challenge/>".into()),
        Answer::Continue => return Err(continue_unsupported()),
    };
    let message = if progress.message_back {
        Some(Ok(()))
    } else {
        progress.message_error.map(Err)
    };
    Ok(Attempt {
        outcome,
        message,
        silence: quiet,
        restarted: progress.restarted,
    })
}

fn continue_unsupported() -> String {
    "<continue/>: the server asks for tasks (XEP-0388 §2.6.3), which the probe does not do".into()
}

/// Waits until the SASL2 answer since `mark` (and, after a success, the message to self)
/// settled. A stream error, no answer, a malformed answer or `<continue/>` is an error.
async fn settle(
    probe: &mut Probe,
    mark: usize,
    plan: &Plan,
) -> Result<(Answer, sasl2::Progress, String), String> {
    let waited = probe
        .wait(|p| sasl2::progress(p.since(mark), plan).settled())
        .await;
    let quiet = silence(probe, waited);
    let progress = sasl2::progress(probe.since(mark), plan);
    if let Some(err) = &progress.stream_error {
        return Err(format!("stream error {err}"));
    }
    match &progress.answer {
        None => Err(format!("no answer to the <authenticate/>: {quiet}")),
        Some(Err(why)) => Err(why.clone()),
        Some(Ok(Answer::Continue)) => Err(continue_unsupported()),
        Some(Ok(answer)) => Ok((answer.clone(), progress, quiet)),
    }
}

/// `sasl2-bind2`: after TLS a stream header; on the features, SASL2 `<authenticate/>` with
/// inline Bind2, presence and a message to self in one flight (PLAIN; SCRAM-SHA-256 when
/// PLAIN is not offered takes one more). The server must answer `<success/>` naming a full
/// JID with `<bound/>`, with no stream restart, and deliver the message.
pub async fn sasl2_bind2(target: &Target) -> Finding {
    const CHECK: &str = "sasl2-bind2";
    let mut probe = match connect(CHECK, target).await {
        Ok(probe) => probe,
        Err(finding) => return finding,
    };
    let offered = match start_tls(&mut probe, target).await {
        Ok(()) => offer_after_tls(&mut probe, target, false).await,
        Err(stop) => Err(stop),
    };
    let (offer, mechanism) = match offered {
        Ok(offered) => offered,
        Err(stop) => {
            let (verdict, detail) = stopped(stop, "before SASL2: ");
            return finish(probe, CHECK, verdict, detail, None).await;
        }
    };
    let plan = Plan::new(&target.account);
    let credential = Credential::password(&offer, mechanism);
    let result = exchange(&mut probe, target, &plan, Request::new(credential))
        .await
        .and_then(|attempt| attempt.login(target));
    let (verdict, detail, rtt) = match result {
        Ok(bound) => {
            let login = Login {
                bound,
                how: format!(
                    "{}, SASL2 {} + Bind2 after the features",
                    transport(target).1,
                    mechanism.name()
                ),
            };
            (
                Verdict::Pass,
                login.detail(&probe),
                Some(probe.round_trips()),
            )
        }
        Err(why) => (Verdict::Fail, why, None),
    };
    finish(probe, CHECK, verdict, detail, rtt).await
}

/// Connection 1 of the IAP checks: TLS, a stream header and the features, for the SASL2
/// offer and its config version; closed after. Returns them with the evidence so far, or
/// the finding (not offered without a config version).
async fn learn(
    check: &'static str,
    target: &Target,
) -> Result<(Offer, Mechanism, String), Finding> {
    let mut probe = connect(check, target).await?;
    let result = match start_tls(&mut probe, target).await {
        Ok(()) => offer_after_tls(&mut probe, target, true).await,
        Err(stop) => Err(stop),
    };
    let evidence = format!(
        "== connection 1: the features, for the config version ==\n{}",
        probe.close().await.text()
    );
    match result {
        Ok((offer, mechanism)) => Ok((offer, mechanism, evidence)),
        Err(stop) => {
            let (verdict, detail) = stopped(stop, "connection 1 (learning the config version): ");
            Err(Finding::new(check, verdict, detail).evidence(evidence))
        }
    }
}

/// Closes connection 2 and makes the finding, with both connections as evidence.
async fn finish_second(
    probe: Probe,
    check: &'static str,
    (verdict, detail, round_trips): (Verdict, String, Option<u32>),
    earlier: String,
) -> Finding {
    let transcript = probe.close().await;
    Finding::new(check, verdict, detail)
        .round_trips(round_trips)
        .evidence(format!(
            "{earlier}== connection 2 ==\n{}",
            transcript.text()
        ))
}

/// `iap-pipelined`: the config version learnt from connection 1's features; on connection
/// 2, once TLS is started, the stream header and `<authenticate/>` (with that version,
/// Bind2, presence and a message to self) in one flight, out with the end of the
/// handshake. The server must bind and deliver the message without a features round trip.
pub async fn iap_pipelined(target: &Target) -> Finding {
    const CHECK: &str = "iap-pipelined";
    let (offer, mechanism, earlier) = match learn(CHECK, target).await {
        Ok(learnt) => learnt,
        Err(finding) => return finding,
    };
    let version = offer.config_version.clone().unwrap_or_default();
    let mut probe = match connect(CHECK, target).await {
        Ok(probe) => probe,
        Err(finding) => return finding.evidence(earlier),
    };
    if let Err(stop) = start_tls(&mut probe, target).await {
        let (verdict, detail) = stopped(stop, "connection 2: ");
        return finish_second(probe, CHECK, (verdict, detail, None), earlier).await;
    }
    let plan = Plan::new(&target.account);
    let head = header(&target.account.domain, true);
    let mark = probe.mark();
    let request = Request {
        version: Some(&version),
        lead: Some(&head),
        ..Request::new(Credential::password(&offer, mechanism))
    };
    let result = exchange(&mut probe, target, &plan, request).await;
    let result = match result {
        Ok(Attempt {
            outcome: Err(failure),
            ..
        }) if failure.mismatch || failure.aborted => {
            let now = features(probe.since(mark))
                .and_then(Offer::read)
                .and_then(|o| o.config_version)
                .map(|v| format!(" (this connection's features announce '{v}')"))
                .unwrap_or_default();
            Err(format!(
                "the server refused the config version '{version}' it announced on the \
                 connection before{now}: <failure/> {}",
                failure.conditions
            ))
        }
        other => other.and_then(|attempt| attempt.login(target)),
    };
    let outcome = match result {
        Ok(bound) => {
            let login = Login {
                bound,
                how: format!(
                    "{}, header + SASL2 {} + Bind2 + config version in one flight",
                    transport(target).1,
                    mechanism.name()
                ),
            };
            (
                Verdict::Pass,
                login.detail(&probe),
                Some(probe.round_trips()),
            )
        }
        Err(why) => (Verdict::Fail, why, None),
    };
    finish_second(probe, CHECK, outcome, earlier).await
}

/// `iap-stale-version-refused`: like `iap-pipelined`, but with a made-up config version.
/// The server must refuse it with `<aborted/>` (and should add `<config-version-mismatch/>`),
/// act on none of the stanzas pipelined behind it, and take a retry on the same stream with
/// the version its features now announce.
pub async fn iap_stale_version_refused(target: &Target) -> Finding {
    const CHECK: &str = "iap-stale-version-refused";
    let (offer, mechanism, earlier) = match learn(CHECK, target).await {
        Ok(learnt) => learnt,
        Err(finding) => return finding,
    };
    let mut probe = match connect(CHECK, target).await {
        Ok(probe) => probe,
        Err(finding) => return finding.evidence(earlier),
    };
    if let Err(stop) = start_tls(&mut probe, target).await {
        let (verdict, detail) = stopped(stop, "connection 2: ");
        return finish_second(probe, CHECK, (verdict, detail, None), earlier).await;
    }
    let outcome = match stale_then_retry(&mut probe, target, &offer, mechanism).await {
        Ok(detail) => (Verdict::Pass, detail, Some(probe.round_trips())),
        Err(detail) => (Verdict::Fail, detail, None),
    };
    finish_second(probe, CHECK, outcome, earlier).await
}

/// The body of `iap-stale-version-refused`, on connection 2 once TLS is started.
async fn stale_then_retry(
    probe: &mut Probe,
    target: &Target,
    offer: &Offer,
    mechanism: Mechanism,
) -> Result<String, String> {
    let account = &target.account;
    let stale = format!("pipit-check-stale-{}", random_hex());
    let first = Plan::new(account);
    let head = header(&account.domain, true);
    let mark = probe.mark();
    let request = Request {
        version: Some(&stale),
        lead: Some(&head),
        ..Request::new(Credential::password(offer, mechanism))
    };
    let attempt = exchange(probe, target, &first, request)
        .await
        .map_err(|why| format!("the made-up config version '{stale}' got {why}"))?;
    let failure = match attempt.outcome {
        Ok(success) => {
            let who = success
                .identity
                .map(|id| format!(" as {id}"))
                .unwrap_or_default();
            return Err(format!(
                "the server accepted the made-up config version '{stale}' and authenticated{who}"
            ));
        }
        Err(failure) if failure.aborted || failure.mismatch => failure,
        Err(failure) => {
            return Err(format!(
                "the made-up config version '{stale}' got <failure/> {}, not <aborted/> + \
                 <config-version-mismatch/>: a client cannot tell a stale version from bad \
                 credentials",
                failure.conditions
            ));
        }
    };
    let mut refused = format!("<failure/> {}", failure.conditions);
    if !failure.mismatch {
        refused.push_str(" (without <config-version-mismatch/>, a client cannot tell why)");
    }
    let current = features(probe.since(mark))
        .and_then(Offer::read)
        .and_then(|o| o.config_version)
        .ok_or_else(|| {
            format!(
                "{refused}, but this stream's features announce no config version to retry with"
            )
        })?;

    let second = Plan::new(account);
    let request = Request {
        version: Some(&current),
        ..Request::new(Credential::password(offer, mechanism))
    };
    let retry = exchange(probe, target, &second, request)
        .await
        .and_then(|attempt| attempt.login(target));
    // Every answer to the first flight came before the retry's, as the server reads in order.
    let pipelined = match sasl2::progress(probe.since(mark), &first) {
        p if p.message_back => {
            return Err(format!(
                "SECURITY: {refused}, yet the server delivered the message pipelined behind \
                 the refused <authenticate/>"
            ));
        }
        p => match p.message_error {
            Some(cond) => format!("the message pipelined behind it was answered {cond}"),
            None => "the message pipelined behind it got no answer".into(),
        },
    };
    match retry {
        Ok(bound) => {
            let login = Login {
                bound,
                how: format!(
                    "{}, SASL2 {} + Bind2",
                    transport(target).1,
                    mechanism.name()
                ),
            };
            Ok(format!(
                "{refused}; {pipelined}; the retry on the same stream with the current \
                 version: {}",
                login.detail(probe)
            ))
        }
        Err(why) => Err(format!(
            "{refused}; {pipelined}; but the retry on the same stream with the current \
             version failed: {why}"
        )),
    }
}
