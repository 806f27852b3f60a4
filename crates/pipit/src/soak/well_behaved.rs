//! The well-behaved client: log in, send oneself a message, wait for it, log out;
//! stunt, SASL2 and FAST in turn (FAST with the token the SASL2 login left), until
//! the soak's deadline. Anything that goes wrong is a refusal, counted by reason.

use std::sync::Arc;
use std::time::{Duration, Instant};

use pipit_client::{LoginOptions, Mode, Session, State};

use super::report::Outcomes;
use super::{Group, Plan};
use crate::login::{await_self_message, self_test};

/// The longest a login, and then the message's return, may take before it counts
/// as refused: far beyond any healthy figure, so only a real failure trips it.
const PATIENCE: Duration = Duration::from_secs(30);

pub async fn run(plan: Arc<Plan>, outcomes: Arc<Outcomes>, n: u32) {
    let state = State::in_memory();
    let modes = [Mode::Stunt, Mode::Sasl2, Mode::Fast];
    let mut round = 0usize;
    while Instant::now() < plan.deadline {
        let mode = modes[round % modes.len()];
        round += 1;
        let mut options = match LoginOptions::new(&plan.account(n), plan.password.clone()) {
            Ok(options) => options,
            Err(e) => return outcomes.refused(format!("options: {e}")),
        };
        options.server = plan.server.clone();
        options.direct_tls = plan.direct_tls.clone();
        options.mode = mode;
        options.tls = plan.tls.clone();
        options.state = state.clone();
        options.local_addr = plan.source(Group::WellBehaved, n + plan.clients * round as u32);
        options.timeout = PATIENCE;
        options.resource = format!("soak-{n}");
        let id = format!("soak-{n}-{round}");
        options.initial_stanzas = self_test(&options, &id, "soak");
        let started = Instant::now();
        let mut session = match Session::login(&options).await {
            Ok(session) => session,
            Err(e) => {
                outcomes.refused(format!("{} login: {e}", mode.name()));
                continue;
            }
        };
        outcomes.logged_in(started.elapsed());
        match await_self_message(&mut session, &id, PATIENCE).await {
            Ok(_) => outcomes.delivered(),
            Err(why) => outcomes.refused(format!("{} message: {why}", mode.name())),
        }
        if let Err(e) = session.close().await {
            outcomes.refused(format!("{} close: {e}", mode.name()));
        }
    }
}
