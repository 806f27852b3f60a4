//! The server side of one SASL exchange, for every mechanism.

use std::fmt;

use super::channel_binding::ChannelBindingInfo;
use super::credentials::StoredCredentials;
use super::decoy::Decoy;
use super::downgrade::Advertised;
use super::error::SaslError;
use super::mechanism::Mechanism;
use super::plain::PlainRequest;
use super::scram_server::{ScramFinal, ScramFirst};

/// What the driver does next after a [`ServerSession`] call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Send `<challenge/>` with these bytes (base64'd by the XMPP layer), then await `<response/>`.
    Challenge(Vec<u8>),
    /// Look the account up and call [`ServerSession::credentials`].
    NeedCredentials {
        /// The authentication identity after SASLprep (and SCRAM `=2C`/`=3D` unescaping).
        username: String,
        /// The requested authorization identity, as sent; the XMPP layer checks it.
        authzid: Option<String>,
    },
    /// Send `<success/>`, with this additional data if any (SCRAM's `v=...`).
    Success {
        /// The server-final message for SCRAM, `None` for PLAIN.
        additional_data: Option<Vec<u8>>,
    },
}

/// Where the exchange is; each state holds only what it needs.
enum State {
    /// Started without an initial response; the client's first message comes via `respond`.
    AwaitingFirst,
    /// PLAIN message parsed; waiting for `credentials`.
    PlainNeedsCredentials(PlainRequest),
    /// SCRAM client-first parsed; waiting for `credentials`.
    ScramNeedsCredentials(ScramFirst),
    /// SCRAM server-first sent; waiting for the client-final message via `respond`.
    ScramAwaitingFinal(ScramFinal),
    /// Authenticated.
    Succeeded,
    /// Failed; every later call returns this error again.
    Failed(SaslError),
}

impl State {
    /// A short name for `Debug`, which must not print secrets.
    fn name(&self) -> &'static str {
        match self {
            State::AwaitingFirst => "AwaitingFirst",
            State::PlainNeedsCredentials(_) => "PlainNeedsCredentials",
            State::ScramNeedsCredentials(_) => "ScramNeedsCredentials",
            State::ScramAwaitingFinal(_) => "ScramAwaitingFinal",
            State::Succeeded => "Succeeded",
            State::Failed(_) => "Failed",
        }
    }
}

/// Server side of one SASL exchange (sans-IO: bytes in, [`Step`]s out).
///
/// Call order:
/// 1. [`start`](Self::start) with the mechanism and the initial response, if any. Without one
///    it returns [`Step::Challenge`] with no data; pass the client's reply to
///    [`respond`](Self::respond), which returns [`Step::NeedCredentials`].
/// 2. Look the user up and call [`credentials`](Self::credentials) (`None` if unknown).
///    PLAIN then succeeds or fails; SCRAM returns [`Step::Challenge`] (server-first).
/// 3. SCRAM only: pass the client-final message to [`respond`](Self::respond), which returns
///    [`Step::Success`] carrying the server-final message.
///
/// An unknown user fails exactly like a wrong password, and for SCRAM only at step 3, after a
/// plausible server-first. Any error is final: later calls return it again.
pub struct ServerSession {
    /// The negotiated mechanism.
    mech: Mechanism,
    /// Channel-binding facts about this connection (empty for PLAIN).
    cb: ChannelBindingInfo,
    /// How to fake credentials for unknown users.
    decoy: Decoy,
    /// What was advertised, for XEP-0474's `h` attribute; `None`: no attribute.
    advertised: Option<Advertised>,
    /// The current state.
    state: State,
}

impl fmt::Debug for ServerSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerSession")
            .field("mech", &self.mech)
            .field("state", &self.state.name())
            .finish_non_exhaustive()
    }
}

impl ServerSession {
    /// Starts an exchange; `initial` is the decoded initial response (`Some(&[])` if it was `=`).
    ///
    /// A -PLUS mechanism on a connection without channel binding is
    /// [`SaslError::InvalidMechanism`].
    pub fn start(
        mech: Mechanism,
        initial: Option<&[u8]>,
        cb: &ChannelBindingInfo,
    ) -> Result<(Self, Step), SaslError> {
        if mech.is_plus() && (!cb.plus_advertised || cb.data.is_empty()) {
            return Err(SaslError::InvalidMechanism);
        }
        let mut session = ServerSession {
            mech,
            cb: if mech.is_scram() {
                cb.clone()
            } else {
                ChannelBindingInfo::default()
            },
            decoy: Decoy::default(),
            advertised: None,
            state: State::AwaitingFirst,
        };
        let step = match initial {
            Some(data) => session.respond(data)?,
            None => Step::Challenge(Vec::new()),
        };
        Ok((session, step))
    }

    /// The mechanism of this exchange.
    pub fn mechanism(&self) -> Mechanism {
        self.mech
    }

