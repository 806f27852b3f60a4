//! The store side of FAST (XEP-0484): token lookup, the replay check, issue and
//! revocation, answering the core's events. A store failure fails the login (as
//! `not-authorized`), never the server.

use std::time::{SystemTime, UNIX_EPOCH};

use pipit_proto::jid::Jid;
use pipit_proto::server::FastTokenRecord;

use crate::server::Context;

/// Seconds since the epoch: the clock the core is given.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

fn now_i64() -> i64 {
    i64::try_from(unix_now()).unwrap_or(i64::MAX)
}

/// The account's unexpired tokens.
pub async fn tokens(ctx: &Context, username: &str, domain: &str) -> Vec<FastTokenRecord> {
    match ctx.store.fast_tokens(username, domain, now_i64()).await {
        Ok(tokens) => tokens
            .into_iter()
            .map(|t| FastTokenRecord {
                key: t.token_hash,
                mechanism: t.mechanism,
            })
            .collect(),
        Err(e) => {
            tracing::error!("FAST token lookup for {username}@{domain}: {e}");
            Vec::new()
        }
    }
}

/// XEP-0484 §3.4: the count must be greater than any seen; the store records it in
/// the same statement that checks it, so two replays cannot both pass.
pub async fn bump(ctx: &Context, username: &str, domain: &str, key: &[u8; 32], count: u64) -> bool {
    match ctx
        .store
        .bump_fast_count(username, domain, key, count)
        .await
    {
        Ok(fresh) => fresh,
        Err(e) => {
            tracing::error!("FAST count for {username}@{domain}: {e}");
            false
        }
    }
}

/// Stores a newly issued token; a client that presents it later is checked against
/// its hash.
pub async fn issue(
    ctx: &Context,
    jid: &Jid,
    key: &[u8; 32],
    mechanism: &str,
    expires_at: u64,
    user_agent: Option<&str>,
) {
    let local = jid.local().unwrap_or_default();
    let expires_at = i64::try_from(expires_at).unwrap_or(i64::MAX);
    if let Err(e) = ctx
        .store
        .add_fast_token(local, jid.domain(), key, mechanism, expires_at, user_agent)
        .await
    {
        tracing::error!("storing a FAST token for {jid}: {e}");
    }
}

/// §3.5: a token was used, so the same installation's tokens that expire before it
/// are superseded (the issuing login's answer may have been lost, which is why they
/// live until a newer one is used).
pub async fn used(ctx: &Context, jid: &Jid, key: &[u8; 32], user_agent: Option<&str>) {
    let local = jid.local().unwrap_or_default();
    let expires_at = match ctx.store.fast_tokens(local, jid.domain(), now_i64()).await {
        Ok(tokens) => tokens
            .into_iter()
            .find(|t| t.token_hash == *key)
            .map(|t| t.expires_at),
        Err(e) => {
            tracing::warn!("FAST tokens of {jid}: {e}");
            None
        }
    };
    let Some(expires_at) = expires_at else {
        return;
    };
    if let Err(e) = ctx
        .store
        .retire_older_fast_tokens(local, jid.domain(), user_agent, expires_at)
        .await
    {
        tracing::warn!("retiring older FAST tokens of {jid}: {e}");
    }
}

/// Deletes a token the client invalidated (§3.6).
pub async fn revoke(ctx: &Context, jid: &Jid, key: &[u8; 32]) {
    let local = jid.local().unwrap_or_default();
    if let Err(e) = ctx.store.delete_fast_token(local, jid.domain(), key).await {
        tracing::error!("revoking a FAST token of {jid}: {e}");
    }
}
