//! The misbehaving clients, one kind each in turn: garbage, slowloris, a flood that
//! never reads, and password guessing. Each reports what the server did about it;
//! none of it may disturb the well-behaved clients.

use std::sync::Arc;
use std::time::{Duration, Instant};

use pipit_client::xml::{Element, ns};
use pipit_client::{Error, LoginOptions, Mode, Session};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use super::report::Outcomes;
use super::{Group, Plan};

/// How long a misbehaving connection is watched for the server to end it.
const WATCH: Duration = Duration::from_secs(120);

pub async fn run(plan: Arc<Plan>, outcomes: Arc<Outcomes>, n: u32) {
    while Instant::now() < plan.deadline {
        let (kind, outcome) = match n % 4 {
            0 => ("garbage", garbage(&plan, n).await),
            1 => ("slowloris", slowloris(&plan, n).await),
            2 => ("flood without reading", flood(&plan, n).await),
            _ => ("password guessing", guess(&plan, n).await),
        };
        outcomes.misbehaved(kind, outcome);
    }
}

async fn connect(plan: &Plan, n: u32) -> std::io::Result<TcpStream> {
    let target = tokio::net::lookup_host(&plan.server)
        .await?
        .next()
        .ok_or_else(|| std::io::Error::other("no address"))?;
    let socket = if target.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    if let Some(local) = plan.source(Group::Misbehaving, n) {
        socket.bind((local, 0).into())?;
    }
    socket.connect(target).await
}

/// Bytes that are no XML: the server must end the stream and close.
async fn garbage(plan: &Plan, n: u32) -> String {
    let mut stream = match connect(plan, n).await {
        Ok(stream) => stream,
        Err(e) => return format!("not connected: {e}"),
    };
    let junk: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8 | 0x80)
        .collect();
    if stream.write_all(&junk).await.is_err() {
        return "closed by the server".into();
    }
    until_closed(&mut stream, plan).await
}

/// A stream header one byte a second: the server must not wait for ever.
async fn slowloris(plan: &Plan, n: u32) -> String {
    let mut stream = match connect(plan, n).await {
        Ok(stream) => stream,
        Err(e) => return format!("not connected: {e}"),
    };
    let header = format!(
        "<?xml version='1.0'?><stream:stream to='{}' xmlns='jabber:client' \
         xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>",
        plan.domain
    );
    let started = Instant::now();
    for byte in header.bytes().cycle() {
        if Instant::now() >= plan.deadline {
            return "still open when the soak ended".into();
        }
        if stream.write_all(&[byte]).await.is_err() {
            return closed_after(started);
        }
        let mut buf = [0u8; 1024];
        let read = tokio::time::timeout(Duration::from_secs(1), stream.read(&mut buf)).await;
        if let Ok(Ok(0) | Err(_)) = read {
            return closed_after(started);
        }
    }
    unreachable!("cycle() never ends")
}

/// Logs in, then sends itself messages as fast as it can and never reads: the
/// server must bound what it holds for this session and end it.
async fn flood(plan: &Plan, n: u32) -> String {
    // The pool's last accounts are the floods' own.
    let account = plan.account(plan.accounts - 1 - n / 4);
    let mut options = match LoginOptions::new(&account, plan.password.clone()) {
        Ok(options) => options,
        Err(e) => return format!("options: {e}"),
    };
    options.server = plan.server.clone();
    options.direct_tls = plan.direct_tls.clone();
    options.mode = Mode::Stunt;
    options.tls = plan.tls.clone();
    options.local_addr = plan.source(Group::Misbehaving, n);
    options.resource = format!("flood-{n}");
    // A send that cannot finish means the server stopped reading: that is its
    // back-pressure, reported apart from being disconnected.
    options.timeout = Duration::from_secs(5);
    let mut session = match Session::login(&options).await {
        Ok(session) => session,
        Err(e) => return format!("login failed: {e}"),
    };
    let body = "x".repeat(1024);
    let started = Instant::now();
    let mut sent = 0u64;
    while Instant::now() < plan.deadline && started.elapsed() < WATCH {
        let message = Element::new("message", ns::CLIENT)
            .with_attr("to", options.jid.to_string())
            .with_child(Element::new("body", ns::CLIENT).with_text(body.clone()));
        match session.send(&message).await {
            Ok(()) => sent += 1,
            Err(Error::Closed | Error::Io(_)) => {
                return format!("ended by the server after {}", magnitude(sent));
            }
            Err(Error::Timeout(_)) => {
                return format!("the server stopped reading after {}", magnitude(sent));
            }
            Err(e) => return format!("ended: {e}"),
        }
    }
    "not ended while flooding".into()
}

/// A wrong password, over and over: each failure should take longer.
async fn guess(plan: &Plan, n: u32) -> String {
    let mut options = match LoginOptions::new(&plan.account(n), "not-the-password") {
        Ok(options) => options,
        Err(e) => return format!("options: {e}"),
    };
    options.server = plan.server.clone();
    options.direct_tls = plan.direct_tls.clone();
    options.mode = Mode::Lockstep;
    options.tls = plan.tls.clone();
    options.local_addr = plan.source(Group::Misbehaving, n);
    // Longer than the server's longest throttling delay (30 s by default), so that
    // the delayed refusal is seen rather than a timeout of our own.
    options.timeout = WATCH;
    let started = Instant::now();
    match Session::login(&options).await {
        Ok(session) => {
            let _ = session.close().await;
            "LOGGED IN with a wrong password".into()
        }
        Err(Error::Protocol(pipit_client::ClientError::AuthFailed { .. })) => {
            format!(
                "refused, answered after {}",
                seconds_bucket(started.elapsed())
            )
        }
        Err(e) => format!("failed otherwise: {e}"),
    }
}

async fn until_closed(stream: &mut TcpStream, plan: &Plan) -> String {
    let started = Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        if Instant::now() >= plan.deadline {
            return "still open when the soak ended".into();
        }
        if started.elapsed() >= WATCH {
            return format!("left open for {} s", WATCH.as_secs());
        }
        let read = tokio::time::timeout(Duration::from_secs(1), stream.read(&mut buf)).await;
        if let Ok(Ok(0) | Err(_)) = read {
            return "closed by the server".into();
        }
    }
}

fn closed_after(started: Instant) -> String {
    format!(
        "closed by the server after {}",
        seconds_bucket(started.elapsed())
    )
}

/// A coarse duration, so that outcomes group: `<1 s`, `1–2 s`, `2–4 s`, …
fn seconds_bucket(d: Duration) -> String {
    let secs = d.as_secs();
    if secs < 1 {
        return "<1 s".into();
    }
    let low = 1u64 << (63 - secs.leading_zeros());
    format!("{low}–{} s", low * 2)
}

/// A coarse count, so that outcomes group: `<10`, `10–100`, … messages.
fn magnitude(n: u64) -> String {
    let mut low = 1u64;
    while low * 10 <= n {
        low *= 10;
    }
    format!("{low}–{} messages", low * 10)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_group_outcomes() {
        assert_eq!(seconds_bucket(Duration::from_millis(300)), "<1 s");
        assert_eq!(seconds_bucket(Duration::from_secs(1)), "1–2 s");
        assert_eq!(seconds_bucket(Duration::from_secs(5)), "4–8 s");
        assert_eq!(magnitude(0), "1–10 messages");
        assert_eq!(magnitude(250), "100–1000 messages");
    }
}