    /// Makes unknown-user salts depend on a server secret and the username only, not the nonce.
    ///
    /// By default the decoy salt is derived from the username and the nonce given to
    /// [`credentials`](Self::credentials), so two attempts for the same unknown user see two
    /// salts while a real account shows one. With a secret (kept stable across restarts) the
    /// decoy is stable too; `iterations` should match what real accounts use (0 is taken as 1).
    /// Call before [`credentials`](Self::credentials).
    pub fn set_decoy_secret(&mut self, secret: &[u8], iterations: u32) {
        self.decoy = Decoy::with_secret(secret, iterations);
    }

    /// Turns on SASL SCRAM Downgrade Protection (XEP-0474): the server-first message gets
    /// the attribute `h`, a hash of what this stream advertised, which the client checks.
    ///
    /// `mechanisms` must be exactly the `<mechanism/>` names of the one SASL profile the
    /// client is authenticating with, as advertised on this stream: SASL1's `<mechanisms/>`
    /// or SASL2's `<authentication/>`, not both (XEP-0474 §5.1), and never FAST's HT-*
    /// mechanisms, which live in `<fast/>` (see `downgrade.rs` for the ejabberd bug that
    /// broke Monal's logins). `channel_bindings` are the types in XEP-0440's
    /// `<sasl-channel-binding/>`, or empty if that feature was not sent. Order does not
    /// matter. Only SCRAM uses it; call before [`credentials`](Self::credentials). Without
    /// this call the messages are exactly RFC 5802's.
    pub fn set_downgrade_protection(&mut self, mechanisms: &[&str], channel_bindings: &[&str]) {
        self.advertised = Some(Advertised::new(mechanisms, channel_bindings));
    }

    /// Handles a client `<response/>` (decoded bytes).
    ///
    /// A response when none is expected is [`SaslError::MalformedRequest`].
    pub fn respond(&mut self, data: &[u8]) -> Result<Step, SaslError> {
        let mech = self.mech;
        let cb = &self.cb;
        advance(&mut self.state, |state| match state {
            State::AwaitingFirst if mech == Mechanism::Plain => {
                let request = PlainRequest::parse(data)?;
                let step = Step::NeedCredentials {
                    username: request.username.clone(),
                    authzid: request.authzid.clone(),
                };
                Ok((State::PlainNeedsCredentials(request), step))
            }
            State::AwaitingFirst => {
                let first = ScramFirst::parse(mech, data, cb)?;
                let step = Step::NeedCredentials {
                    username: first.username.clone(),
                    authzid: first.authzid().map(str::to_owned),
                };
                Ok((State::ScramNeedsCredentials(first), step))
            }
            State::ScramAwaitingFinal(pending) => {
                let server_final = pending.verify(data)?;
                let step = Step::Success {
                    additional_data: Some(server_final),
                };
                Ok((State::Succeeded, step))
            }
            State::Failed(error) => Err(error),
            State::PlainNeedsCredentials(_)
            | State::ScramNeedsCredentials(_)
            | State::Succeeded => Err(SaslError::malformed("unexpected response")),
        })
    }

    /// Supplies the account's credentials (`None`: no such user) and the server nonce part.
    ///
    /// The nonce must be printable ASCII without commas (RFC 5802 §7), else
    /// [`SaslError::Internal`]; PLAIN ignores it. Calling this out of order is also
    /// [`SaslError::Internal`].
    pub fn credentials(
        &mut self,
        creds: Option<&StoredCredentials>,
        nonce: &str,
    ) -> Result<Step, SaslError> {
        let decoy = &self.decoy;
        let advertised = self.advertised.as_ref();
        advance(&mut self.state, |state| match state {
            State::PlainNeedsCredentials(request) => {
                if request.verify(creds, decoy) {
                    let step = Step::Success {
                        additional_data: None,
                    };
                    Ok((State::Succeeded, step))
                } else {
                    Err(SaslError::NotAuthorized)
                }
            }
            State::ScramNeedsCredentials(first) => {
                let (pending, server_first) = first.challenge(creds, nonce, decoy, advertised)?;
                Ok((
                    State::ScramAwaitingFinal(pending),
                    Step::Challenge(server_first),
                ))
            }
            State::Failed(error) => Err(error),
            State::AwaitingFirst | State::ScramAwaitingFinal(_) | State::Succeeded => {
                Err(SaslError::Internal("credentials() called out of order"))
            }
        })
    }
}

/// Runs one transition, consuming the old state; an error becomes the sticky `Failed` state.
fn advance(
    state: &mut State,
    transition: impl FnOnce(State) -> Result<(State, Step), SaslError>,
) -> Result<Step, SaslError> {
    // The placeholder is overwritten below on every path.
    let old = std::mem::replace(state, State::Failed(SaslError::Aborted));
    match transition(old) {
        Ok((next, step)) => {
            *state = next;
            Ok(step)
        }
        Err(error) => {
            *state = State::Failed(error.clone());
            Err(error)
        }
    }
}
