//! One client connection: a tokio task that drives the sans-IO core.

use std::net::SocketAddr;
use std::sync::Arc;

use pipit_proto::error::StreamError;
use pipit_proto::jid::Jid;
use pipit_proto::random::Random;
use pipit_proto::server::{Event, Listener, ServerConnection};
use pipit_proto::xml::{Element, ns};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use crate::im;
use crate::router::{Delivery, SessionSender};
use crate::server::Context;

/// Randomness from the operating system, for the core's stream ids and nonces.
pub struct OsRandom;

impl Random for OsRandom {
    fn fill(&mut self, buf: &mut [u8]) {
        // The OS generator failing means the machine cannot do TLS either.
        getrandom::getrandom(buf).expect("the OS random number generator failed");
    }
}

/// Serves one connection until the stream ends.
pub async fn run(ctx: Arc<Context>, mut stream: TcpStream, peer: SocketAddr, listener: Listener) {
    // DESIGN.md §4: with Nagle on, every TLS flight waits for a delayed ACK.
    let _ = stream.set_nodelay(true);
    let session_id = ctx.session_id();
    let mut conn = ServerConnection::new(Arc::clone(&ctx.proto), listener, Box::new(OsRandom));
    let (sender, mut inbox) = mpsc::unbounded_channel();
    let login_deadline = tokio::time::sleep(ctx.config.login_timeout);
    tokio::pin!(login_deadline);
    let mut buf = vec![0u8; 16 * 1024];
    let mut bound: Option<Jid> = None;
    let mut shutdown = ctx.shutdown.subscribe();
    loop {
        tokio::select! {
            read = stream.read(&mut buf) => match read {
                Ok(0) | Err(_) => conn.handle_eof(),
                Ok(n) => conn.handle_input(&buf[..n]),
            },
            Some(delivery) = inbox.recv() => deliver(&mut conn, delivery),
            () = &mut login_deadline, if bound.is_none() => conn.handle_timeout(),
            _ = shutdown.wait_for(|stop| *stop) => conn.close(Some(StreamError::SystemShutdown)),
        }
        drive(&ctx, &mut conn, &sender, session_id, &mut bound).await;
        // Routed stanzas already queued go out in the same write.
        while let Ok(delivery) = inbox.try_recv() {
            deliver(&mut conn, delivery);
        }
        if conn.has_output() && stream.write_all(&conn.take_output()).await.is_err() {
            conn.handle_eof();
        }
        if conn.is_closed() {
            break;
        }
    }
    let _ = stream.shutdown().await;
    if let Some(jid) = bound {
        if ctx.router.unbind(&jid, session_id) {
            // RFC 6121 §4.5.3: a session that ends without saying goodbye still
            // goes unavailable for its other resources.
            let unavailable = Element::new("presence", ns::CLIENT)
                .with_attr("type", "unavailable")
                .with_attr("from", jid.to_string());
            ctx.router
                .deliver_to_available(&jid.to_bare(), &unavailable, i8::MIN);
        }
        tracing::info!("{peer}: {jid} went offline");
    }
}

fn deliver(conn: &mut ServerConnection, delivery: Delivery) {
    match delivery {
        Delivery::Stanza(stanza) => {
            conn.send_stanza(&stanza);
        }
        Delivery::Close(error) => conn.close(Some(error)),
    }
}

/// Answers the core's events until it has none.
async fn drive(
    ctx: &Context,
    conn: &mut ServerConnection,
    sender: &SessionSender,
    session_id: u64,
    bound: &mut Option<Jid>,
) {
    while let Some(event) = conn.poll_event() {
        match event {
            Event::NeedCredentials { username, domain } => {
                let credentials = match ctx.store.credentials(&username, &domain).await {
                    Ok(credentials) => credentials,
                    Err(e) => {
                        // Fails the login (as not-authorized) rather than the server.
                        tracing::error!("credentials lookup for {username}@{domain}: {e}");
                        None
                    }
                };
                conn.provide_credentials(credentials);
            }
            Event::Authenticated {
                jid,
                mechanism,
                user_agent,
            } => {
                tracing::debug!(
                    "{jid} authenticated with {} (user agent {})",
                    mechanism.name(),
                    user_agent.as_deref().unwrap_or("not given")
                );
            }
            Event::BindRequest { jid, resource } => {
                let result = ctx.router.bind(
                    &jid,
                    resource,
                    ctx.config.conflict_policy,
                    session_id,
                    sender.clone(),
                    || OsRandom.hex(4),
                );
                if let Ok(full) = &result {
                    *bound = Some(full.clone());
                }
                conn.complete_bind(result);
            }
            Event::Stanza(stanza) => {
                if let Some(from) = conn.jid().cloned() {
                    im::handle_stanza(ctx, &from, stanza);
                }
            }
            Event::Closed { error: Some(error) } => tracing::debug!("stream closed: {error}"),
            _ => {}
        }
    }
}
