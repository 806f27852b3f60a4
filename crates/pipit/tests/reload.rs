//! `kill -HUP` makes a running `pipit serve` re-read its certificate files: new
//! connections get the new certificate, the server keeps running, and a reload that
//! fails keeps the certificate it had.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use support::*;

/// `pipit login` over Direct TLS trusting only `ca`: whether it got in.
fn logs_in_trusting(server: &Server, ca: &Path) -> bool {
    pipit(&[
        "login",
        "alice@localhost",
        "--password",
        "pencil",
        "--server",
        &server.c2s.to_string(),
        "--direct-tls",
        &server.direct_tls.to_string(),
        "--mode",
        "direct",
        "--ca",
        ca.to_str().unwrap(),
        "--timeout",
        "10s",
    ])
    .status
    .success()
}

fn hangup(server: &Server) {
    let status = Command::new("kill")
        .args(["-HUP", &server.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn sighup_reloads_the_certificate_files() {
    let files = tempfile::tempdir().unwrap();
    let (cert, key) = (files.path().join("cert.pem"), files.path().join("key.pem"));
    let pki = pipit_testkit::pki();
    std::fs::write(&cert, &pki.leaf_pem).unwrap();
    std::fs::write(&key, &pki.leaf_key_pem).unwrap();
    let test_ca = files.path().join("test-ca.pem");
    std::fs::write(&test_ca, &pki.ca_pem).unwrap();
    let server = Server::start_with(&[
        "--cert",
        cert.to_str().unwrap(),
        "--key",
        key.to_str().unwrap(),
    ]);
    server.add_user(("alice@localhost", "pencil"));
    // Another server's self-signed certificate and key are the new files.
    let other = Server::start();
    let new_cert = other.cafile();
    assert!(logs_in_trusting(&server, &test_ca));
    assert!(!logs_in_trusting(&server, &new_cert));

    // A key that does not match: the reload fails and the old certificate stays.
    std::fs::copy(&new_cert, &cert).unwrap();
    hangup(&server);
    std::thread::sleep(Duration::from_millis(200));
    assert!(logs_in_trusting(&server, &test_ca), "{}", server.log_tail());

    // The matching key too: new connections get the new certificate. The signal
    // is handled asynchronously, so wait for the log line rather than a time.
    std::fs::copy(other.data_dir().join("tls/selfsigned-key.pem"), &key).unwrap();
    hangup(&server);
    let reloaded = (0..100).any(|_| {
        std::thread::sleep(Duration::from_millis(50));
        server.log_tail().contains("certificates reloaded")
    });
    assert!(reloaded, "{}", server.log_tail());
    assert!(
        logs_in_trusting(&server, &new_cert),
        "{}",
        server.log_tail()
    );
    assert!(!logs_in_trusting(&server, &test_ca));
    assert!(
        server.log_tail().contains("certificates not reloaded"),
        "the failed reload was logged: {}",
        server.log_tail()
    );
}
