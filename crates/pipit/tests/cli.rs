//! The `pipit` binary as a user runs it: `serve` with flags and a config file, and
//! the `user` commands working against a running server.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use pipit_testkit::{Client, bind, header, plain_auth};
use support::*;

/// A client configuration trusting the server's generated self-signed certificate.
fn trusting(cafile: &Path) -> Arc<rustls::ClientConfig> {
    let pem = std::fs::read(cafile).expect("the generated certificate");
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

/// Logs in over Direct TLS with a pipelined PLAIN login; true if a resource was bound.
fn logs_in(server: &Server, user: &str, password: &str) -> bool {
    let mut stream = TcpStream::connect(server.direct_tls).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut client = Client::new();
    client.start_tls(&trusting(&server.cafile()), false);
    let mut buf = vec![0u8; 64 * 1024];
    let mut exchange = |client: &mut Client, plaintext: &str, done: &dyn Fn(&Client) -> bool| {
        stream
            .write_all(&client.wire(plaintext.as_bytes()))
            .unwrap();
        while !done(client) {
            let n = stream.read(&mut buf).expect("server answers in time");
            assert!(n > 0, "server closed: {}", client.text);
            client.receive(&buf[..n]);
        }
    };
    exchange(&mut client, "", &|c| !c.handshaking());
    let login = format!(
        "{}{}{}{}",
        header(true),
        plain_auth(user, password),
        header(false),
        bind("cli")
    );
    exchange(&mut client, &login, &|t| {
        t.text.contains("<failure") || t.text.contains("</iq>")
    });
    client
        .text
        .contains(&format!("<jid>{user}@localhost/cli</jid>"))
}

fn data_dir(server: &Server) -> &str {
    server.data_dir().to_str().unwrap()
}

#[test]
fn serve_prints_where_it_listens_and_how_to_add_a_user() {
    let server = Server::start();
    let banner = server.banner.join("\n");
    assert!(
        banner.contains(&format!(
            "c2s (STARTTLS, TLS required before auth): {}",
            server.c2s
        )),
        "{banner}"
    );
    assert!(
        banner.contains(&format!(
            "Direct TLS (XEP-0368):                    {}",
            server.direct_tls
        )),
        "{banner}"
    );
    assert!(
        banner.contains("pipit user add alice@localhost --data-dir"),
        "{banner}"
    );
    assert_ne!(server.c2s.port(), 0, "port 0 resolved to a real port");
    assert!(server.cafile().exists());
    assert!(server.data_dir().join("pipit.sqlite3").exists());
}

#[test]
fn user_commands_work_while_the_server_runs() {
    let server = Server::start();
    let dir = data_dir(&server);
    assert_eq!(
        pipit_ok(&[
            "user",
            "add",
            "alice@localhost",
            "--password",
            "first",
            "--data-dir",
            dir
        ]),
        "added alice@localhost\n"
    );
    pipit_ok(&[
        "user",
        "add",
        "Bob@LOCALHOST",
        "--password",
        "b",
        "--data-dir",
        dir,
    ]);
    assert_eq!(
        pipit_ok(&["user", "list", "--data-dir", dir]),
        "alice@localhost\nbob@localhost\n"
    );
    assert!(logs_in(&server, "alice", "first"));
    assert!(!logs_in(&server, "alice", "wrong"));

    pipit_ok(&[
        "user",
        "passwd",
        "alice@localhost",
        "--password",
        "second",
        "--data-dir",
        dir,
    ]);
    assert!(
        !logs_in(&server, "alice", "first"),
        "the old password no longer works"
    );
    assert!(logs_in(&server, "alice", "second"));

    let exists = pipit_err(&[
        "user",
        "add",
        "alice@localhost",
        "--password",
        "x",
        "--data-dir",
        dir,
    ]);
    assert!(exists.contains("cannot add alice@localhost"), "{exists}");

    pipit_ok(&["user", "del", "alice@localhost", "--data-dir", dir]);
    assert!(!logs_in(&server, "alice", "second"));
    let gone = pipit_err(&["user", "del", "alice@localhost", "--data-dir", dir]);
    assert!(gone.contains("cannot delete alice@localhost"), "{gone}");
}

#[test]
fn add_many_makes_numbered_accounts_once() {
    let server = Server::start();
    let dir = data_dir(&server);
    let add = |count: &str| {
        pipit_ok(&[
            "user",
            "add-many",
            "soak",
            count,
            "--password",
            "pw",
            "--data-dir",
            dir,
        ])
    };
    assert_eq!(
        add("3"),
        "added 3 accounts soak1..soak3@localhost (0 existed)\n"
    );
    // Again, and one more: what exists is left alone.
    assert_eq!(
        add("4"),
        "added 1 accounts soak1..soak4@localhost (3 existed)\n"
    );
    let list = pipit_ok(&["user", "list", "--data-dir", dir]);
    for n in 1..=4 {
        assert!(list.contains(&format!("soak{n}@localhost\n")), "{list}");
    }
    assert!(logs_in(&server, "soak4", "pw"));
    let bad = pipit_err(&[
        "user",
        "add-many",
        "a@b",
        "2",
        "--password",
        "pw",
        "--data-dir",
        dir,
    ]);
    assert!(
        bad.contains("not a valid JID") || bad.contains("name@domain"),
        "{bad}"
    );
}

#[test]
fn mistakes_get_messages_that_say_what_to_fix() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path().to_str().unwrap();
    let elsewhere = pipit_err(&[
        "user",
        "add",
        "a@elsewhere.example",
        "--password",
        "x",
        "--data-dir",
        dir,
    ]);
    assert!(
        elsewhere.contains("not served here") && elsewhere.contains("--domain elsewhere.example"),
        "{elsewhere}"
    );
    let full = pipit_err(&[
        "user",
        "add",
        "a@localhost/phone",
        "--password",
        "x",
        "--data-dir",
        dir,
    ]);
    assert!(full.contains("name@domain"), "{full}");
    let policy = pipit_err(&["serve", "--conflict-policy", "fight", "--data-dir", dir]);
    assert!(policy.contains("replace, refuse, rename"), "{policy}");
    let half = pipit_err(&["serve", "--cert", "c.pem", "--data-dir", dir]);
    assert!(half.contains("--key"), "{half}");
    let missing = pipit_err(&["serve", "--config", "/nonexistent/pipit.toml"]);
    assert!(missing.contains("/nonexistent/pipit.toml"), "{missing}");
}

#[test]
fn a_config_file_is_read_and_flags_win() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("pipit.toml");
    std::fs::write(
        &config,
        "domains = ['example.org', 'localhost']\nc2s-addr = '127.0.0.1:1'\nconflict-policy = 'refuse'\n",
    )
    .unwrap();
    let config = config.to_str().unwrap();
    // The harness passes --c2s-addr 127.0.0.1:0, which must win over the file's port 1.
    let server = Server::start_with(&["--config", config]);
    assert!(
        server.banner[0].contains("serving example.org, localhost"),
        "{:?}",
        server.banner
    );
    let added = pipit_ok(&[
        "user",
        "add",
        "carol@example.org",
        "--password",
        "c",
        "--config",
        config,
        "--data-dir",
        data_dir(&server),
    ]);
    assert_eq!(added, "added carol@example.org\n");
    let bad: SocketAddr = "127.0.0.1:1".parse().unwrap();
    assert_ne!(server.c2s, bad);
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
