//! The FAST checks (XEP-0484): `fast-token` (a password login asks for a token; a new
//! connection logs in with the token alone, Bind2, presence and a message to self in the
//! same flight, pipelined with the stream header when a config version is known),
//! `fast-replay-refused` (a count used before is refused, a greater one then works on the
//! same stream) and `fast-invalidate` (after a login with `invalidate='true'` the token no
//! longer works).
//!
//! Each check asks for its own token under its own user-agent id (a token belongs to one
//! installation, XEP-0484 §3.2), so none depends on another, and sends that id with every
//! login that uses the token. The token is for HT-SHA-256-EXPR (bound to the TLS 1.3
//! exporter, RFC 9266) when connection 1 is TLS 1.3 and the server offers it, else for
//! HT-SHA-256-NONE. A token is a credential: no detail names it and the transcript hides it.
//! Over Direct TLS when `--direct-tls` is given, else after STARTTLS in lockstep.

use pipit_proto::sasl::{ChannelBindingType, HtMechanism};
use rustls::ProtocolVersion;

use super::Target;
use super::checks::stopped;
use super::flows::{Login, expect, handshake};
use super::probe::{Probe, version_name};
use super::report::{Finding, Verdict};
use super::sasl2::{self, Failure, Offer};
use super::sasl2_checks::{
    Attempt, Credential, Request, connect, exchange, offer_after_tls, start_tls, transport,
};
use super::xmpp::{Plan, header, header_then_features};

/// The label of the `tls-exporter` channel binding (RFC 9266 §2).
const EXPORTER_LABEL: &[u8] = b"EXPORTER-Channel-Binding";

/// A token the server issued to the probe, and what a login with it needs.
pub(super) struct Grant {
    /// The token string: a secret.
    pub(super) token: String,
    /// The HT mechanism it was asked for; it works with no other (XEP-0484 §3.4).
    pub(super) mechanism: HtMechanism,
    /// The `<user-agent/>` id it was issued to.
    pub(super) user_agent: String,
    /// The config version of connection 1's features (XEP-0509), to pipeline with.
    pub(super) version: Option<String>,
    /// The password mechanism that got it, for the details.
    pub(super) via: &'static str,
    /// Connection 1's `<fast/>` said `tls-0rtt='true'`.
    pub(super) zero_rtt: bool,
}

/// The evidence of a check's connections, in order.
#[derive(Default)]
pub(super) struct Evidence {
    /// The transcripts so far, each headed with its connection's number and purpose.
    text: String,
    /// How many connections were added.
    connections: usize,
}

impl Evidence {
    /// Closes `probe` and adds its transcript, headed with `what` the connection did.
    pub(super) async fn add(&mut self, probe: Probe, what: &str) {
        self.connections += 1;
        let transcript = probe.close().await;
        self.text.push_str(&format!(
            "== connection {}: {what} ==\n{}",
            self.connections,
            transcript.text()
        ));
    }

    /// Adds a connection that failed to open or to start TLS, with `why`.
    pub(super) async fn add_failed(&mut self, probe: Option<Probe>, what: &str, why: &str) {
        match probe {
            Some(probe) => self.add(probe, what).await,
            None => {
                self.connections += 1;
                self.text.push_str(&format!(
                    "== connection {}: {what} ==\n-- {why}\n",
                    self.connections
                ));
            }
        }
    }

    /// The finding, with every connection so far as evidence.
    pub(super) fn finding(
        self,
        check: &'static str,
        (verdict, detail, round_trips): (Verdict, String, Option<u32>),
    ) -> Finding {
        Finding::new(check, verdict, detail)
            .round_trips(round_trips)
            .evidence(self.text)
    }
}

/// A grade with no login to count.
pub(super) fn graded(verdict: Verdict, detail: String) -> (Verdict, String, Option<u32>) {
    (verdict, detail, None)
}

/// Connection 1: TLS, the features, and a SASL2 password login (Bind2, presence, a message
/// to self) that asks for a token. Not offered without SASL2, Bind2 or `<fast/>`. With
/// `early`, the token is for a mechanism usable in TLS 1.3 early data (-ENDP, else -NONE).
pub(super) async fn obtain(
    check: &'static str,
    target: &Target,
    evidence: &mut Evidence,
    early: bool,
) -> Result<Grant, (Verdict, String)> {
    let mut probe = connect(check, target)
        .await
        .map_err(|finding| (finding.verdict, finding.detail))?;
    let result = obtain_on(&mut probe, target, early).await;
    evidence
        .add(probe, "a password login asking for a token")
        .await;
    result
}

