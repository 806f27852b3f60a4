//! `pipit bench` end to end, briefly: each scenario against a real `pipit serve`
//! with a handful of clients for a second or two, checking that the report's
//! counts agree with each other; bad arguments and an unreachable server.

mod support;

use serde_json::Value;
use support::*;

/// A server with `accounts` accounts bench1… (password `pw`).
fn server_with_accounts(accounts: u32) -> Server {
    let server = Server::start();
    let dir = server.data_dir().to_str().unwrap().to_owned();
    pipit_ok(&[
        "user",
        "add-many",
        "bench",
        &accounts.to_string(),
        "--password",
        "pw",
        "--data-dir",
        &dir,
    ]);
    server
}

/// Runs `pipit bench SCENARIO` against `server` with `extra` flags and `--json`;
/// the parsed report, and whether the command succeeded.
fn bench(server: &Server, scenario: &str, extra: &[&str]) -> (Value, bool) {
    let c2s = server.c2s.to_string();
    let direct_tls = server.direct_tls.to_string();
    let ca = server.cafile();
    let mut args = vec![
        "bench",
        scenario,
        "--server",
        &c2s,
        "--direct-tls",
        &direct_tls,
        "--ca",
        ca.to_str().unwrap(),
        "--password",
        "pw",
        "--json",
    ];
    args.extend_from_slice(extra);
    let out = pipit(&args);
    let text = String::from_utf8_lossy(&out.stdout);
    let report = serde_json::from_str(&text).unwrap_or_else(|e| {
        server.fail(&format!(
            "pipit {args:?}: no JSON report ({e}):\n{text}\n{}",
            String::from_utf8_lossy(&out.stderr)
        ))
    });
    (report, out.status.success())
}

fn count(report: &Value, name: &str) -> u64 {
    report["counts"][name]
        .as_u64()
        .unwrap_or_else(|| panic!("counts.{name} missing: {report}"))
}

/// The fields every report has, whatever the scenario.
fn assert_shape(report: &Value, scenario: &str) {
    assert_eq!(report["scenario"], scenario, "{report}");
    for field in [
        "mode",
        "target",
        "parameters",
        "seconds",
        "counts",
        "rates",
        "latency_ms",
        "failures",
        "rss",
        "steps",
        "limit_per_s",
        "notes",
    ] {
        assert!(report.get(field).is_some(), "no {field}: {report}");
    }
    assert_eq!(
        count(report, "failed"),
        report["failures"]
            .as_object()
            .unwrap()
            .values()
            .map(|n| n.as_u64().unwrap())
            .sum::<u64>(),
        "{report}"
    );
}

#[test]
fn logins_in_stunt_mode_all_succeed_and_are_timed() {
    let server = server_with_accounts(10);
    let (report, ok) = bench(
        &server,
        "logins",
        &["--clients", "4", "--duration", "2s", "--mode", "stunt"],
    );
    assert!(ok, "{report}");
    assert_shape(&report, "logins");
    assert_eq!(report["mode"], "stunt");
    assert_eq!(count(&report, "failed"), 0, "{report}");
    let logins = count(&report, "logins");
    assert!(logins >= 4, "{report}");
    assert_eq!(count(&report, "attempts"), logins, "{report}");
    // Without --tls-resumption every stunt login is a full handshake.
    assert_eq!(count(&report, "tls_resumed"), 0, "{report}");
    let latency = &report["latency_ms"];
    assert_eq!(latency["count"].as_u64(), Some(logins), "{report}");
    let (p50, p99) = (
        latency["p50"].as_f64().unwrap(),
        latency["p99"].as_f64().unwrap(),
    );
    assert!(0.0 < p50 && p50 <= p99, "{report}");
    assert!(report["rates"]["logins_per_s"].as_f64().unwrap() > 0.0);
    // Stunt: at least TCP, the TLS handshake riding with <starttls/>, and auth.
    assert!(report["rates"]["round_trips_mean"].as_f64().unwrap() >= 3.0);
    assert_eq!(report["parameters"]["clients"], 4.0);
    assert_eq!(report["target"]["spread_addresses"], true);
}

#[test]
fn fast_0rtt_logins_carry_each_clients_token_and_ticket_over() {
    let server = server_with_accounts(10);
    let (report, ok) = bench(
        &server,
        "logins",
        &["--clients", "3", "--duration", "2s", "--mode", "fast-0rtt"],
    );
    assert!(ok, "{report}");
    assert_shape(&report, "logins");
    assert_eq!(count(&report, "failed"), 0, "{report}");
    let logins = count(&report, "logins");
    assert!(logins >= 3, "{report}");
    // Every login but each client's first resumes the TLS session its previous
    // login left and rides in its early data with the token that login left: a
    // client that closes right after a 0-RTT login still reads the tickets the
    // server sends after the handshake.
    let (resumed, early) = (count(&report, "tls_resumed"), count(&report, "early_data"));
    assert!(
        logins - 3 <= early && early <= resumed && resumed <= logins,
        "{report}"
    );
    assert_eq!(report["target"]["tls_resumption"], true);
}

