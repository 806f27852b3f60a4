//! Login steps the checks share: STARTTLS in lockstep, the TLS handshake, a lockstep login
//! (PLAIN or SCRAM) and the pipelined PLAIN login, each failing with a sentence that says
//! what the server did instead.

use pipit_proto::sasl::{Mechanism, ScramClient};
use pipit_proto::xml::ns;

use super::Target;
use super::probe::{Probe, Received, Waited, version_name};
use super::xmpp::{Plan, condition};
use super::xmpp::{
    STARTTLS, auth, elements, features, header, header_then_features, mechanisms, plain_auth,
    progress, random_hex, response, sasl_data, stream_error,
};

/// Why a step did not work.
#[derive(Debug)]
pub enum Stop {
    /// The server does not offer what the step needs.
    NotOffered(String),
    /// The server did something else (the sentence says what).
    Failed(String),
}

impl From<String> for Stop {
    fn from(why: String) -> Stop {
        Stop::Failed(why)
    }
}

/// A completed login.
#[derive(Debug)]
pub struct Login {
    /// The JID the server bound.
    pub bound: String,
    /// How it went: "PLAIN, pipelined" or "SCRAM-SHA-256, lockstep".
    pub how: String,
}

impl Login {
    /// "bound JID, message to self came back; N round trips (TLS 1.3, PLAIN, pipelined)".
    pub fn detail(&self, probe: &Probe) -> String {
        let tls = version_name(probe.tls().and_then(|c| c.protocol_version()));
        format!(
            "bound {}, message to self came back; {} round trips ({tls}, {})",
            self.bound,
            probe.round_trips(),
            self.how
        )
    }
}

/// What the server's silence was, after a wait that did not reach its goal.
pub fn silence(probe: &Probe, waited: Waited) -> String {
    match (waited, probe.end()) {
        (Waited::TimedOut, _) | (_, None) => {
            format!("no answer within {} s", probe.timeout().as_secs())
        }
        (_, Some(end)) => end.to_string(),
    }
}

/// Waits until `done` holds for what arrived since `mark`; a stream error, a close or a
/// timeout first is an error naming `what` was awaited.
pub async fn expect(
    probe: &mut Probe,
    mark: usize,
    what: &str,
    done: impl Fn(&[Received]) -> bool,
) -> Result<(), String> {
    let waited = probe
        .wait(|p| {
            let r = p.since(mark);
            done(r) || stream_error(r).is_some()
        })
        .await;
    if let Some(err) = stream_error(probe.since(mark)) {
        return Err(format!("stream error {err} while waiting for {what}"));
    }
    match waited {
        Waited::Done => Ok(()),
        _ => Err(format!(
            "{} while waiting for {what}",
            silence(probe, waited)
        )),
    }
}

/// Whether an element named `name` in `ns` arrived.
pub fn has(received: &[Received], name: &str, ns: &str) -> bool {
    elements(received).any(|e| e.is(name, ns))
}

/// Header, features, `<starttls/>`, `<proceed/>`, each waited for; then TLS is started
/// (the handshake is left to the next wait).
pub async fn starttls_lockstep(probe: &mut Probe, target: &Target) -> Result<(), Stop> {
    let mark = probe.mark();
    probe
        .send("stream header", &header(&target.account.domain, true))
        .await;
    expect(probe, mark, "the stream features", |r| {
        features(r).is_some()
    })
    .await?;
    let offered =
        features(probe.since(mark)).is_some_and(|f| f.get_child("starttls", ns::TLS).is_some());
    if !offered {
        return Err(Stop::NotOffered(
            "the server does not offer STARTTLS".into(),
        ));
    }
    let mark = probe.mark();
    probe.send("<starttls/>", STARTTLS).await;
    expect(probe, mark, "<proceed/>", |r| {
        has(r, "proceed", ns::TLS) || has(r, "failure", ns::TLS)
    })
    .await?;
    if !has(probe.since(mark), "proceed", ns::TLS) {
        return Err(Stop::Failed(
            "the server answered <starttls/> with <failure/>".into(),
        ));
    }
    probe.start_tls(&target.tls, &target.server_name, false)?;
    Ok(())
}

/// Waits for the TLS handshake to complete.
pub async fn handshake(probe: &mut Probe) -> Result<(), String> {
    let waited = probe.wait(|p| !p.handshaking()).await;
    match waited {
        Waited::Done => Ok(()),
        _ => Err(format!(
            "TLS handshake did not complete: {}",
            silence(probe, waited)
        )),
    }
}