/// The body of [`obtain`], on its connection.
async fn obtain_on(
    probe: &mut Probe,
    target: &Target,
    early: bool,
) -> Result<Grant, (Verdict, String)> {
    const CONTEXT: &str = "connection 1 (a password login asking for a token): ";
    let fail = |why: String| (Verdict::Fail, format!("{CONTEXT}{why}"));
    start_tls(probe, target)
        .await
        .map_err(|stop| stopped(stop, CONTEXT))?;
    let (offer, password) = offer_after_tls(probe, target, false)
        .await
        .map_err(|stop| stopped(stop, CONTEXT))?;
    let mechanism = choose(&offer, probe, early).map_err(|why| (Verdict::NotOffered, why))?;
    let plan = Plan::new(&target.account);
    let request = Request {
        fast: Some((
            sasl2::request_token(mechanism.name()),
            format!(" + request-token {}", mechanism.name()),
        )),
        ..Request::new(Credential::password(&offer, password))
    };
    let user_agent = request.user_agent.clone();
    let attempt = exchange(probe, target, &plan, request)
        .await
        .map_err(fail)?;
    attempt.login(target).map_err(fail)?;
    let token = attempt.outcome.ok().and_then(|success| success.token);
    let Some(token) = token else {
        return Err(fail(format!(
            "the login asked for a {} token (<request-token/>), but its <success/> carries \
             no <token/> (XEP-0484 §3.3)",
            mechanism.name()
        )));
    };
    Ok(Grant {
        token: token.secret,
        mechanism,
        user_agent,
        version: offer.config_version,
        via: password.name(),
        zero_rtt: offer.zero_rtt,
    })
}

/// The HT mechanism to ask a token for: -EXPR on TLS 1.3 when offered (-ENDP for `early`
/// data, which has no exporter yet), else -NONE; or why FAST is not offered.
fn choose(offer: &Offer, probe: &Probe, early: bool) -> Result<HtMechanism, String> {
    let Some(offered) = &offer.fast else {
        return Err(
            "SASL2 is offered without FAST: no <fast xmlns='urn:xmpp:fast:0'/> \
             inside <inline/> (XEP-0484 §3.1)"
                .into(),
        );
    };
    let has = |m: HtMechanism| offered.iter().any(|o| o == m.name());
    let tls13 = probe.tls().and_then(|c| c.protocol_version()) == Some(ProtocolVersion::TLSv1_3);
    if early && has(HtMechanism::Sha256Endp) {
        Ok(HtMechanism::Sha256Endp)
    } else if !early && tls13 && has(HtMechanism::Sha256Expr) {
        Ok(HtMechanism::Sha256Expr)
    } else if has(HtMechanism::Sha256None) {
        Ok(HtMechanism::Sha256None)
    } else {
        Err(format!(
            "FAST offers {}, none the probe speaks (HT-SHA-256-EXPR over TLS 1.3, \
             HT-SHA-256-NONE)",
            if offered.is_empty() {
                "no mechanism".to_owned()
            } else {
                offered.join(" ")
            }
        ))
    }
}

/// This connection's data for `mechanism`'s channel binding: the `tls-exporter` value
/// (RFC 9266 §2, TLS 1.3 only) for -EXPR, nothing for -NONE. The handshake must be over.
fn channel_binding(probe: &Probe, mechanism: HtMechanism) -> Result<Vec<u8>, String> {
    match mechanism.channel_binding_type() {
        None => Ok(Vec::new()),
        Some(ChannelBindingType::TlsExporter) => {
            let conn = probe.tls().ok_or("no TLS to bind the token to")?;
            let version = conn.protocol_version();
            if version != Some(ProtocolVersion::TLSv1_3) {
                return Err(format!(
                    "{} needs TLS 1.3 (RFC 9266), but this connection is {}",
                    mechanism.name(),
                    version_name(version)
                ));
            }
            conn.export_keying_material([0u8; 32], EXPORTER_LABEL, None)
                .map(|k| k.to_vec())
                .map_err(|e| format!("no tls-exporter value: {e}"))
        }
        Some(other) => Err(format!("the probe has no {} channel binding", other.name())),
    }
}

/// A new connection with TLS started (the handshake left to the next wait); or why not,
/// with the connection if it opened.
async fn open(check: &'static str, target: &Target) -> Result<Probe, (Option<Probe>, String)> {
    let mut probe = match connect(check, target).await {
        Ok(probe) => probe,
        Err(finding) => return Err((None, finding.detail)),
    };
    match start_tls(&mut probe, target).await {
        Ok(()) => Ok(probe),
        Err(stop) => {
            let (_, why) = stopped(stop, "");
            Err((Some(probe), why))
        }
    }
}

