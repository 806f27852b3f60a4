//! Real-client interop: slixmpp (Python) logs in to a real `pipit serve` over STARTTLS
//! and over Direct TLS (XEP-0368) and delivers a chat message; with its XEP-0198
//! plugin it enables stream management and resumes a dropped stream; two clients
//! subscribe to each other's presence (RFC 6121 §3).
//!
//! Ignored by default because it needs the venv that `scripts/test` makes (or a Python
//! with slixmpp in `PIPIT_PYTHON`); `scripts/test` runs it with `--run-ignored all`.
//! The client side is `tests/interop/slixmpp_chat.py` at the workspace root.

mod support;

use support::*;

use std::fs::File;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// The script's own hard limit (`--timeout`); we kill it a little after that.
const SCRIPT_TIMEOUT_SECS: u64 = 30;
const ALICE: (&str, &str) = ("alice@localhost", "wonderland 42");
const BOB: (&str, &str) = ("bob@localhost", "can-we-fix-it");

/// The Python with slixmpp: `PIPIT_PYTHON`, else the workspace's `.venv`.
fn python() -> PathBuf {
    let path = std::env::var_os("PIPIT_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join(".venv/bin/python"));
    assert!(
        path.exists(),
        "no Python at {} for the slixmpp interop test: run scripts/test (it makes .venv \
         with tests/interop/requirements.txt), or point PIPIT_PYTHON at a Python with slixmpp",
        path.display()
    );
    path
}

/// Waits for a child at most `limit`, killing it past that; `None` if it was killed.
fn wait_with_timeout(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("waiting for the script") {
            return Some(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// Runs `slixmpp_chat.py` in `mode` against a fresh server; panics with both sides'
/// logs unless it exits 0.
fn slixmpp_chat(mode: &str) {
    slixmpp_script("slixmpp_chat.py", mode, ALICE, BOB);
}

/// Runs `tests/interop/{file}` in `mode` with `sender` and `receiver` against a
/// fresh server; panics with both sides' logs unless it exits 0.
fn slixmpp_script(file: &str, mode: &str, sender: (&str, &str), receiver: (&str, &str)) {
    let python = python();
    let started = Instant::now();
    let server = Server::start();
    server.add_user(ALICE);
    server.add_user(BOB);
    let port = match mode {
        "direct" => server.direct_tls.port(),
        _ => server.c2s.port(),
    };

    let out_path = server.data_dir().join("script.out");
    let err_path = server.data_dir().join("script.err");
    let script_started = Instant::now();
    let mut script = Command::new(&python)
        .arg(workspace_root().join("tests/interop").join(file))
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .args(["--mode", mode])
        .arg("--cafile")
        .arg(server.cafile())
        .args(["--sender", sender.0, "--sender-password", sender.1])
        .args(["--receiver", receiver.0, "--receiver-password", receiver.1])
        .args(["--timeout", &SCRIPT_TIMEOUT_SECS.to_string(), "--debug"])
        .stdin(Stdio::null())
        .stdout(File::create(&out_path).expect("creating script.out"))
        .stderr(File::create(&err_path).expect("creating script.err"))
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", python.display()));
    let status = wait_with_timeout(&mut script, Duration::from_secs(SCRIPT_TIMEOUT_SECS + 15));
    let script_time = script_started.elapsed();
    let stdout = std::fs::read_to_string(&out_path).unwrap_or_default();

    if status.is_none_or(|s| !s.success()) {
        let how = status.map_or_else(|| "was killed: it hung".to_owned(), |s| s.to_string());
        server.fail(&format!(
            "{file} --mode {mode} {how} after {script_time:?}\n\
             --- script stdout ---\n{stdout}\n\
             --- script stderr (tail; slixmpp SEND/RECV) ---\n{}",
            tail(&err_path, 120)
        ));
    }
    print!("{stdout}");
    println!(
        "{file} over {mode}: script {script_time:?}, whole test {:?}",
        started.elapsed()
    );
}

#[test]
#[ignore = "needs slixmpp: run scripts/test"]
fn slixmpp_chats_over_starttls() {
    slixmpp_chat("starttls");
}

#[test]
#[ignore = "needs slixmpp: run scripts/test"]
fn slixmpp_chats_over_direct_tls() {
    slixmpp_chat("direct");
}

#[test]
#[ignore = "needs slixmpp: run scripts/test"]
fn slixmpp_resumes_a_dropped_stream_over_starttls() {
    slixmpp_script("slixmpp_sm.py", "starttls", BOB, ALICE);
}

#[test]
#[ignore = "needs slixmpp: run scripts/test"]
fn slixmpp_resumes_a_dropped_stream_over_direct_tls() {
    slixmpp_script("slixmpp_sm.py", "direct", BOB, ALICE);
}

/// XEP-0280 with slixmpp's plugin: one resource enables carbons and gets the sent
/// and received copies of another's conversation. Carbons do not depend on the
/// transport, so one mode is enough.
#[test]
#[ignore = "needs slixmpp: run scripts/test"]
fn slixmpp_gets_message_carbons_over_direct_tls() {
    slixmpp_script("slixmpp_carbons.py", "direct", ALICE, BOB);
}

/// RFC 6121 §3 with slixmpp's roster: two clients subscribe to each other, answering
/// requests by hand, until both rosters say `both` and each has seen the other
/// available. Presence does not depend on the transport, so one mode is enough.
#[test]
#[ignore = "needs slixmpp: run scripts/test"]
fn slixmpp_clients_subscribe_to_each_other_over_starttls() {
    slixmpp_script("slixmpp_presence.py", "starttls", ALICE, BOB);
}
