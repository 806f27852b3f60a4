//! `pipit soak` end to end, briefly: against a real server, well-behaved clients are
//! never refused, and every misbehaving kind is met and reported.

mod support;

use serde_json::Value;
use support::*;

#[test]
fn a_short_soak_refuses_no_well_behaved_client() {
    let server = Server::start();
    let dir = server.data_dir().to_str().unwrap().to_owned();
    pipit_ok(&[
        "user",
        "add-many",
        "soak",
        "20",
        "--password",
        "pw",
        "--data-dir",
        &dir,
    ]);
    let ca = server.cafile();
    let out = pipit(&[
        "soak",
        "--server",
        &server.c2s.to_string(),
        "--direct-tls",
        &server.direct_tls.to_string(),
        "--ca",
        ca.to_str().unwrap(),
        "--password",
        "pw",
        "--accounts",
        "20",
        "--clients",
        "4",
        "--misbehaving",
        "4",
        "--duration",
        "3s",
        "--json",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(report["refused"], 0, "{report}");
    assert!(report["logins"].as_u64().unwrap() > 0, "{report}");
    assert_eq!(
        report["logins"].as_u64(),
        report["messages_delivered"].as_u64()
    );
    let kinds = report["misbehaving_outcomes"].as_object().unwrap();
    for kind in [
        "garbage",
        "slowloris",
        "flood without reading",
        "password guessing",
    ] {
        assert!(kinds.contains_key(kind), "{kind}: {report}");
    }
    let garbage = kinds["garbage"].as_object().unwrap();
    assert!(garbage.contains_key("closed by the server"), "{report}");
    let guesses = kinds["password guessing"].as_object().unwrap();
    assert!(
        guesses.keys().all(|outcome| outcome.starts_with("refused")),
        "{report}"
    );
}