/// One login with the token on `probe`, TLS started: `<authenticate/>` with the HT
/// response and `<fast count='…'/>` (with `invalidate`), Bind2, presence and a message to
/// self in one flight. On a `fresh` connection it goes with the stream header when a
/// config version is known, else after the features; otherwise on the open stream (a
/// retry). For -EXPR it waits for the handshake, whose end then leaves with the flight.
async fn with_token(
    probe: &mut Probe,
    target: &Target,
    grant: &Grant,
    plan: &Plan,
    (count, invalidate): (u64, bool),
    fresh: bool,
) -> Result<Attempt, String> {
    if grant.mechanism.channel_binding_type().is_some() && probe.handshaking() {
        handshake(probe).await?;
    }
    let cb_data = channel_binding(probe, grant.mechanism)?;
    let head = header(&target.account.domain, true);
    let pipelined = fresh && grant.version.is_some();
    if fresh && !pipelined {
        let mark = probe.mark();
        probe.send("stream header", &head).await;
        expect(probe, mark, "the stream features", header_then_features).await?;
    }
    let request = Request {
        credential: Credential::Token {
            mechanism: grant.mechanism,
            token: &grant.token,
            cb_data,
        },
        user_agent: grant.user_agent.clone(),
        fast: Some((
            sasl2::fast(count, invalidate),
            format!(
                " (FAST count {count}{})",
                if invalidate { ", invalidate" } else { "" }
            ),
        )),
        version: grant.version.as_deref().filter(|_| pipelined),
        lead: pipelined.then_some(head.as_str()),
    };
    exchange(probe, target, plan, request).await
}

/// How a token login went, for [`Login::how`].
fn how(target: &Target, grant: &Grant, fresh: bool) -> String {
    let transport = transport(target).1;
    let mechanism = grant.mechanism.name();
    match (fresh, grant.version.is_some()) {
        (true, true) => format!(
            "{transport}, header + SASL2 {mechanism} token + Bind2 + config version in one flight"
        ),
        (true, false) => {
            format!("{transport}, SASL2 {mechanism} token + Bind2 after the features")
        }
        (false, _) => format!("{transport}, SASL2 {mechanism} token + Bind2"),
    }
}

/// A completed token login's detail: [`Login::detail`] and the verified server proof.
fn token_login(
    probe: &Probe,
    target: &Target,
    grant: &Grant,
    bound: String,
    fresh: bool,
) -> String {
    let login = Login {
        bound,
        how: how(target, grant, fresh),
    };
    format!("{}; the server's proof verified", login.detail(probe))
}

/// `fast-token`: connection 1 logs in with the password and asks for a token; connection
/// 2 logs in with the token alone (count 1), with Bind2, presence and a message to self in
/// the same flight (and the stream header, when a config version is known). The server
/// must bind, prove it holds the token, and deliver the message.
pub async fn fast_token(target: &Target) -> Finding {
    const CHECK: &str = "fast-token";
    let mut evidence = Evidence::default();
    let grant = match obtain(CHECK, target, &mut evidence, false).await {
        Ok(grant) => grant,
        Err((verdict, detail)) => return evidence.finding(CHECK, graded(verdict, detail)),
    };
    let mut probe = match open(CHECK, target).await {
        Ok(probe) => probe,
        Err((probe, why)) => {
            evidence.add_failed(probe, "the token alone", &why).await;
            let detail = format!("connection 2: {why}");
            return evidence.finding(CHECK, graded(Verdict::Fail, detail));
        }
    };
    let plan = Plan::new(&target.account);
    let result = with_token(&mut probe, target, &grant, &plan, (1, false), true)
        .await
        .and_then(|attempt| attempt.login(target));
    let outcome = match result {
        Ok(bound) => (
            Verdict::Pass,
            format!(
                "{} (the token, for {}, came from a SASL2 {} login)",
                token_login(&probe, target, &grant, bound, true),
                grant.mechanism.name(),
                grant.via
            ),
            Some(probe.round_trips()),
        ),
        Err(why) => graded(
            Verdict::Fail,
            format!(
                "the login with the {} token (count 1): {why}",
                grant.mechanism.name()
            ),
        ),
    };
    evidence.add(probe, "the token alone").await;
    evidence.finding(CHECK, outcome)
}