/// The whole login after TLS: pipelined in one flight when the server is known to take it
/// (PLAIN offered and `auth-restart-bind-pipelined` passed), else in lockstep. Works whether
/// or not the handshake has completed: a pipelined flight is buffered behind it.
pub async fn login_after_tls(
    probe: &mut Probe,
    target: &Target,
    plan: &Plan,
) -> Result<Login, String> {
    if target.learned.auth_pipelining && target.plain_offered() {
        login_pipelined(probe, target, plan, true).await
    } else {
        handshake(probe).await?;
        login_lockstep(probe, target, plan).await
    }
}

/// Header + PLAIN auth + restart header (with or without `<?xml?>`) + bind + presence +
/// message to self, through TLS in one flight; waits for the message to come back.
pub async fn login_pipelined(
    probe: &mut Probe,
    target: &Target,
    plan: &Plan,
    restart_declaration: bool,
) -> Result<Login, String> {
    let mark = probe.mark();
    let flight = plan.pipelined_login(&target.account, restart_declaration);
    let what = if restart_declaration {
        "header + auth PLAIN + restart header + bind + presence + message to self"
    } else {
        "header + auth PLAIN + restart header without <?xml?> + bind + presence + message to self"
    };
    probe.flight(what, b"", flight.as_bytes()).await;
    let waited = probe
        .wait(|p| progress(p.since(mark), plan).finished())
        .await;
    let bound = progress(probe.since(mark), plan).outcome(&silence(probe, waited))?;
    Ok(Login {
        bound,
        how: "PLAIN, pipelined".into(),
    })
}

/// A login after TLS where every step waits for its answer: header, features, SASL
/// (SCRAM-SHA-256, else SCRAM-SHA-1, else PLAIN; the SCRAM server signature verified),
/// restart, bind, then presence and the message to self.
pub async fn login_lockstep(
    probe: &mut Probe,
    target: &Target,
    plan: &Plan,
) -> Result<Login, String> {
    let domain = &target.account.domain;
    let mark = probe.mark();
    probe.send("stream header", &header(domain, true)).await;
    expect(probe, mark, "the stream features", header_then_features).await?;
    let offered = features(probe.since(mark))
        .map(mechanisms)
        .unwrap_or_default();
    let mechanism = choose_mechanism(&offered).ok_or_else(|| {
        format!(
            "no mechanism the probe speaks (SCRAM-SHA-256, SCRAM-SHA-1, PLAIN) is offered: {}",
            offered.join(" ")
        )
    })?;
    let plus = offered.iter().any(|m| m.ends_with("-PLUS"));
    sasl(probe, target, mechanism, plus).await?;

    let mark = probe.mark();
    probe.send("restart header", &header(domain, true)).await;
    expect(
        probe,
        mark,
        "the features after the restart",
        header_then_features,
    )
    .await?;

    let mark = probe.mark();
    probe.send("bind", &plan.bind()).await;
    expect(probe, mark, "the bind result", |r| {
        progress(r, plan).bound.is_some()
    })
    .await?;
    let bound = match progress(probe.since(mark), plan).bound {
        Some(Ok(jid)) => jid,
        Some(Err(cond)) => return Err(format!("bind failed: {cond}")),
        None => return Err("no bind result".into()),
    };

    let mark = probe.mark();
    probe
        .send("presence + message to self", &plan.stanzas())
        .await;
    let waited = probe
        .wait(|p| {
            let pr = progress(p.since(mark), plan);
            pr.message_back || pr.message_error.is_some() || pr.stream_error.is_some()
        })
        .await;
    let pr = progress(probe.since(mark), plan);
    if let Some(err) = pr.stream_error {
        return Err(format!("bound {bound}, then stream error {err}"));
    }
    if let Some(cond) = pr.message_error {
        return Err(format!(
            "bound {bound}, but the message to self bounced: {cond}"
        ));
    }
    if !pr.message_back {
        return Err(format!(
            "bound {bound}, but the message to self did not come back: {}",
            silence(probe, waited)
        ));
    }
    Ok(Login {
        bound,
        how: format!("{}, lockstep", mechanism.name()),
    })
}

