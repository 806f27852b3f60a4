//! Helpers for tests of the `pipit` binary: a `pipit serve` on ports the OS picks,
//! killed on drop, and a runner for the other commands.

#![allow(dead_code)]

use std::fs::File;
use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

pub const PIPIT: &str = env!("CARGO_BIN_EXE_pipit");
/// How long the server may take to print its `listening` line.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);

/// The repository root.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The last `n` lines of a file, for failure messages.
pub fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// A `pipit serve` on ports picked by the OS, killed on drop so that a failing test
/// never leaves one behind.
pub struct Server {
    child: Child,
    dir: TempDir,
    pub c2s: SocketAddr,
    pub direct_tls: SocketAddr,
    /// What `serve` printed before its `listening` line.
    pub banner: Vec<String>,
}

impl Server {
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// Starts with extra `serve` flags.
    pub fn start_with(extra: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("making a temporary data dir");
        let mut server = Server {
            child: spawn(dir.path(), extra),
            dir,
            c2s: "0.0.0.0:0".parse().unwrap(),
            direct_tls: "0.0.0.0:0".parse().unwrap(),
            banner: Vec::new(),
        };
        server.wait_listening();
        server
    }

    /// Kills the server with SIGKILL, as a crash or the OOM killer would: no
    /// chance to flush or say goodbye. The data dir stays.
    pub fn kill9(&mut self) {
        self.child.kill().expect("sending SIGKILL");
        self.child.wait().expect("reaping pipit serve");
    }

    /// Starts the server again on the same data dir (new ports), after
    /// [`kill9`](Self::kill9).
    pub fn restart(&mut self, extra: &[&str]) {
        self.child = spawn(self.dir.path(), extra);
        self.banner.clear();
        self.wait_listening();
    }

    /// Reads the banner up to the `listening` line, which gives the addresses.
    fn wait_listening(&mut self) {
        // A thread keeps draining stdout, so the server never blocks on a full pipe.
        let stdout = self.child.stdout.take().expect("piped stdout");
        let (lines_tx, lines) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if lines_tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match lines.recv_timeout(left) {
                Ok(line) => {
                    if let Some((c2s, direct_tls)) = parse_listening(&line) {
                        self.c2s = c2s;
                        self.direct_tls = direct_tls;
                        return;
                    }
                    self.banner.push(line);
                }
                Err(mpsc::RecvTimeoutError::Timeout) => self.fail(&format!(
                    "pipit serve printed no `listening` line within {STARTUP_TIMEOUT:?}"
                )),
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let status = self.child.wait().expect("waiting for pipit serve");
                    self.fail(&format!(
                        "pipit serve exited ({status}) before printing its `listening` line"
                    ))
                }
            }
        }
    }

    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    /// The `pipit serve` process id, to send it signals.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn cafile(&self) -> PathBuf {
        self.data_dir().join("tls/selfsigned-cert.pem")
    }

    pub fn log_tail(&self) -> String {
        tail(&self.data_dir().join("server.log"), 80)
    }

    pub fn fail(&self, why: &str) -> ! {
        panic!("{why}\n--- pipit serve log (tail) ---\n{}", self.log_tail())
    }

    /// `pipit user add`, against the running server's data dir.
    pub fn add_user(&self, (jid, password): (&str, &str)) {
        let out = Command::new(PIPIT)
            .args(["user", "add", jid, "--password", password])
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

/// Spawns `pipit serve` on `data_dir` with ports the OS picks, its log appended to
/// `server.log` there.
fn spawn(data_dir: &Path, extra: &[&str]) -> Child {
    let log = File::options()
        .create(true)
        .append(true)
        .open(data_dir.join("server.log"))
        .expect("opening server.log");
    Command::new(PIPIT)
        .arg("serve")
        .args(["--c2s-addr", "127.0.0.1:0"])
        .args(["--direct-tls-addr", "127.0.0.1:0"])
        .args(extra)
        .arg("--data-dir")
        .arg(data_dir)
        .env(
            "RUST_LOG",
            std::env::var("RUST_LOG").unwrap_or_else(|_| "debug".into()),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .expect("spawning pipit serve")
}

/// Parses `listening c2s=127.0.0.1:PORT direct-tls=127.0.0.1:PORT`.
pub fn parse_listening(line: &str) -> Option<(SocketAddr, SocketAddr)> {
    let mut words = line.split_whitespace();
    if words.next()? != "listening" {
        return None;
    }
    let c2s = words.next()?.strip_prefix("c2s=")?.parse().ok()?;
    let direct_tls = words.next()?.strip_prefix("direct-tls=")?.parse().ok()?;
    Some((c2s, direct_tls))
}

/// Runs `pipit ARGS` to completion.
pub fn pipit(args: &[&str]) -> Output {
    Command::new(PIPIT)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("running pipit")
}

/// Standard output of a run that must succeed.
pub fn pipit_ok(args: &[&str]) -> String {
    let out = pipit(args);
    assert!(
        out.status.success(),
        "pipit {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Standard error of a run that must fail.
pub fn pipit_err(args: &[&str]) -> String {
    let out = pipit(args);
    assert!(!out.status.success(), "pipit {args:?} should fail");
    String::from_utf8(out.stderr).unwrap()
}