/// `fast-replay-refused`: a token (connection 1) is used with count 1 (connection 2); on
/// connection 3 the same token with the same count must get `<failure/>` with
/// `<not-authorized/>` (XEP-0484 §3.4: a count must be greater than any used before, so a
/// replayed flight, such as TLS 0-RTT early data, logs nobody in), the stanzas pipelined
/// behind it must not be acted on, and then count 2 on the same stream must work.
pub async fn fast_replay_refused(target: &Target) -> Finding {
    const CHECK: &str = "fast-replay-refused";
    let mut evidence = Evidence::default();
    let grant = match obtain(CHECK, target, &mut evidence, false).await {
        Ok(grant) => grant,
        Err((verdict, detail)) => return evidence.finding(CHECK, graded(verdict, detail)),
    };
    if let Err(why) = first_use(CHECK, target, &grant, &mut evidence).await {
        let detail = format!("connection 2 (the token's first use, count 1): {why}");
        return evidence.finding(CHECK, graded(Verdict::Fail, detail));
    }
    let mut probe = match open(CHECK, target).await {
        Ok(probe) => probe,
        Err((probe, why)) => {
            evidence
                .add_failed(probe, "count 1 again, then count 2", &why)
                .await;
            let detail = format!("connection 3: {why}");
            return evidence.finding(CHECK, graded(Verdict::Fail, detail));
        }
    };
    let outcome = match replay_then_higher(&mut probe, target, &grant).await {
        Ok(detail) => (Verdict::Pass, detail, Some(probe.round_trips())),
        Err(detail) => graded(Verdict::Fail, detail),
    };
    evidence.add(probe, "count 1 again, then count 2").await;
    evidence.finding(CHECK, outcome)
}

/// A new connection that logs in with the token and count 1; its transcript goes into
/// `evidence`.
async fn first_use(
    check: &'static str,
    target: &Target,
    grant: &Grant,
    evidence: &mut Evidence,
) -> Result<(), String> {
    const WHAT: &str = "the token with count 1";
    let mut probe = match open(check, target).await {
        Ok(probe) => probe,
        Err((probe, why)) => {
            evidence.add_failed(probe, WHAT, &why).await;
            return Err(why);
        }
    };
    let plan = Plan::new(&target.account);
    let result = with_token(&mut probe, target, grant, &plan, (1, false), true)
        .await
        .and_then(|attempt| attempt.login(target));
    evidence.add(probe, WHAT).await;
    result.map(drop)
}

/// The body of `fast-replay-refused`, on connection 3 once TLS is started.
async fn replay_then_higher(
    probe: &mut Probe,
    target: &Target,
    grant: &Grant,
) -> Result<String, String> {
    let first = Plan::new(&target.account);
    let mark = probe.mark();
    let attempt = with_token(probe, target, grant, &first, (1, false), true)
        .await
        .map_err(|why| format!("the token with count 1 again got {why}"))?;
    let failure = match attempt.outcome {
        Ok(success) => {
            let who = success
                .identity
                .map(|id| format!(" as {id}"))
                .unwrap_or_default();
            return Err(format!(
                "SECURITY: the server accepted the token again with count 1, which it had \
                 already seen, and authenticated{who}: a replayed FAST login (TLS 0-RTT early \
                 data can be replayed) is not refused (XEP-0484 §3.4)"
            ));
        }
        Err(failure) => failure,
    };
    let refused = refusal(&failure, "the token with count 1 again")?;
    if !failure.not_authorized {
        return Err(format!(
            "{refused}, not <not-authorized/>: the repeated count is refused, but a client \
             cannot tell a replay from a stale token"
        ));
    }
    let pipelined = behind_refusal(probe, mark, &first, &refused)?;
    let second = Plan::new(&target.account);
    let retry = with_token(probe, target, grant, &second, (2, false), false)
        .await
        .and_then(|attempt| attempt.login(target));
    match retry {
        Ok(bound) => Ok(format!(
            "count 1 again: {refused}; {pipelined}; count 2 on the same stream: {}",
            token_login(probe, target, grant, bound, false)
        )),
        Err(why) => Err(format!(
            "count 1 again: {refused}; {pipelined}; but count 2 on the same stream failed: \
             {why}"
        )),
    }
}

/// `<failure/>` and its conditions, or why it says nothing about the token: a refused
/// config version (XEP-0509) is not a refused token.
fn refusal(failure: &Failure, what: &str) -> Result<String, String> {
    let refused = format!("<failure/> {}", failure.conditions);
    if failure.aborted || failure.mismatch {
        return Err(format!(
            "{what} got {refused}: the server refused the config version it announced on \
             connection 1, so the token was not tried"
        ));
    }
    Ok(refused)
}

