//! `pipit bench`: a load generator for any XMPP server, on pipit-client. Three
//! scenarios, each bounded in time and ending with a report (a table, or JSON):
//!
//! - [`logins`]: clients logging in over and over, in one mode;
//! - [`idle`]: many authenticated sessions held open, with the server's memory;
//! - [`messages`]: a ring of users sending one-to-one messages at a set rate.
//!
//! Layout: [`target`] holds the flags all scenarios share and builds each
//! client's login options; [`tally`], [`histogram`] and [`report`] count and
//! print; [`pacing`] spaces the messages; [`progress`] is the line on standard
//! error; [`fd_limit`] raises the open-file limit; [`ping`] keeps held sessions
//! answering the server.
//!
//! Nothing here is specific to Pipit: a server that lacks a mode shows its
//! logins as failures, with the reason.

mod fd_limit;
mod histogram;
mod idle;
mod logins;
mod messages;
mod pacing;
mod ping;
mod progress;
mod report;
mod tally;
mod target;

use anyhow::bail;

/// The JSON report's shape, shown at the end of `pipit bench --help`.
const REPORT_SHAPE: &str = "\
Output: a table on stdout, or with --json one object:
  scenario     \"logins\" | \"idle\" | \"messages\"
  mode         the login mode
  target       {server, direct_tls, domain, accounts, account_count, mode, mechanism,
                rtt_ms, tls_resumption, spread_addresses}
  parameters   the scenario's settings: clients | sessions, concurrency | users,
               rate_per_s, p99_limit_ms; and duration_s
  seconds      wall time measured
  counts       logins:   attempts, logins, failed, tls_resumed, early_data, pipelined,
                         sm_resumed
               idle:     attempts, established, failed, dropped_during_hold, held_at_end
               messages: users, logged_in, scheduled, sent, delivered, lost,
                         bounced, stale, failed
  rates        logins: logins_per_s, round_trips_mean; idle: establish_s, sessions_per_s, held_s;
               messages: target_per_s, sent_per_s, delivered_per_s
  latency_ms   {count, min, mean, p50, p90, p99, max}, or null: login latency (TCP
               connect to bound resource) or message delivery latency
  failures     {reason: count}, over the whole run; counts.failed is their sum
  rss          idle with --server-pid: {before_kib, after_kib, end_kib,
               per_session_kib}; else null
  steps        messages --find-limit: [{target_per_s, sent_per_s, delivered_per_s,
               lost, p50_ms, p99_ms, ok}]; else []. A step is ok when nothing was
               lost or failed, p99 stayed within --p99-limit, and the generator
               sent at least 95% of its schedule; the top-level figures are then
               those of the last ok step (or of the first step, if none was)
  limit_per_s  messages --find-limit: the last rate within the bounds, or null
  notes        caveats, e.g. a generator that could not keep up

The exit status is 1 when nothing succeeded (no login, no session, no message).

Source addresses: when the server is on 127.0.0.0/8, every connection comes from
an address of its own in 127.2.0.1 and up, which passes both the 64k ports of one
address and per-address limits. Otherwise, or with --rtt (the relay connects from
127.0.0.1), raise the server's per-address limits; for a Pipit server:
  pipit serve --max-connections-per-ip 0 --connection-rate-per-ip 0 \\
              --max-connections 0 --max-sessions-per-user 0
Accounts: pipit user add-many bench 1000 --password PW (then --accounts bench
--count 1000 --password PW here).";

/// Arguments of `pipit bench`.
#[derive(clap::Args, Debug)]
#[command(after_long_help = REPORT_SHAPE)]
pub struct BenchArgs {
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(clap::Subcommand, Debug)]
enum Scenario {
    /// N clients log in over and over for T seconds: logins/s, login latency
    /// percentiles, failures by reason.
    #[command(after_long_help = REPORT_SHAPE)]
    Logins(logins::LoginsArgs),
    /// Open N authenticated sessions and hold them: time to establish them, and
    /// with --server-pid the server's memory per session.
    #[command(after_long_help = REPORT_SHAPE)]
    Idle(idle::IdleArgs),
    /// A ring of users messaging the next one at R messages/s: delivered/s,
    /// delivery latency percentiles, losses; --find-limit raises R until p99
    /// passes the bound.
    #[command(after_long_help = REPORT_SHAPE)]
    Messages(messages::MessagesArgs),
}

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let (report, json) = match args.scenario {
        Scenario::Logins(args) => {
            let json = args.target.json;
            (logins::run(args).await?, json)
        }
        Scenario::Idle(args) => {
            let json = args.target.json;
            (idle::run(args).await?, json)
        }
        Scenario::Messages(args) => {
            let json = args.target.json;
            (messages::run(args).await?, json)
        }
    };
    if json {
        report.print_json()?;
    } else {
        report.print_table();
    }
    let succeeded = ["logins", "established", "delivered"]
        .iter()
        .any(|count| report.counts.get(count).is_some_and(|&n| n > 0));
    if !succeeded {
        bail!(
            "nothing succeeded against {}: see the failures above",
            report.target.server
        );
    }
    Ok(())
}
