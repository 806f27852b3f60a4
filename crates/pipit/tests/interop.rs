//! Real-client interop: slixmpp (Python) logs in to a real `pipit serve` over STARTTLS
//! and over Direct TLS (XEP-0368) and delivers a chat message.
//!
//! Ignored by default because it needs the venv that `scripts/test` makes (or a Python
//! with slixmpp in `PIPIT_PYTHON`); `scripts/test` runs it with `--run-ignored all`.
//! The client side is `tests/interop/slixmpp_chat.py` at the workspace root.

use std::fs::File;
use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

const PIPIT: &str = env!("CARGO_BIN_EXE_pipit");
/// How long the server may take to print its `listening` line.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);
/// The script's own hard limit (`--timeout`); we kill it a little after that.
const SCRIPT_TIMEOUT_SECS: u64 = 30;
const ALICE: (&str, &str) = ("alice@localhost", "wonderland 42");
const BOB: (&str, &str) = ("bob@localhost", "can-we-fix-it");

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

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

/// The last `n` lines of a file, for failure messages.
fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// A `pipit serve` on ports picked by the OS, killed on drop so that a failing test
/// never leaves one behind.
struct Server {
    child: Child,
    dir: TempDir,
    c2s: SocketAddr,
    direct_tls: SocketAddr,
}

impl Server {
    fn start() -> Self {
        let dir = tempfile::tempdir().expect("making a temporary data dir");
        let log = File::create(dir.path().join("server.log")).expect("creating server.log");
        let mut child = Command::new(PIPIT)
            .args(["serve", "--domain", "localhost"])
            .args(["--c2s-addr", "127.0.0.1:0"])
            .args(["--direct-tls-addr", "127.0.0.1:0"])
            .arg("--data-dir")
            .arg(dir.path())
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "debug".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("spawning pipit serve");

        // A thread keeps draining stdout, so the server never blocks on a full pipe.
        let stdout = child.stdout.take().expect("piped stdout");
        let (lines_tx, lines) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if lines_tx.send(line).is_err() {
                    break;
                }
            }
        });

        let mut server = Server {
            child,
            dir,
            c2s: "0.0.0.0:0".parse().unwrap(),
            direct_tls: "0.0.0.0:0".parse().unwrap(),
        };
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match lines.recv_timeout(left) {
                Ok(line) => {
                    if let Some((c2s, direct_tls)) = parse_listening(&line) {
                        server.c2s = c2s;
                        server.direct_tls = direct_tls;
                        return server;
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => server.fail(&format!(
                    "pipit serve printed no `listening` line within {STARTUP_TIMEOUT:?}"
                )),
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let status = server.child.wait().expect("waiting for pipit serve");
                    server.fail(&format!(
                        "pipit serve exited ({status}) before printing its `listening` line"
                    ))
                }
            }
        }
    }

    fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    fn cafile(&self) -> PathBuf {
        self.data_dir().join("tls/selfsigned-cert.pem")
    }

    fn log_tail(&self) -> String {
        tail(&self.data_dir().join("server.log"), 80)
    }

    fn fail(&self, why: &str) -> ! {
        panic!("{why}\n--- pipit serve log (tail) ---\n{}", self.log_tail())
    }

    /// `pipit user add`, against the running server's data dir.
    fn add_user(&self, (jid, password): (&str, &str)) {
        let out = Command::new(PIPIT)
            .args(["user", "add", jid, "--password", password])
            .args(["--domain", "localhost"])
            .arg("--data-dir")
            .arg(self.data_dir())
            .stdin(Stdio::null())
            .output()
            .expect("running pipit user add");
        if !out.status.success() {
            self.fail(&format!(
                "pipit user add {jid} failed ({}):\n{}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Parses `listening c2s=127.0.0.1:PORT direct-tls=127.0.0.1:PORT`.
fn parse_listening(line: &str) -> Option<(SocketAddr, SocketAddr)> {
    let mut words = line.split_whitespace();
    if words.next()? != "listening" {
        return None;
    }
    let c2s = words.next()?.strip_prefix("c2s=")?.parse().ok()?;
    let direct_tls = words.next()?.strip_prefix("direct-tls=")?.parse().ok()?;
    Some((c2s, direct_tls))
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
        .arg(workspace_root().join("tests/interop/slixmpp_chat.py"))
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .args(["--mode", mode])
        .arg("--cafile")
        .arg(server.cafile())
        .args(["--sender", ALICE.0, "--sender-password", ALICE.1])
        .args(["--receiver", BOB.0, "--receiver-password", BOB.1])
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
            "slixmpp_chat.py --mode {mode} {how} after {script_time:?}\n\
             --- script stdout ---\n{stdout}\n\
             --- script stderr (tail; slixmpp SEND/RECV) ---\n{}",
            tail(&err_path, 120)
        ));
    }
    print!("{stdout}");
    println!(
        "slixmpp over {mode}: script {script_time:?}, whole test {:?}",
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
fn parses_the_listening_line() {
    assert_eq!(
        parse_listening("listening c2s=127.0.0.1:5222 direct-tls=127.0.0.1:5223"),
        Some((
            "127.0.0.1:5222".parse().unwrap(),
            "127.0.0.1:5223".parse().unwrap()
        ))
    );
    assert_eq!(parse_listening("  c2s (STARTTLS): 127.0.0.1:5222"), None);
}