/// The strongest SCRAM without channel binding, else PLAIN: what a lockstep client uses.
fn choose_mechanism(offered: &[String]) -> Option<Mechanism> {
    [
        Mechanism::ScramSha256,
        Mechanism::ScramSha1,
        Mechanism::Plain,
    ]
    .into_iter()
    .find(|m| offered.iter().any(|o| o == m.name()))
}

/// One SASL exchange in lockstep, the server's SCRAM signature verified.
async fn sasl(
    probe: &mut Probe,
    target: &Target,
    mechanism: Mechanism,
    plus_offered: bool,
) -> Result<(), String> {
    let account = &target.account;
    let sasl_answer = |r: &[Received]| {
        elements(r).any(|e| {
            e.is("success", ns::SASL) || e.is("failure", ns::SASL) || e.is("challenge", ns::SASL)
        })
    };
    let mark = probe.mark();
    let mut scram = None;
    if mechanism == Mechanism::Plain {
        probe
            .send("auth PLAIN", &plain_auth(&account.local, &account.password))
            .await;
    } else {
        let client = scram_client(target, mechanism, plus_offered)?;
        probe
            .send(
                &format!("auth {}", mechanism.name()),
                &auth(mechanism.name(), &client.client_first()),
            )
            .await;
        scram = Some(client);
    }
    expect(probe, mark, "the SASL answer", sasl_answer).await?;
    let mut answer = sasl_outcome(probe.since(mark))?;
    if let (Some(client), SaslAnswer::Challenge(server_first)) = (&mut scram, &answer) {
        let client_final = client
            .handle_server_first(server_first)
            .map_err(|e| format!("bad SCRAM challenge from the server: {e}"))?;
        let mark = probe.mark();
        probe.send("SCRAM response", &response(&client_final)).await;
        expect(probe, mark, "the SASL outcome", sasl_answer).await?;
        answer = sasl_outcome(probe.since(mark))?;
    }
    match (answer, &scram) {
        (SaslAnswer::Success(_), None) => Ok(()),
        (SaslAnswer::Success(data), Some(client)) => client
            .verify_server_final(&data)
            .map_err(|e| format!("the server's SCRAM signature is wrong: {e}")),
        (SaslAnswer::Challenge(_), _) => Err("unexpected SASL challenge".into()),
    }
}

/// A SCRAM client for the account with a fresh nonce, without channel binding; the GS2
/// flag tells the server whether -PLUS was offered (RFC 5802 §6).
pub fn scram_client(
    target: &Target,
    mechanism: Mechanism,
    plus_offered: bool,
) -> Result<ScramClient, String> {
    let nonce = format!("{}{}", random_hex(), random_hex());
    ScramClient::new(
        mechanism,
        &target.account.local,
        &target.account.password,
        None,
        &nonce,
        None,
        plus_offered,
    )
    .map_err(|e| format!("cannot start {}: {e}", mechanism.name()))
}

/// A SASL answer that is not a failure.
enum SaslAnswer {
    Challenge(Vec<u8>),
    Success(Vec<u8>),
}

/// The first SASL answer among `received`; a failure is an error.
fn sasl_outcome(received: &[Received]) -> Result<SaslAnswer, String> {
    for e in elements(received) {
        if e.is("failure", ns::SASL) {
            return Err(format!("authentication failed: {}", condition(e)));
        }
        let data = || sasl_data(e).ok_or_else(|| format!("SASL <{}/> is not base64", e.name()));
        if e.is("challenge", ns::SASL) {
            return Ok(SaslAnswer::Challenge(data()?));
        }
        if e.is("success", ns::SASL) {
            return Ok(SaslAnswer::Success(data()?));
        }
    }
    Err("no SASL answer".into())
}

#[cfg(test)]
mod tests {
    use super::choose_mechanism;
    use pipit_proto::sasl::Mechanism;

    #[test]
    fn lockstep_prefers_scram_without_channel_binding() {
        let offered = |names: &[&str]| names.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            choose_mechanism(&offered(&["SCRAM-SHA-256-PLUS", "SCRAM-SHA-1", "PLAIN"])),
            Some(Mechanism::ScramSha1)
        );
        assert_eq!(
            choose_mechanism(&offered(&["PLAIN", "SCRAM-SHA-256"])),
            Some(Mechanism::ScramSha256)
        );
        assert_eq!(
            choose_mechanism(&offered(&["PLAIN"])),
            Some(Mechanism::Plain)
        );
        assert_eq!(choose_mechanism(&offered(&["EXTERNAL"])), None);
    }
}
