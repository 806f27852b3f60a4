//! What the core asks of, or tells, its driver.

use crate::error::StreamError;
use crate::jid::Jid;
use crate::xml::Element;

/// One request to, or report for, the driver.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Event {
    /// Look up the credentials of `username@domain` and answer with
    /// [`ServerConnection::provide_credentials`](super::ServerConnection::provide_credentials). Input is held until then.
    NeedCredentials {
        /// The prepared localpart.
        username: String,
        /// The stream's domain.
        domain: String,
    },
    /// SASL succeeded for `jid` (bare).
    Authenticated {
        /// The account.
        jid: Jid,
        /// The mechanism used (a FAST login names its HT-* mechanism).
        mechanism: &'static str,
        /// The SASL2 user-agent id (XEP-0388 §2.3), if the client sent one.
        user_agent: Option<String>,
    },
    /// A password login failed after [`Event::NeedCredentials`] was asked for the
    /// account: a wrong password, or no such account (the two look the same, so
    /// the driver cannot tell them apart either). The `<failure/>` is already in
    /// the output. For the driver's failed-login throttling; failures before a
    /// username was known (bad mechanism, malformed request, abort) are not
    /// reported, since no password was tried.
    AuthFailed {
        /// The prepared localpart the client tried.
        username: String,
        /// The stream's domain.
        domain: String,
        /// The mechanism used.
        mechanism: &'static str,
    },
    /// XEP-0480: the account's credentials, re-salted at the configured iteration
    /// count from what the client computed (the password never came). Store them in
    /// place of the old ones; the login goes on either way.
    CredentialsUpgraded {
        /// The account.
        jid: Jid,
        /// The new credentials.
        credentials: crate::sasl::StoredCredentials,
    },
    /// The client asks to bind a resource (`None`: the server picks). Answer with
    /// [`ServerConnection::complete_bind`](super::ServerConnection::complete_bind); input is held until then.
    BindRequest {
        /// The authenticated account.
        jid: Jid,
        /// The prepared resource the client asked for.
        resource: Option<String>,
        /// Bind2 asked for message carbons inline (XEP-0386 §4, XEP-0280 §4): once
        /// bound, the driver turns them on for the resource. Nothing goes back in
        /// `<bound/>`; the success of the bind is the answer.
        carbons: bool,
    },
    /// A stanza from the bound session, `from` stamped with its full JID, for routing.
    Stanza(Element),
    /// Look up the unexpired FAST tokens of `username@domain` and answer with
    /// [`ServerConnection::provide_fast_tokens`](super::ServerConnection::provide_fast_tokens) (XEP-0484 §3.4).
    NeedFastTokens {
        /// The prepared localpart.
        username: String,
        /// The stream's domain.
        domain: String,
    },
    /// Record `count` for the token with this key if it is greater than every count
    /// seen before, atomically, and answer [`ServerConnection::provide_fast_count`](super::ServerConnection::provide_fast_count)
    /// with whether it was: the replay check of XEP-0484 §3.4.
    FastCount {
        /// The prepared localpart.
        username: String,
        /// The stream's domain.
        domain: String,
        /// The token's key (SHA-256 of the token).
        key: [u8; 32],
        /// The count the client sent.
        count: u64,
    },
    /// Store a newly issued FAST token's key (XEP-0484 §3.3) before the output that
    /// carries the token is written.
    IssueFastToken {
        /// The account.
        jid: Jid,
        /// SHA-256 of the token.
        key: [u8; 32],
        /// The HT mechanism it is for.
        mechanism: String,
        /// Expiry, unix seconds.
        expires_at: u64,
        /// The SASL2 user-agent id it was issued to.
        user_agent: Option<String>,
    },
    /// A FAST login used this token: the installation's older tokens can go
    /// (XEP-0484 §3.5), since it has shown it holds this one.
    FastTokenUsed {
        /// The account.
        jid: Jid,
        /// SHA-256 of the token.
        key: [u8; 32],
        /// The SASL2 user-agent id of the login.
        user_agent: Option<String>,
    },
    /// Delete this token: the client invalidated it (XEP-0484 §3.6).
    RevokeFastToken {
        /// The account.
        jid: Jid,
        /// SHA-256 of the token.
        key: [u8; 32],
    },
    /// XEP-0198 stream management is on; with a `resume_id` the session may be
    /// resumed under that SM-ID: register it so a later `ResumeRequest` finds it.
    StreamManagementEnabled {
        /// The SM-ID, when resumption was granted.
        resume_id: Option<String>,
    },
    /// The authenticated client asks to resume session `previd` (XEP-0198 §5).
    /// Answer with [`ServerConnection::complete_resume`](super::ServerConnection::complete_resume); input is held until then.
    ResumeRequest {
        /// The authenticated account (bare): only its own sessions may be resumed.
        jid: Jid,
        /// The SM-ID the client names.
        previd: String,
    },
    /// The stream is over: flush the output, then close the socket.
    Closed {
        /// Why, when it ended with an error.
        error: Option<StreamError>,
    },
}