/// What became of the message pipelined behind a refused `<authenticate/>` (every answer to
/// that flight came before the retry's, as the server reads in order): answered or
/// ignored, or a security finding if it was delivered.
fn behind_refusal(
    probe: &Probe,
    mark: usize,
    plan: &Plan,
    refused: &str,
) -> Result<String, String> {
    let p = sasl2::progress(probe.since(mark), plan);
    if p.message_back {
        return Err(format!(
            "SECURITY: {refused}, yet the server delivered the message pipelined behind the \
             refused <authenticate/>"
        ));
    }
    Ok(match p.message_error {
        Some(cond) => format!("the message pipelined behind it was answered {cond}"),
        None => "the message pipelined behind it got no answer".into(),
    })
}

/// `fast-invalidate`: a token (connection 1) logs in with `<fast count='1'
/// invalidate='true'/>` (connection 2), which must work; then the token with count 2
/// (connection 3) must be refused (XEP-0484 §3.6).
pub async fn fast_invalidate(target: &Target) -> Finding {
    const CHECK: &str = "fast-invalidate";
    let mut evidence = Evidence::default();
    let grant = match obtain(CHECK, target, &mut evidence, false).await {
        Ok(grant) => grant,
        Err((verdict, detail)) => return evidence.finding(CHECK, graded(verdict, detail)),
    };
    let invalidated = match invalidate(CHECK, target, &grant, &mut evidence).await {
        Ok(invalidated) => invalidated,
        Err(why) => {
            let detail =
                format!("connection 2 (the token with count 1 and invalidate='true'): {why}");
            return evidence.finding(CHECK, graded(Verdict::Fail, detail));
        }
    };
    const AFTER: &str = "the invalidated token, count 2";
    let result = match open(CHECK, target).await {
        Ok(mut probe) => {
            let result = after_invalidation(&mut probe, target, &grant).await;
            evidence.add(probe, AFTER).await;
            result
        }
        Err((probe, why)) => {
            evidence.add_failed(probe, AFTER, &why).await;
            Err(format!("connection 3: {why}"))
        }
    };
    let outcome = match result {
        Ok(refused) => (
            Verdict::Pass,
            format!(
                "invalidating login: {}; then count 2 on a new connection: {refused}",
                invalidated.0
            ),
            Some(invalidated.1),
        ),
        Err(why) => graded(Verdict::Fail, why),
    };
    evidence.finding(CHECK, outcome)
}

/// Connection 2 of `fast-invalidate`: the token with count 1 and `invalidate='true'` must
/// log in. Returns the login's detail and round trips.
async fn invalidate(
    check: &'static str,
    target: &Target,
    grant: &Grant,
    evidence: &mut Evidence,
) -> Result<(String, u32), String> {
    const WHAT: &str = "the token with count 1 and invalidate='true'";
    let mut probe = match open(check, target).await {
        Ok(probe) => probe,
        Err((probe, why)) => {
            evidence.add_failed(probe, WHAT, &why).await;
            return Err(why);
        }
    };
    let plan = Plan::new(&target.account);
    let result = with_token(&mut probe, target, grant, &plan, (1, true), true)
        .await
        .and_then(|attempt| attempt.login(target))
        .map(|bound| {
            (
                token_login(&probe, target, grant, bound, true),
                probe.round_trips(),
            )
        });
    evidence.add(probe, WHAT).await;
    result
}

/// Connection 3 of `fast-invalidate`: the token with count 2 must be refused.
async fn after_invalidation(
    probe: &mut Probe,
    target: &Target,
    grant: &Grant,
) -> Result<String, String> {
    let plan = Plan::new(&target.account);
    let mark = probe.mark();
    let attempt = with_token(probe, target, grant, &plan, (2, false), true)
        .await
        .map_err(|why| format!("the invalidated token with count 2 got {why}"))?;
    let failure = match attempt.outcome {
        Ok(success) => {
            let who = success
                .identity
                .map(|id| format!(" as {id}"))
                .unwrap_or_default();
            return Err(format!(
                "the token still works after the login that invalidated it (<fast \
                 invalidate='true'/>, XEP-0484 §3.6): count 2 authenticated{who}"
            ));
        }
        Err(failure) => failure,
    };
    let refused = refusal(&failure, "the invalidated token with count 2")?;
    let pipelined = behind_refusal(probe, mark, &plan, &refused)?;
    Ok(format!("{refused}; {pipelined}"))
}
