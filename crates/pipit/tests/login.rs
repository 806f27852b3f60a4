//! `pipit login` end to end against `pipit serve` on ports the OS picks: the JSON
//! report of every mode, the state file across processes, failures, the relay.

mod support;

use std::process::Output;

use serde_json::Value;
use support::*;

const ALICE: (&str, &str) = ("alice@localhost", "pencil");

/// A server with alice on it.
fn server() -> Server {
    let server = Server::start();
    server.add_user(ALICE);
    server
}

/// `pipit login alice@localhost --password PW --server … --direct-tls … --ca … EXTRA`.
fn login(server: &Server, password: &str, extra: &[&str]) -> Output {
    let c2s = server.c2s.to_string();
    let direct = server.direct_tls.to_string();
    let ca = server.cafile();
    let mut args = vec![
        "login",
        ALICE.0,
        "--password",
        password,
        "--server",
        &c2s,
        "--direct-tls",
        &direct,
        "--ca",
        ca.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    pipit(&args)
}

/// The JSON rows of a `--json` run.
fn json_rows(out: &Output) -> Vec<Value> {
    let text = String::from_utf8_lossy(&out.stdout);
    match serde_json::from_str::<Value>(&text) {
        Ok(Value::Array(rows)) => rows,
        _ => panic!(
            "not a JSON array: {text}\nstderr: {}",
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

/// Each row's (mode, round trips), checking every row is a complete success.
fn round_trips(rows: &[Value]) -> Vec<(String, u64)> {
    rows.iter()
        .map(|r| {
            assert_eq!(r["ok"], true, "{r}");
            assert!(r.get("error").is_none(), "{r}");
            assert_eq!(r["tls"], "TLS 1.3", "{r}");
            // Bind2 adds a random part to the resource (XEP-0386 §3).
            let jid = r["jid"].as_str().unwrap();
            assert!(jid.starts_with("alice@localhost/pipit"), "{r}");
            let login = r["login_ms"].as_f64().unwrap();
            let first = r["first_stanza_ms"].as_f64().unwrap();
            assert!(login > 0.0 && first >= login, "{r}");
            (
                r["mode"].as_str().unwrap().to_owned(),
                r["round_trips"].as_u64().unwrap(),
            )
        })
        .collect()
}

fn expect(pairs: &[(&str, u64)]) -> Vec<(String, u64)> {
    pairs.iter().map(|(m, n)| (m.to_string(), *n)).collect()
}

#[test]
fn mode_all_teaches_the_later_modes_and_resumes_tls() {
    let server = server();
    // The strongest mechanism by default: SCRAM-SHA-256-PLUS, one round trip more
    // than PLAIN except in lockstep.
    let out = login(&server, ALICE.1, &["--mode", "all", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows = json_rows(&out);
    assert_eq!(
        round_trips(&rows),
        expect(&[
            ("lockstep", 9),
            ("pipelined", 5),
            ("stunt", 4),
            ("direct", 4),
            ("sasl2", 4),
            ("fast", 3),
            // TCP connect, then ClientHello + stream header + FAST authenticate in
            // TLS 1.3 early data: the server's first flight has the bound session.
            ("fast-0rtt", 2),
            // The same, with the <resume/> of the session fast-0rtt left detached.
            ("sm-resume", 2)
        ])
    );
    let mechanisms: Vec<_> = rows.iter().map(|r| r["mechanism"].clone()).collect();
    // The server takes FAST in 0-RTT, so the token is for tls-server-end-point
    // channel binding, which (unlike tls-exporter) a client knows before the
    // handshake: from the certificate of the session it resumes.
    assert!(
        mechanisms[..5].iter().all(|m| m == "SCRAM-SHA-256-PLUS")
            && mechanisms[5..].iter().all(|m| m == "HT-SHA-256-ENDP"),
        "{mechanisms:?}"
    );
    let early: Vec<_> = rows.iter().map(|r| r["early_data"].as_bool()).collect();
    assert_eq!(early[..6], [Some(false); 6]);
    assert_eq!(early[6..], [Some(true); 2], "{:?}", &rows[6..]);
    // Only the last login resumed a session; the one before left it detached.
    let sm: Vec<_> = rows
        .iter()
        .map(|r| (r["sm_resumed"].as_bool(), r["detached"].as_bool()))
        .collect();
    assert_eq!(sm[..6], [(Some(false), Some(false)); 6]);
    assert_eq!(
        sm[6..],
        [(Some(false), Some(true)), (Some(true), Some(false))]
    );
    // The lockstep login had no grounds; it taught the rest, which pipelined. One
    // TLS configuration for the run: every login after the first resumed.
    let flags: Vec<_> = rows
        .iter()
        .map(|r| (r["pipelined"].as_bool(), r["resumed"].as_bool()))
        .collect();
    assert_eq!(
        flags,
        [
            (Some(false), Some(false)),
            (Some(true), Some(true)),
            (Some(true), Some(true)),
            (Some(true), Some(true)),
            (Some(true), Some(true)),
            (Some(true), Some(true)),
            (Some(true), Some(true)),
            (Some(true), Some(true)),
        ]
    );

    let out = login(
        &server,
        ALICE.1,
        &["--mode", "all", "--json", "--mech", "PLAIN"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        round_trips(&json_rows(&out)),
        expect(&[
            ("lockstep", 8),
            ("pipelined", 4),
            ("stunt", 3),
            ("direct", 3),
            ("sasl2", 3),
            ("fast", 3),
            ("fast-0rtt", 2),
            ("sm-resume", 2)
        ])
    );
}

#[test]
fn the_state_file_lets_the_next_process_pipeline_at_once() {
    let server = server();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let state = state.to_str().unwrap();
    let args = [
        "--mode", "stunt", "--mech", "PLAIN", "--json", "--state", state,
    ];
    // Nothing known: auth, restart and bind each wait for their answer.
    let first = login(&server, ALICE.1, &args);
    assert_eq!(round_trips(&json_rows(&first)), expect(&[("stunt", 6)]));
    let saved = std::fs::read_to_string(state).unwrap();
    assert!(!saved.contains(ALICE.1), "the password leaked: {saved}");
    assert!(saved.contains("\"credentials_ok\": true"), "{saved}");
    // A new process with the file: pipelined from the first login, no TLS session
    // to resume.
    let second = json_rows(&login(&server, ALICE.1, &args));
    assert_eq!(round_trips(&second), expect(&[("stunt", 3)]));
    assert_eq!(second[0]["resumed"], false);
    // With the file, `--mode all` pipelines every mode but lockstep.
    let all = login(
        &server,
        ALICE.1,
        &[
            "--mode", "all", "--mech", "PLAIN", "--json", "--state", state,
        ],
    );
    assert_eq!(
        round_trips(&json_rows(&all)),
        expect(&[
            ("lockstep", 8),
            ("pipelined", 4),
            ("stunt", 3),
            ("direct", 3),
            ("sasl2", 3),
            ("fast", 3),
            ("fast-0rtt", 2),
            ("sm-resume", 2)
        ])
    );
}

#[test]
fn a_detached_session_is_resumed_by_the_next_process() {
    let server = server();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let state = state.to_str().unwrap();
    let run = |mode: &str, extra: &[&str]| {
        let mut args = vec![
            "--mode", mode, "--mech", "PLAIN", "--json", "--state", state,
        ];
        args.extend_from_slice(extra);
        login(&server, ALICE.1, &args)
    };
    // Nothing to resume yet: a clear error that says what to do.
    let out = run("sm-resume", &[]);
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("no resumable session saved"), "{text}");
    // SASL2 with stream management enabled inline, left detached.
    let first = json_rows(&run("sasl2", &["--detach"]));
    // A fresh state file: no grounds to pipeline, so 4 round trips.
    assert_eq!(round_trips(&first), expect(&[("sasl2", 4)]));
    assert_eq!(first[0]["detached"], true);
    let saved = std::fs::read_to_string(state).unwrap();
    assert!(saved.contains("\"sm_session\": {"), "{saved}");
    // The next process takes it back: same full JID, one flight after TLS.
    let second = json_rows(&run("sm-resume", &[]));
    assert_eq!(round_trips(&second), expect(&[("sm-resume", 3)]));
    assert_eq!(second[0]["sm_resumed"], true);
    assert_eq!(second[0]["jid"], first[0]["jid"]);
    // That one closed the stream, which ends the session for good (XEP-0198 §7):
    // the state no longer offers it.
    let saved = std::fs::read_to_string(state).unwrap();
    assert!(saved.contains("\"sm_session\": null"), "{saved}");
    let out = run("sm-resume", &[]);
    assert!(!out.status.success());
    // --detach records the session in the state file, so it needs one.
    let out = login(&server, ALICE.1, &["--mode", "sasl2", "--detach"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--detach needs --state"), "{err}");
}

#[test]
fn a_password_login_re_salts_an_account_below_the_iteration_count() {
    // The account was made with the default 4096 iterations; the server now wants
    // 8192 and offers XEP-0480 upgrade tasks.
    let server = Server::start_with(&["--scram-iterations", "8192"]);
    server.add_user(ALICE);
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let state = state.to_str().unwrap();
    let run = |mode: &str, mech: &str| {
        let args = ["--mode", mode, "--mech", mech, "--json", "--state", state];
        round_trips(&json_rows(&login(&server, ALICE.1, &args)))
    };
    // No grounds yet: 4 round trips, and 4 more for the two tasks (each
    // <continue/> + <next/>, then the salt and the SaltedPassword).
    assert_eq!(run("sasl2", "PLAIN"), expect(&[("sasl2", 8)]));
    // The FAST token that login got was stored after the new credentials, so the
    // change of keys did not take it away.
    assert_eq!(run("fast", "PLAIN"), expect(&[("fast", 3)]));
    // SCRAM with the re-salted keys works, and finds nothing left to upgrade.
    assert_eq!(run("sasl2", "SCRAM-SHA-256"), expect(&[("sasl2", 4)]));
    assert_eq!(run("sasl2", "SCRAM-SHA-1"), expect(&[("sasl2", 4)]));
}

#[test]
fn a_server_without_resumption_cannot_be_left_detached() {
    let server = Server::start_with(&["--sm-resume-timeout-secs", "0"]);
    server.add_user(ALICE);
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let args = [
        "--mode",
        "sasl2",
        "--json",
        "--detach",
        "--state",
        state.to_str().unwrap(),
    ];
    let out = login(&server, ALICE.1, &args);
    // The login worked; leaving it to resume did not, and --detach asked for that.
    assert!(!out.status.success());
    let rows = json_rows(&out);
    assert_eq!(rows[0]["ok"], true, "{}", rows[0]);
    assert_eq!(rows[0]["detached"], false);
    let why = rows[0]["detach_error"].as_str().unwrap();
    assert!(why.contains("did not grant stream resumption"), "{why}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--detach: the session could not be left"),
        "{err}"
    );
}

#[test]
fn a_wrong_password_is_reported_per_mode_and_fails_the_run() {
    let server = server();
    let out = login(&server, "wrong", &["--mode", "all", "--json"]);
    assert!(!out.status.success());
    let rows = json_rows(&out);
    assert_eq!(rows.len(), 8);
    for row in &rows {
        assert_eq!(row["ok"], false, "{row}");
        let error = row["error"].as_str().unwrap();
        // FAST has no token to try and sm-resume no session: no login ever
        // succeeded.
        let expected = match row["mode"].as_str().unwrap() {
            "fast" | "fast-0rtt" => "no FAST token",
            "sm-resume" => "no resumable session saved",
            _ => "not-authorized",
        };
        assert!(error.contains(expected), "{row}");
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("8 of 8 logins failed"), "{stderr}");
}

#[test]
fn an_emulated_round_trip_time_bounds_the_login_time_from_below() {
    let server = server();
    let out = login(
        &server,
        ALICE.1,
        &[
            "--mode", "direct", "--mech", "PLAIN", "--rtt", "100ms", "--json",
        ],
    );
    let rows = json_rows(&out);
    // No grounds yet: ClientHello, Finished + header, auth, restart, bind.
    assert_eq!(round_trips(&rows), expect(&[("direct", 6)]));
    let login_ms = rows[0]["login_ms"].as_f64().unwrap();
    assert!(login_ms >= 6.0 * 100.0, "{login_ms}");
}

#[test]
fn the_table_names_each_mode_and_its_outcome() {
    let server = server();
    let out = login(&server, ALICE.1, &["--mode", "pipelined"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let row = text
        .lines()
        .find(|l| l.starts_with("pipelined"))
        .unwrap_or_else(|| panic!("no pipelined row: {text}"));
    let cells: Vec<_> = row.split_whitespace().collect();
    // No grounds: header + starttls, ClientHello, Finished + header, SCRAM first,
    // SCRAM final, restart, bind.
    assert_eq!(cells[1], "8", "{text}");
    assert!(row.ends_with(" ok"), "{text}");
}

#[test]
fn bad_input_gets_a_clear_error() {
    for (args, says) in [
        (
            &[
                "login",
                "alice@localhost",
                "--password",
                "x",
                "--rtt",
                "fast",
            ][..],
            "--rtt",
        ),
        (
            &[
                "login",
                "alice@localhost",
                "--password",
                "x",
                "--rtt",
                "100",
            ],
            "give a unit",
        ),
        (
            &[
                "login",
                "alice@localhost",
                "--password",
                "x",
                "--mode",
                "warp",
            ],
            "lockstep, pipelined, stunt, direct, sasl2, fast, fast-0rtt, sm-resume or all",
        ),
        (
            &[
                "login",
                "alice@localhost",
                "--password",
                "x",
                "--mech",
                "MD5",
            ],
            "SCRAM-SHA-256",
        ),
        (
            &[
                "login",
                "alice@localhost",
                "--password",
                "x",
                "--server",
                "localhost",
            ],
            "HOST:PORT",
        ),
        (&["login", "localhost", "--password", "x"], "name@domain"),
        (
            &[
                "login",
                "alice@localhost",
                "--password",
                "x",
                "--resource",
                "",
            ],
            "resource",
        ),
        (
            &[
                "login",
                "alice@localhost",
                "--password",
                "x",
                "--ca",
                "/nonexistent.pem",
            ],
            "/nonexistent.pem",
        ),
        (
            &[
                "login",
                "alice@localhost",
                "--password",
                "x",
                "--insecure",
                "--ca",
                "x.pem",
            ],
            "--insecure",
        ),
    ] {
        let stderr = pipit_err(args);
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
}

#[test]
fn an_unreachable_server_is_a_failed_mode_not_a_crash() {
    let gone = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = gone.local_addr().unwrap().to_string();
    drop(gone);
    let out = pipit(&[
        "login",
        "alice@localhost",
        "--password",
        "x",
        "--server",
        &addr,
        "--mode",
        "stunt",
        "--json",
    ]);
    assert!(!out.status.success());
    let rows = json_rows(&out);
    assert_eq!(rows[0]["ok"], false);
    assert!(
        rows[0]["error"]
            .as_str()
            .unwrap()
            .contains("cannot connect"),
        "{:?}",
        rows[0]
    );
}