#[test]
fn idle_sessions_are_held_and_the_servers_memory_read() {
    let server = server_with_accounts(10);
    let pid = server.pid().to_string();
    let (report, ok) = bench(
        &server,
        "idle",
        &[
            "--count",
            "10",
            "--sessions",
            "12",
            "--concurrency",
            "4",
            "--duration",
            "1s",
            "--server-pid",
            &pid,
        ],
    );
    assert!(ok, "{report}");
    assert_shape(&report, "idle");
    assert_eq!(count(&report, "failed"), 0, "{report}");
    assert_eq!(count(&report, "established"), 12, "{report}");
    assert_eq!(count(&report, "held_at_end"), 12, "{report}");
    assert_eq!(count(&report, "dropped_during_hold"), 0, "{report}");
    let rss = &report["rss"];
    let before = rss["before_kib"].as_u64().unwrap();
    let after = rss["after_kib"].as_u64().unwrap();
    assert!(before > 0 && after > 0 && rss["end_kib"].as_u64().unwrap() > 0);
    let per_session = rss["per_session_kib"].as_f64().unwrap();
    let expected = (after as f64 - before as f64) / 12.0;
    assert!((per_session - expected).abs() < 1e-6, "{report}");
    // More sessions than accounts: some accounts have two, which the report notes.
    assert!(report["notes"].to_string().contains("sessions per account"));
}

#[test]
fn every_message_of_a_small_ring_is_delivered_and_timed() {
    let server = server_with_accounts(5);
    let (report, ok) = bench(
        &server,
        "messages",
        &[
            "--count",
            "5",
            "--users",
            "4",
            "--rate",
            "40",
            "--duration",
            "2s",
        ],
    );
    assert!(ok, "{report}");
    assert_shape(&report, "messages");
    assert_eq!(count(&report, "failed"), 0, "{report}");
    assert_eq!(count(&report, "logged_in"), 4, "{report}");
    let sent = count(&report, "sent");
    // 40/s for 2 s, every send of the schedule made.
    assert_eq!(count(&report, "scheduled"), 80, "{report}");
    assert_eq!(sent, 80, "{report}");
    assert_eq!(count(&report, "delivered"), sent, "{report}");
    assert_eq!(count(&report, "lost"), 0, "{report}");
    assert_eq!(count(&report, "bounced"), 0, "{report}");
    assert_eq!(report["latency_ms"]["count"].as_u64(), Some(sent));
    assert_eq!(report["steps"], Value::Array(Vec::new()));
    assert_eq!(report["limit_per_s"], Value::Null);
}

#[test]
fn find_limit_steps_the_rate_up() {
    let server = server_with_accounts(3);
    let (report, ok) = bench(
        &server,
        "messages",
        &[
            "--count",
            "3",
            "--users",
            "3",
            "--rate",
            "20",
            "--duration",
            "1s",
            "--find-limit",
            "--max-steps",
            "2",
        ],
    );
    assert!(ok, "{report}");
    assert_shape(&report, "messages");
    let steps = report["steps"].as_array().unwrap();
    assert!(!steps.is_empty() && steps.len() <= 2, "{report}");
    assert_eq!(steps[0]["target_per_s"], 20.0);
    if let Some(second) = steps.get(1) {
        assert_eq!(second["target_per_s"], 30.0);
    }
    // The run stops at the first step over the bounds; the limit is the rate of
    // the last step within them (none if the first was not).
    let first_over = steps.iter().position(|s| s["ok"] == false);
    assert!(
        first_over.is_none_or(|at| at == steps.len() - 1),
        "{report}"
    );
    let last_ok = steps.iter().rev().find(|s| s["ok"] == true);
    assert_eq!(
        report["limit_per_s"],
        last_ok.map_or(Value::Null, |s| s["target_per_s"].clone()),
        "{report}"
    );
    for s in steps.iter().filter(|s| s["ok"] == true) {
        assert_eq!(s["lost"], 0, "{report}");
    }
    // The top-level figures are those of that step (or of the first).
    let shown = last_ok.unwrap_or(&steps[0]);
    assert_eq!(report["rates"]["target_per_s"], shown["target_per_s"]);
    assert_eq!(
        count(&report, "sent") - count(&report, "delivered"),
        shown["lost"].as_u64().unwrap(),
        "{report}"
    );
}

#[test]
fn bad_arguments_are_usage_errors() {
    let err = pipit_err(&["bench", "logins", "--server", "nohost", "--password", "x"]);
    assert!(err.contains("HOST:PORT"), "{err}");
    // Each against a well-formed server address, with what is wrong and what the
    // message must name.
    for (scenario, wrong, names) in [
        ("logins", &["--mode", "warp"][..], "fast-0rtt"),
        ("messages", &["--users", "1"][..], "at least 2"),
        (
            "messages",
            &["--users", "20", "--count", "10"][..],
            "--count",
        ),
    ] {
        let mut args = vec![
            "bench",
            scenario,
            "--server",
            "127.0.0.1:5222",
            "--password",
            "x",
        ];
        args.extend_from_slice(wrong);
        let err = pipit_err(&args);
        assert!(err.contains(names), "{wrong:?}: {err}");
    }
    let err = pipit_err(&["bench", "idle", "--password", "x"]);
    assert!(err.contains("--server"), "{err}");
}

#[test]
fn an_unreachable_server_is_reported_with_reasons() {
    // A port nobody listens on: bound, then released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let server = format!("127.0.0.1:{port}");
    for (scenario, extra) in [
        ("logins", ["--clients", "2", "--duration", "1s"]),
        ("idle", ["--sessions", "2", "--duration", "1s"]),
        ("messages", ["--users", "2", "--duration", "1s"]),
    ] {
        let mut args = vec![
            "bench",
            scenario,
            "--server",
            &server,
            "--password",
            "x",
            "--insecure",
            "--json",
        ];
        args.extend_from_slice(&extra);
        let out = pipit(&args);
        assert!(!out.status.success(), "{scenario}: nothing can succeed");
        let report: Value = serde_json::from_slice(&out.stdout).unwrap();
        let failures = report["failures"].as_object().unwrap();
        assert!(
            !failures.is_empty() && failures.keys().all(|r| r.contains("cannot connect")),
            "{scenario}: {report}"
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("nothing succeeded"), "{stderr}");
    }
}
